//! Fault tests with figures (see docs/reliability.md): database outages under a live fleet.

mod common;

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amp_operator::metadata_db;
use amp_operator::operator::controller::{Reconciler, ReconcilerConfig};
use amp_operator::operator::crd::AmpWorker;
use amp_operator::operator::metrics::OperatorMetrics;
use amp_operator::operator::plan::PlanConfig;
use amp_operator::testing::fake_apiserver::FakeApiServer;
use amp_operator::testing::postgres::eventually;
use chrono::{DateTime, Utc};
use common::*;

const FLEET: usize = 50;

/// The operator's controller cycling every second against an in-memory API server.
fn run_operator(db_url: &str) -> (FakeApiServer, Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let fake = FakeApiServer::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut ctl = Reconciler::new(
        fake.client("amp"),
        metadata_db::connect_pool_lazy(db_url, "amp-operator", 2).unwrap(),
        ReconcilerConfig {
            namespace: "amp".into(),
            plan: PlanConfig {
                status_refresh: chrono::Duration::seconds(60),
                refresh_budget: 20.0,
                gc_after: None,
                gc_stopped_after: None,
                heartbeat_timeout_secs: 30,
            },
            write_concurrency: 8,
            identity: "operator".into(),
        },
        Arc::new(OperatorMetrics::new()),
    );
    let (f, s) = (fake.clone(), stop.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            let objects = f.cached_workers();
            ctl.cycle(objects, Vec::new()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (fake, stop, task)
}

/// (state, Healthy status, Healthy reason) of every AmpWorker.
fn health(fake: &FakeApiServer) -> Vec<(String, String, String)> {
    fake.objects::<AmpWorker>("ampworkers")
        .into_iter()
        .filter_map(|w| {
            let s = w.status?;
            let h = s.conditions.iter().find(|c| c.type_ == "Healthy")?.clone();
            Some((s.state.unwrap_or_default(), h.status, h.reason))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_workers_resume_within_five_seconds_of_a_20s_outage_and_the_operator_says_unknown() {
    let (mut pg, pool) = migrated_db().await;
    let workers: Vec<Proc> = (0..FLEET)
        .map(|i| spawn_worker(&pg.url(), &format!("worker-{i:02}"), "v1"))
        .collect();
    let registered = eventually(Duration::from_secs(30), || async {
        let rows = metadata_db::list_workers(&pool).await.ok()?;
        (rows.len() == FLEET).then_some(rows)
    })
    .await
    .expect("all workers register");
    pool.close().await;
    let (fake, stop_operator, operator) = run_operator(&pg.url());
    let all_ready = eventually(Duration::from_secs(20), || async {
        let h = health(&fake);
        (h.len() == FLEET && h.iter().all(|(state, _, _)| state == "Ready")).then_some(())
    })
    .await;
    assert!(
        all_ready.is_some(),
        "operator never saw the fleet Ready: {:?}",
        health(&fake)
    );

    pg.stop().expect("stop");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = health(&fake);
    let unknown = during
        .iter()
        .filter(|h| {
            *h == &(
                "Unknown".to_string(),
                "Unknown".to_string(),
                "MetadataDbUnavailable".to_string(),
            )
        })
        .count();
    assert_eq!(
        unknown, FLEET,
        "mid-outage the operator says Unknown, never False: {during:?}"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    pg.restart_after_stop().expect("start again");
    let back = Instant::now();

    let pool = metadata_db::connect_pool(&pg.url(), "tests", 2)
        .await
        .unwrap();
    let db_back: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(15), || async {
        let rows = metadata_db::list_workers(&pool).await.ok()?;
        rows.iter().all(|r| r.heartbeat_at >= db_back).then_some(())
    })
    .await
    .expect("every worker heartbeats again");
    let took = back.elapsed();
    eprintln!(
        "RELIABILITY: {FLEET} workers all heartbeating {took:.1?} after a 20 s PostgreSQL outage ended"
    );
    assert!(took <= Duration::from_secs(5), "resumed after {took:?}");

    let rows = metadata_db::list_workers(&pool).await.unwrap();
    for (before, after) in registered.iter().zip(&rows) {
        assert_eq!(before.node_id, after.node_id);
        assert_eq!(
            before.created_at, after.created_at,
            "no data lost for {}",
            after.node_id
        );
        // A reconnect is not a restart: RESTARTS and the seeds' restart check read this.
        assert_eq!(
            before.registered_at, after.registered_at,
            "{} re-registered after a DB outage",
            after.node_id
        );
    }
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        locks, FLEET as i64,
        "every worker's session holds its lock again"
    );

    // The operator: back to Ready for all, and no WorkerStale for workers alive throughout.
    let recovered = eventually(Duration::from_secs(10), || async {
        let h = health(&fake);
        h.iter().all(|(state, _, _)| state == "Ready").then_some(())
    })
    .await;
    assert!(recovered.is_some(), "{:?}", health(&fake));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_operator.store(true, Ordering::Relaxed);
    let _ = operator.await;
    let requests = fake.take_requests();
    let stale_events = requests
        .iter()
        .filter(|r| r.body["reason"] == "WorkerStale")
        .count();
    assert_eq!(stale_events, 0, "a DB outage must not raise WorkerStale");
    for reason in ["WorkerRestarted", "WorkerStopped"] {
        let n = requests
            .iter()
            .filter(|r| r.body["reason"] == reason)
            .count();
        assert_eq!(n, 0, "a DB outage must not raise {reason}");
    }
    let restarted = requests
        .iter()
        .filter(|r| r.body["status"]["restartCount"].as_i64().unwrap_or(0) > 0)
        .count();
    assert_eq!(restarted, 0, "no status counted a restart");
    let went_false = requests
        .iter()
        .filter(|r| {
            r.body["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Healthy" && c["status"] == "False")
            })
        })
        .count();
    assert_eq!(went_false, 0, "no status ever said Healthy=False");
    eprintln!(
        "RELIABILITY: operator: {FLEET}/{FLEET} Unknown (MetadataDbUnavailable) mid-outage, 0 WorkerStale events, 0 Healthy=False writes"
    );
    drop(workers);
}
