//! Operator at fleet scale: N workers (default 10,000) in a throwaway PostgreSQL whose
//! heartbeats advance every second, the controller against the in-memory API server.
//! Prints poll+plan time per cycle, status writes at steady state, the time from a
//! heartbeat stopping to the status patch, and the process's peak RSS.
//!
//!   cargo bench --bench operator                       # 10,000 workers, 65 s steady state
//!   AMP_BENCH_WORKERS=1000 AMP_BENCH_SECONDS=40 cargo bench --bench operator

mod support;
use support::{env_or, percentile, proc_status_kib};

use std::sync::Arc;
use std::time::{Duration, Instant};

use amp_operator::metadata_db;
use amp_operator::operator::controller::{Controller, ControllerConfig};
use amp_operator::operator::crd::{AmpWorker, AmpWorkerFleet};
use amp_operator::operator::metrics::OperatorMetrics;
use amp_operator::operator::plan::PlanConfig;
use amp_operator::testing::fake_apiserver::FakeApiServer;
use amp_operator::testing::postgres::TempPostgres;

const VICTIM: &str = "worker-00042";

/// Every row except `except` gets `heartbeat_at = now()` once a second.
fn heartbeat_fleet(pool: sqlx::PgPool, except: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let _ = sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE node_id <> $1")
                .bind(except)
                .execute(&pool)
                .await;
        }
    })
}

#[tokio::main]
async fn main() {
    let n: usize = env_or("AMP_BENCH_WORKERS", 10_000);
    let seconds: u64 = env_or("AMP_BENCH_SECONDS", 65);
    let pg = TempPostgres::start().expect("start PostgreSQL");
    let pool = metadata_db::connect_pool(&pg.url(), "bench", 4)
        .await
        .expect("connect");
    metadata_db::migrate(&pool).await.expect("migrate");
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         SELECT format('worker-%s', lpad(i::text, 5, '0')),
                jsonb_build_object('version', 'v1.0.0', 'commit_sha', '8b065bde',
                                   'commit_timestamp', '2025-10-30T09:00:00Z', 'build_date', '2025-10-30'),
                now(), now(), now()
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(n as i64)
    .execute(&pool)
    .await
    .expect("insert workers");

    // Every worker but the victim heartbeats at 1 Hz (one statement for the fleet).
    let heartbeats = heartbeat_fleet(pool.clone(), VICTIM);

    let fake = FakeApiServer::new();
    fake.record_writes_only();
    let rss_before = proc_status_kib("self", "VmRSS:");
    let mut ctl = Controller::new(
        fake.client("amp"),
        metadata_db::connect_pool_lazy(&pg.url(), "amp-operator", 2).expect("pool"),
        ControllerConfig {
            namespace: "amp".into(),
            plan: PlanConfig {
                status_refresh: chrono::Duration::seconds(60),
                refresh_budget: 20.0,
                gc_after: Some(chrono::Duration::hours(24)),
            },
            write_concurrency: 8,
            identity: "bench".into(),
        },
        Arc::new(OperatorMetrics::new()),
    );

    // Discovery: the first cycle creates and applies every AmpWorker.
    let started = Instant::now();
    let report = ctl.cycle(Vec::new(), Vec::new()).await;
    let discovery = started.elapsed();
    // What a synced reflector would hold from now on.
    let store: Vec<Arc<AmpWorker>> = fake
        .objects::<AmpWorker>("ampworkers")
        .into_iter()
        .map(Arc::new)
        .collect();
    let fleets: Vec<Arc<AmpWorkerFleet>> = Vec::new();
    println!(
        "workers: {n}; discovery cycle: {} creates + {} status applies in {:.2?}",
        report.created, report.status_writes, discovery
    );
    fake.take_requests();

    // Steady state: the victim's last heartbeat is now; count writes for `seconds`.
    sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE node_id = $1")
        .bind(VICTIM)
        .execute(&pool)
        .await
        .expect("victim heartbeat");
    let victim_last_heartbeat = Instant::now();
    let mut cycle_times = Vec::new();
    let mut writes = 0usize;
    let mut flagged_after: Option<Duration> = None;
    let steady = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while steady.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let t = Instant::now();
        let report = ctl.cycle(store.clone(), fleets.clone()).await;
        cycle_times.push(t.elapsed());
        writes += report.status_writes;
        if flagged_after.is_none() {
            let flagged = fake.take_requests().iter().any(|r| {
                r.path.contains(&format!("/ampworkers/{VICTIM}/status"))
                    && r.body["status"]["state"] == "Stale"
            });
            if flagged {
                flagged_after = Some(victim_last_heartbeat.elapsed());
            }
        } else {
            fake.take_requests();
        }
    }
    heartbeats.abort();
    let elapsed = steady.elapsed();
    let mut polls = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let snapshot = metadata_db::fleet_snapshot(&pool).await.expect("snapshot");
        polls.push(t.elapsed());
        assert_eq!(snapshot.workers.len(), n);
    }
    polls.sort();
    println!(
        "of which the DB snapshot alone ({n} rows, 20 reads): p50 {:.2?}, max {:.2?}",
        percentile(&polls, 0.5),
        polls.last().copied().unwrap_or_default()
    );
    cycle_times.sort();
    println!(
        "steady cycle (poll + diff + writes) over {} cycles: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        cycle_times.len(),
        percentile(&cycle_times, 0.5),
        percentile(&cycle_times, 0.99),
        cycle_times.last().copied().unwrap_or_default()
    );
    println!(
        "status writes at steady state: {writes} in {:.1} s = {:.0}/min ({:.2} per worker per minute; refresh 60 s)",
        elapsed.as_secs_f64(),
        writes as f64 * 60.0 / elapsed.as_secs_f64(),
        writes as f64 * 60.0 / elapsed.as_secs_f64() / n as f64
    );
    match flagged_after {
        Some(d) => println!(
            "heartbeat stop → Stale patch: {:.2?} (timeout 30 s; {:.2?} past it)",
            d,
            d.saturating_sub(Duration::from_secs(30))
        ),
        None => println!("heartbeat stop → Stale patch: not within {seconds} s"),
    }
    println!(
        "bench process RSS (controller + fake API server holding {n} objects + DB client): {} MiB before the controller, peak {} MiB",
        rss_before / 1024,
        proc_status_kib("self", "VmHWM:") / 1024
    );

    // The real `ampd operator` process against the same objects over HTTP (list + watch,
    // leader election on): its own peak RSS is the operator's memory figure.
    let process_seconds: u64 = env_or("AMP_BENCH_PROCESS_SECONDS", 30);
    let (addr, _server) = fake.serve_http("operator").await.expect("serve fake");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, FakeApiServer::kubeconfig(addr, "amp")).expect("kubeconfig");
    let heartbeats = heartbeat_fleet(pool.clone(), "");
    fake.take_requests();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ampd"))
        .args(["operator", "--namespace", "amp", "--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env("AMP_DATABASE_URL", pg.url())
        .env("POD_NAME", "bench-operator")
        .env("RUST_LOG", "warn")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ampd operator");
    let pid = child.id().to_string();
    tokio::time::sleep(Duration::from_secs(process_seconds)).await;
    let (rss, peak) = (
        proc_status_kib(&pid, "VmRSS:"),
        proc_status_kib(&pid, "VmHWM:"),
    );
    let writes = fake
        .take_requests()
        .iter()
        .filter(|r| r.path.contains("/ampworkers/") && r.path.contains("/status"))
        .count();
    let _ = child.kill();
    let _ = child.wait();
    heartbeats.abort();
    println!(
        "ampd operator process, {n} AmpWorkers, {process_seconds} s (startup list + watch + steady cycles): RSS {} MiB, peak {} MiB; {writes} status writes",
        rss / 1024,
        peak / 1024
    );
}
