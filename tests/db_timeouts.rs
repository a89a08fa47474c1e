//! Silent networks: the metadata DB behind a proxy that stops forwarding without closing
//! anything (no FIN, no RST). Every process must turn that into an answer within its
//! DB timeout, and workers must heartbeat again within 5 s of the network returning.
//! Figures in docs/reliability.md.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amp_operator::metadata_db::{self, DEFAULT_DB_TIMEOUT};
use amp_operator::operator::controller::{Reconciler, ReconcilerConfig};
use amp_operator::operator::crd::AmpWorker;
use amp_operator::operator::metrics::OperatorMetrics;
use amp_operator::operator::plan::PlanConfig;
use amp_operator::testing::fake_apiserver::FakeApiServer;
use amp_operator::testing::postgres::eventually;
use chrono::{DateTime, Utc};
use common::blackhole::Blackhole;
use common::*;

fn proxied_url(proxy: &Blackhole) -> String {
    format!("postgres://amp@{}/postgres", proxy.addr)
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || http_get(&addr, &path).unwrap_or((0, String::new())))
        .await
        .expect("join")
}

async fn db_now(pool: &sqlx::PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .expect("now()")
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_answers_503_within_its_timeout_on_a_blackholed_db_and_recovers() {
    let (pg, pool) = migrated_db().await;
    register_row(&pool, "worker-01", "v1").await;
    let proxy = Blackhole::start(([127, 0, 0, 1], pg.port()).into()).await;
    let timeout = Duration::from_secs(2);
    let (api, addr) = start_admin_api(&proxied_url(&proxy), &["--db-timeout", "2s"]).await;
    assert_eq!(get(&addr, "/workers").await.0, 200);

    proxy.blackhole();
    let mut slowest = Duration::ZERO;
    for path in ["/workers", "/workers/worker-01", "/readyz", "/workers"] {
        let started = Instant::now();
        let (status, body) = get(&addr, path).await;
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            took <= timeout + Duration::from_millis(500),
            "{path} answered after {took:?} (timeout {timeout:?})"
        );
    }
    // /metrics still answers (stale gauges) within the timeout.
    let started = Instant::now();
    assert_eq!(get(&addr, "/metrics").await.0, 200);
    assert!(started.elapsed() <= timeout + Duration::from_millis(500));

    proxy.resume();
    let back = Instant::now();
    let ok = eventually(Duration::from_secs(15), || async {
        (get(&addr, "/workers").await.0 == 200).then_some(())
    })
    .await;
    let recovered = back.elapsed();
    assert!(
        ok.is_some(),
        "the API answers 200 again after the network returns"
    );
    assert!(recovered <= Duration::from_secs(5), "{recovered:?}");
    eprintln!(
        "RELIABILITY: admin API on a blackholed DB: 503 after at most {slowest:.1?} (--db-timeout 2s); 200 again {recovered:.1?} after the network returned"
    );
    drop(api);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_drops_a_blackholed_session_and_heartbeats_within_5s_of_the_network_returning() {
    let (pg, pool) = migrated_db().await;
    let proxy = Blackhole::start(([127, 0, 0, 1], pg.port()).into()).await;
    let probes = free_addr();
    // Defaults for everything that matters: --db-timeout 3s, --max-backoff 3s, 1 s beat.
    let mut cmd: Command = worker(&proxied_url(&proxy), "worker-01", "v1");
    cmd.args(["--listen", &probes]);
    let mut worker = Proc::spawn("worker", &mut cmd);
    let first = wait_registered(&pool, "worker-01", Duration::from_secs(20)).await;
    let ready = eventually(Duration::from_secs(10), || async {
        (get(&probes, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "worker ready");

    proxy.blackhole();
    let cut = Instant::now();
    let noticed = eventually(Duration::from_secs(15), || async {
        (get(&probes, "/readyz").await.0 == 503).then_some(())
    })
    .await;
    let detected = cut.elapsed();
    assert!(noticed.is_some(), "the worker notices the dead session");
    assert!(
        detected <= Duration::from_secs(1) + DEFAULT_DB_TIMEOUT + Duration::from_millis(1500),
        "noticed after {detected:?}"
    );
    // Long enough for reconnect attempts into the blackhole to time out as well.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed())).await;

    proxy.resume();
    let back = Instant::now();
    let db_back = db_now(&pool).await;
    let id = amp_operator::node_id::NodeId::parse("worker-01").unwrap();
    let beating = eventually(Duration::from_secs(30), || async {
        let row = metadata_db::get_worker(&pool, id.as_str())
            .await
            .ok()
            .flatten()?;
        (row.heartbeat_at > db_back).then_some(row)
    })
    .await;
    let resumed = back.elapsed();
    let row = beating.expect("the worker heartbeats again");
    assert!(worker.is_running(), "the worker kept running");
    assert!(
        resumed <= Duration::from_secs(5),
        "heartbeating after {resumed:?}"
    );
    assert_eq!(row.created_at, first.created_at, "no data lost");
    // One session holds the node id (both of its keys): the new one; the abandoned one
    // was ended.
    let holders: Vec<(i32, Option<String>)> = sqlx::query_as(
        "SELECT DISTINCT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
          WHERE l.locktype = 'advisory' AND l.granted",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    let (_, stderr_tail) = {
        let (_, out, err) = worker.terminate();
        (out, err)
    };
    assert!(
        stderr_tail.contains("ended our previous session"),
        "the abandoned session, which still held the lock, was ended: {stderr_tail}"
    );
    eprintln!(
        "RELIABILITY: worker on a blackholed DB: session dropped {detected:.1?} after the cut (--db-timeout 3s); heartbeating {resumed:.1?} after the network returned (10 s blackhole)"
    );
}

/// (Healthy status, reason) of every AmpWorker.
fn health(fake: &FakeApiServer) -> Vec<(String, String)> {
    fake.objects::<AmpWorker>("ampworkers")
        .into_iter()
        .filter_map(|w| {
            let h = w
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Healthy")?;
            Some((h.status, h.reason))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_shows_unknown_within_poll_interval_plus_timeout_on_a_blackholed_db() {
    let (pg, pool) = migrated_db().await;
    for i in 0..3 {
        register_row(&pool, &format!("worker-{i}"), "v1").await;
    }
    let proxy = Blackhole::start(([127, 0, 0, 1], pg.port()).into()).await;
    let poll = Duration::from_secs(1);
    let fake = FakeApiServer::new();
    let mut ctl = Reconciler::new(
        fake.client("amp"),
        metadata_db::connect_pool_lazy_bounded(
            &proxied_url(&proxy),
            "amp-operator",
            2,
            DEFAULT_DB_TIMEOUT,
        )
        .unwrap(),
        ReconcilerConfig {
            namespace: "amp".into(),
            plan: PlanConfig {
                status_refresh: chrono::Duration::seconds(60),
                gc_after: None,
                gc_stopped_after: None,
                heartbeat_timeout_secs: 30,
                refresh_budget: 20.0,
            },
            write_concurrency: 8,
            identity: "operator".into(),
        },
        Arc::new(OperatorMetrics::new()),
    )
    .with_db_timeout(DEFAULT_DB_TIMEOUT);
    let stop = Arc::new(AtomicBool::new(false));
    let (f, s) = (fake.clone(), stop.clone());
    // The production loop's shape: a cycle, then the rest of the poll interval.
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !s.load(Ordering::Relaxed) {
            tick.tick().await;
            let objects = f.cached_workers();
            ctl.cycle(objects, Vec::new()).await;
        }
    });
    let healthy = eventually(Duration::from_secs(15), || async {
        let h = health(&fake);
        (h.len() == 3 && h.iter().all(|(s, _)| s == "True")).then_some(())
    })
    .await;
    assert!(healthy.is_some(), "{:?}", health(&fake));

    proxy.blackhole();
    let cut = Instant::now();
    let unknown = eventually(Duration::from_secs(20), || async {
        let h = health(&fake);
        h.iter()
            .all(|(s, r)| s == "Unknown" && r == "MetadataDbUnavailable")
            .then_some(())
    })
    .await;
    let took = cut.elapsed();
    assert!(unknown.is_some(), "{:?}", health(&fake));
    let bound = poll + DEFAULT_DB_TIMEOUT;
    assert!(
        took <= bound + Duration::from_millis(1500),
        "Unknown after {took:?}, bound {bound:?}"
    );

    proxy.resume();
    let back = Instant::now();
    let healthy = eventually(Duration::from_secs(20), || async {
        health(&fake).iter().all(|(s, _)| s == "True").then_some(())
    })
    .await;
    let recovered = back.elapsed();
    assert!(healthy.is_some(), "{:?}", health(&fake));
    stop.store(true, Ordering::Relaxed);
    let _ = task.await;
    eprintln!(
        "RELIABILITY: operator on a blackholed DB: Unknown (MetadataDbUnavailable) {took:.1?} after the cut (poll 1 s + --db-timeout 3s); Healthy again {recovered:.1?} after the network returned"
    );
}

/// A zero timeout would fail every DB call: every role refuses it as a usage error
/// (exit 2) before touching the database.
#[test]
fn a_zero_db_timeout_is_refused_by_every_role() {
    for role in [
        &["worker", "--node-id", "w1"][..],
        &["admin-api"][..],
        &["operator"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ampd"))
            .args(role)
            .args(["--database-url", "postgres://amp@127.0.0.1:1/amp"])
            .args(["--db-timeout", "0s"])
            .output()
            .expect("run ampd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{role:?}: {stderr}");
        assert!(
            stderr.contains("--db-timeout") && stderr.contains("must be from 100ms to 10m"),
            "{role:?}: {stderr}"
        );
    }
}
