//! The real `ampd operator` process against a real kube-apiserver + etcd (the envtest
//! harness) and a throwaway PostgreSQL: N workers (default 10,000) heartbeating every
//! second (one UPDATE for the fleet), one AmpWorkerFleet expecting the version two thirds
//! of them run, operator defaults. Prints the figures of issue 13's table:
//!
//! - discovery: operator start -> every AmpWorker created with a Healthy=True status
//! - steady-state status writes/s (operator metrics; the audit log too when it is on)
//! - kube-apiserver (and etcd) CPU in steady state, from /proc/<pid>/stat
//! - `ampd operator` RSS (steady, and peak over the whole run)
//! - `ampd operator` CPU in steady state: per window, per cycle (wall time of a cycle
//!   too), and the snapshot read (the operator's round trip, and PostgreSQL's own
//!   execution time of the same statement from `EXPLAIN ANALYZE`)
//! - heartbeat stop -> Healthy=False seen by a watch (timeout 30 s)
//! - API server CPU per write: server-side apply of the whole status vs a merge patch
//!   of `heartbeatAt` alone
//!
//!   cargo bench --bench operator                           # 10,000 workers
//!   AMP_BENCH_WORKERS=2000 cargo bench --bench operator
//!   AMP_ENVTEST_AUDIT=1 AMP_BENCH_SETTLE=0 AMP_BENCH_WRITE_COST=0 cargo bench --bench operator
//!
//! The audit log is off unless AMP_ENVTEST_AUDIT=1 (writing it costs the API server CPU
//! and would distort the CPU figure). AMP_BENCH_OPERATOR_ARGS adds `ampd operator` flags;
//! AMP_BENCH_OPERATOR_WRAPPER=heaptrack runs it under a heap profiler.
//!
//! AMP_BENCH_JOBS=100000 builds the DB as Amp leaves it (nightly job schema, see
//! `testing::amp_db`) with that many jobs over the workers, a fifth of them unfinished
//! (RUNNING or STOPPING; two on the victim) and 100 on node ids without a row, so the
//! cycle includes the operator's jobs read; it also times heartbeat stop ->
//! `JobsStranded=True` on the victim.
//!
//! AMP_BENCH_PODS=1 gives every worker a Pod (named by its node id, owned by a
//! StatefulSet object, Pending: no kubelet) and the fleet a `podSelector`, so the
//! operator watches and links 10,000 Pods too.
//!
//! The kube-apiserver's own CPU profile (`/debug/pprof/profile`) is taken over the
//! steady window and printed (the functions with most CPU); then the operator is stopped
//! and the API server's CPU is read again for AMP_BENCH_IDLE_SECONDS (default 60) with the
//! same objects: the difference is what the operator costs it.
//! AMP_BENCH_DISCOVERY_PROFILE=N takes one over N seconds of discovery as well.

mod support;
use support::{cpu_secs, env_or, free_addr, pprof, proc_status_kib};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amp_operator::metadata_db;
use amp_operator::operator::crd::{AmpWorker, AmpWorkerFleet};
use amp_operator::testing::amp_db::{self, AmpJobs, AmpSchema};
use amp_operator::testing::envtest::ControlPlane;
use amp_operator::testing::postgres::{PgSettings, TempPostgres};
use futures::StreamExt;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VICTIM: &str = "worker-00042";
const EXPECTED: &str = "v1.1.0";
const FLEET: &str = "amp";

/// Busy and total CPU time of the whole machine in seconds, from /proc/stat.
fn machine_cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ((total - idle) as f64 / hz, total as f64 / hz)
}

/// Where the CPU went during discovery: is it the API server's pace, or the machine's?
struct DiscoveryCpu {
    apiserver: f64,
    etcd: f64,
    operator: f64,
    machine_busy: f64,
    machine_total: f64,
}

impl DiscoveryCpu {
    fn since(start: (f64, f64, (f64, f64)), (apiserver, etcd): (u32, u32), operator: &str) -> Self {
        let (busy, total) = machine_cpu_secs();
        Self {
            apiserver: cpu_secs(apiserver) - start.0,
            etcd: cpu_secs(etcd) - start.1,
            operator: operator.parse().map(cpu_secs).unwrap_or(0.0),
            machine_busy: busy - start.2.0,
            machine_total: total - start.2.1,
        }
    }

    fn print(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let others = self.machine_busy - self.apiserver - self.etcd - self.operator;
        println!(
            "discovery CPU (s of CPU, % of a core): kube-apiserver {:.0} s ({:.0}%), etcd {:.0} s ({:.0}%), ampd operator {:.0} s ({:.0}%), the rest (PostgreSQL, heartbeats, bench) {:.0} s ({:.0}%); machine {:.0}% busy",
            self.apiserver,
            100.0 * self.apiserver / secs,
            self.etcd,
            100.0 * self.etcd / secs,
            self.operator,
            100.0 * self.operator / secs,
            others,
            100.0 * others / secs,
            100.0 * self.machine_busy / self.machine_total.max(f64::EPSILON),
        );
    }
}

/// The operator's /metrics as (series, value).
async fn scrape(addr: &str) -> Vec<(String, f64)> {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return Vec::new();
    };
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return Vec::new();
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body).await;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn get(m: &[(String, f64)], series: &str) -> f64 {
    m.iter().find(|(k, _)| k == series).map_or(0.0, |(_, v)| *v)
}

fn writes(m: &[(String, f64)], kind: &str) -> f64 {
    get(
        m,
        &format!("amp_operator_writes_total{{kind=\"{kind}\",result=\"ok\"}}"),
    )
}

const HEALTHY_TRUE: &str = "amp_operator_workers{condition=\"Healthy\",status=\"True\"}";

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    if std::env::var_os("AMP_ENVTEST_AUDIT").is_none() {
        // SAFETY: no other thread exists yet (the runtime is built below).
        unsafe { std::env::set_var("AMP_ENVTEST_AUDIT", "0") };
    }
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let n: usize = env_or("AMP_BENCH_WORKERS", 10_000);
    let settle: u64 = env_or("AMP_BENCH_SETTLE", 65);
    let seconds: u64 = env_or("AMP_BENCH_SECONDS", 60);
    let write_cost: usize = env_or("AMP_BENCH_WRITE_COST", 2_000);
    let jobs: usize = env_or("AMP_BENCH_JOBS", 0);
    let pods = env_or("AMP_BENCH_PODS", 0u8) == 1;
    let audit = amp_operator::testing::envtest::audit_enabled();
    println!(
        "operator bench: {n} workers, {jobs} Amp jobs, {} Pods selected by the fleet, heartbeats 1/s, fleet expects {EXPECTED} (2/3 run it); audit log {}",
        if pods { n } else { 0 },
        if audit { "on" } else { "off" }
    );

    // Every worker holds its node id lock (a free one is a stopped worker, which is not
    // discovered): the lock table must hold one per worker.
    // AMP_BENCH_DB_TLS=verify-full: a TLS-only server, verified (default: plain).
    let (_pg, url) = TempPostgres::start_bench(
        PgSettings::default()
            .set("fsync", "off")
            .set("max_connections", 200)
            .set("max_locks_per_transaction", 64 + n / 100),
    )
    .expect("start PostgreSQL");
    let pool = metadata_db::connect_pool(&url, "bench", 4)
        .await
        .expect("connect");
    if jobs > 0 {
        amp_db::create_with_jobs(&pool, AmpSchema::Current, Some(AmpJobs::Nightly))
            .await
            .expect("Amp's schema");
    } else {
        metadata_db::migrate(&pool).await.expect("migrate");
    }
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         SELECT format('worker-%s', lpad(i::text, 5, '0')),
                jsonb_build_object('version', CASE WHEN i % 3 = 0 THEN 'v1.0.0' ELSE $2 END,
                                   'commit_sha', '8b065bde',
                                   'commit_timestamp', '2025-10-30T09:00:00Z', 'build_date', '2025-10-30'),
                now(), now(), now()
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(n as i64)
    .bind(EXPECTED)
    .execute(&pool)
    .await
    .expect("insert workers");
    if jobs > 0 {
        insert_amp_jobs(&pool, n, jobs).await;
    }

    // One session holds every worker's lock for the whole run, as running workers do
    // (the victim too: it hangs, it does not stop, so it goes Stale).
    let mut locks = sqlx::PgConnection::connect(&url)
        .await
        .expect("lock session");
    sqlx::query("SELECT count(pg_advisory_lock(hashtextextended(node_id, 0))) FROM workers")
        .execute(&mut locks)
        .await
        .expect("take every node id lock");

    let plane = ControlPlane::start().await.expect("envtest control plane");
    let (apiserver, etcd) = plane.pids().expect("a control plane of our own");
    let ns = plane.namespace("bench").await.expect("namespace");
    let client = plane.client().await.expect("client");
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    let mut spec = serde_json::json!({"version": EXPECTED});
    if pods {
        spec["podSelector"] = serde_json::json!({"matchLabels": {"app": "amp-worker"}});
        create_worker_pods(&client, &ns, n).await;
    }
    let fleet: AmpWorkerFleet = serde_json::from_value(serde_json::json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet",
        "metadata": {"name": FLEET}, "spec": spec
    }))
    .expect("fleet");
    fleets
        .create(&PostParams::default(), &fleet)
        .await
        .expect("create fleet");

    // Every worker heartbeats once a second; the victim stops when told.
    let victim_stopped = Arc::new(AtomicBool::new(false));
    let heartbeats = {
        let (pool, stopped) = (pool.clone(), victim_stopped.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let except = if stopped.load(Ordering::SeqCst) {
                    VICTIM
                } else {
                    ""
                };
                let _ = sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE node_id <> $1")
                    .bind(except)
                    .execute(&pool)
                    .await;
            }
        })
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let listen = free_addr();
    let log = std::fs::File::create(dir.path().join("operator.log")).expect("log");
    let extra: Vec<String> = std::env::var("AMP_BENCH_OPERATOR_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let started = Instant::now();
    let discovery_cpu0 = (cpu_secs(apiserver), cpu_secs(etcd), machine_cpu_secs());
    // AMP_BENCH_OPERATOR_WRAPPER runs the operator under a profiler (e.g. `heaptrack`);
    // the RSS figures are then the wrapper's.
    let mut command = match std::env::var("AMP_BENCH_OPERATOR_WRAPPER") {
        Ok(wrapper) if !wrapper.is_empty() => {
            let mut c = std::process::Command::new(wrapper);
            c.arg(env!("CARGO_BIN_EXE_ampd"));
            c
        }
        _ => std::process::Command::new(env!("CARGO_BIN_EXE_ampd")),
    };
    let mut child = command
        .arg("operator")
        .args(&extra)
        .env("KUBECONFIG", plane.kubeconfig())
        .env("AMP_DATABASE_URL", &url)
        .env("AMP_NAMESPACE", &ns)
        .env("AMP_OPERATOR_LISTEN", &listen)
        .env("POD_NAME", "bench-operator")
        .env("RUST_LOG", "warn")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn ampd operator");
    let pid = child.id().to_string();
    // AMP_BENCH_DISCOVERY_PROFILE=N: the API server's profile over N seconds of discovery,
    // from 20 s after the start (the creates and first statuses at full pace).
    let discovery_profile = match env_or("AMP_BENCH_DISCOVERY_PROFILE", 0u64) {
        0 => None,
        seconds => {
            let client = client.clone();
            Some(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                apiserver_profile(client, seconds).await
            }))
        }
    };

    // Discovery: until every worker was created and applied Healthy.
    let discovery = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let m = scrape(&listen).await;
        if writes(&m, "status") >= n as f64 && get(&m, HEALTHY_TRUE) >= n as f64 {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(900) {
            panic!(
                "discovery not done in 900 s: {} statuses, {} healthy; log {}",
                writes(&m, "status"),
                get(&m, HEALTHY_TRUE),
                std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default()
            );
        }
    };
    let rss_discovery = proc_status_kib(&pid, "VmHWM:");
    let discovery_cpu = DiscoveryCpu::since(discovery_cpu0, (apiserver, etcd), &pid);
    // Cross-check on the server: every object there, every status Healthy=True.
    let workers: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    let (mut listed, mut healthy) = (0usize, 0usize);
    let mut params = ListParams::default().limit(1000);
    loop {
        let page = workers.list(&params).await.expect("list AmpWorkers");
        for w in &page.items {
            listed += 1;
            let ok = w.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Healthy" && c.status == "True")
            });
            healthy += usize::from(ok);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => break,
        }
    }
    println!(
        "discovery: start -> all {n} Healthy in {:.1} s (server holds {listed} AmpWorkers, {healthy} Healthy=True)",
        discovery.as_secs_f64()
    );
    discovery_cpu.print(discovery);
    if let Some(profile) = discovery_profile {
        let _ = print_apiserver_profile("discovery", profile.await.ok().flatten());
    }

    // Refreshes become due --status-refresh (60 s) after the first status: wait until
    // the steady state has every worker's refresh in it.
    tokio::time::sleep(Duration::from_secs(settle)).await;

    let m0 = scrape(&listen).await;
    let (api0, etcd0) = (cpu_secs(apiserver), cpu_secs(etcd));
    let operator_pid: u32 = pid.parse().expect("pid");
    let op0 = cpu_secs(operator_pid);
    let window_start = Instant::now();
    let window_start_wall = chrono::Utc::now();
    // The victim's last heartbeat is now; from here on the fleet UPDATE skips it.
    sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE node_id = $1")
        .bind(VICTIM)
        .execute(&pool)
        .await
        .expect("victim heartbeat");
    let last_heartbeat = Instant::now();
    victim_stopped.store(true, Ordering::SeqCst);
    let stale_seen = tokio::spawn(victim_shows(
        workers.clone(),
        ("Healthy", "False"),
        last_heartbeat,
    ));
    let stranded_seen = (jobs > 0).then(|| {
        tokio::spawn(victim_shows(
            workers.clone(),
            ("JobsStranded", "True"),
            last_heartbeat,
        ))
    });
    let profile = tokio::spawn(apiserver_profile(
        client.clone(),
        seconds.saturating_sub(5).clamp(1, 60),
    ));
    let mut rss_max = 0u64;
    while window_start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(proc_status_kib(&pid, "VmRSS:"));
    }
    let elapsed = window_start.elapsed().as_secs_f64();
    let window_end_wall = chrono::Utc::now();
    let (api1, etcd1) = (cpu_secs(apiserver), cpu_secs(etcd));
    let op1 = cpu_secs(operator_pid);
    let m1 = scrape(&listen).await;
    let rss_peak = proc_status_kib(&pid, "VmHWM:");
    let delta = |kind: &str| writes(&m1, kind) - writes(&m0, kind);
    let (status, refresh, fleet_w, events) = (
        delta("status"),
        delta("status_refresh"),
        delta("fleet_status"),
        delta("event"),
    );
    let all_writes = status + refresh + fleet_w + delta("create") + delta("delete");
    let stale_after = stale_seen.await.ok().flatten();
    println!(
        "steady state over {elapsed:.0} s: {:.1} status writes/s ({:.1} transitions/s, {:.1} heartbeatAt refreshes/s, {:.2} fleet/s; + {:.2} events/s)",
        all_writes / elapsed,
        status / elapsed,
        refresh / elapsed,
        fleet_w / elapsed,
        events / elapsed
    );
    // Mean over the window of a histogram (its _sum and _count deltas), in ms.
    let mean_ms = |name: &str| {
        let d = |suffix: &str| {
            let series = format!("amp_operator_{name}_seconds_{suffix}");
            get(&m1, &series) - get(&m0, &series)
        };
        1000.0 * d("sum") / d("count").max(1.0)
    };
    println!(
        "cycle: mean {:.1} ms, of which the metadata DB snapshot read {:.1} ms",
        mean_ms("reconcile_duration"),
        mean_ms("poll_duration")
    );
    println!(
        "refresh: expected interval {:.0} s, oldest LAST HEARTBEAT shown {:.0} s, {} due refreshes deferred",
        get(&m1, "amp_operator_status_refresh_interval_seconds"),
        get(&m1, "amp_operator_status_heartbeat_shown_age_seconds"),
        get(&m1, "amp_operator_status_refresh_deferred")
    );
    if audit {
        let audited = plane
            .audit_events()
            .expect("audit log")
            .into_iter()
            .filter(|e| {
                matches!(e["verb"].as_str(), Some("create" | "update" | "patch"))
                    && matches!(
                        e["objectRef"]["resource"].as_str(),
                        Some("ampworkers" | "ampworkerfleets")
                    )
                    && e["objectRef"]["namespace"] == ns.as_str()
                    && e["requestReceivedTimestamp"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t >= window_start_wall && t <= window_end_wall)
            })
            .count();
        println!(
            "audit log: {audited} AmpWorker/AmpWorkerFleet writes in the window = {:.1}/s",
            audited as f64 / elapsed
        );
    }
    println!(
        "kube-apiserver CPU: {:.1}% of a core (etcd {:.1}%)",
        (api1 - api0) / elapsed * 100.0,
        (etcd1 - etcd0) / elapsed * 100.0
    );
    let mdelta = |series: &str| get(&m1, series) - get(&m0, series);
    let cycles = mdelta("amp_operator_reconcile_cycles_total").max(1.0);
    let polls = mdelta("amp_operator_poll_duration_seconds_count").max(1.0);
    println!(
        "ampd operator CPU: {:.1}% of a core ({:.1} s over {elapsed:.0} s), {:.1} ms per cycle over {cycles:.0} cycles (wall {:.1} ms per cycle); snapshot read {:.1} ms per cycle (round trip)",
        (op1 - op0) / elapsed * 100.0,
        op1 - op0,
        (op1 - op0) * 1000.0 / cycles,
        mdelta("amp_operator_reconcile_duration_seconds_sum") * 1000.0 / cycles,
        mdelta("amp_operator_poll_duration_seconds_sum") * 1000.0 / polls,
    );
    println!(
        "PostgreSQL: snapshot statement {:.1} ms execution (median of 5 EXPLAIN ANALYZE)",
        snapshot_execution_ms(&pool).await
    );
    println!(
        "ampd operator RSS: {:.0} MiB steady (max over the window), peak {:.0} MiB over the run ({:.0} MiB by the end of discovery)",
        mib(rss_max),
        mib(rss_peak),
        mib(rss_discovery)
    );
    println!(
        "ampd operator heap at the window's end: {:.0} MiB allocated, {:.0} MiB resident (jemalloc)",
        get(&m1, "amp_operator_heap_allocated_bytes") / 1048576.0,
        get(&m1, "amp_operator_heap_resident_bytes") / 1048576.0
    );
    // What etcd stores for the fleet: the object as the API server serves it.
    let fleet_text = client
        .request_text(
            http::Request::get(format!(
                "/apis/amp.io/v1alpha1/namespaces/{ns}/ampworkerfleets/{FLEET}"
            ))
            .body(Vec::new())
            .expect("request"),
        )
        .await
        .unwrap_or_default();
    let mismatched = serde_json::from_str::<AmpWorkerFleet>(&fleet_text)
        .ok()
        .and_then(|f| f.status)
        .map_or((0, 0), |s| (s.mismatched_count, s.mismatched.len()));
    println!(
        "AmpWorkerFleet object: {:.1} KiB (status.mismatchedCount {}, {} ids listed)",
        fleet_text.len() as f64 / 1024.0,
        mismatched.0,
        mismatched.1
    );
    // What every watch event of a refresh carries: the whole object, managedFields too.
    let worker_text = client
        .request_text(
            http::Request::get(format!(
                "/apis/amp.io/v1alpha1/namespaces/{ns}/ampworkers/{}",
                amp_operator::operator::naming::object_name("worker-00001")
            ))
            .body(Vec::new())
            .expect("request"),
        )
        .await
        .unwrap_or_default();
    let managed = serde_json::from_str::<serde_json::Value>(&worker_text)
        .ok()
        .map_or(0, |v| v["metadata"]["managedFields"].to_string().len());
    println!(
        "AmpWorker object: {:.1} KiB as served (managedFields {:.1} KiB); a refresh patch is {} bytes",
        worker_text.len() as f64 / 1024.0,
        managed as f64 / 1024.0,
        serde_json::json!({"status": {"heartbeatAt": "2026-12-07T10:00:00Z"}})
            .to_string()
            .len()
    );
    match stale_after {
        Some(d) => println!(
            "heartbeat stop -> Healthy=False seen by a watch: {:.1} s (timeout 30 s)",
            d.as_secs_f64()
        ),
        None => println!("heartbeat stop -> Healthy=False: not seen within 120 s"),
    }
    if let Some(stranded_seen) = stranded_seen {
        match stranded_seen.await.ok().flatten() {
            Some(d) => println!(
                "heartbeat stop -> JobsStranded=True seen by a watch: {:.1} s (timeout 30 s, jobs read every 10 s)",
                d.as_secs_f64()
            ),
            None => println!("heartbeat stop -> JobsStranded=True: not seen within 120 s"),
        }
    }
    let running_check = print_apiserver_profile("operator running", profile.await.ok().flatten());
    let _ = child.kill();
    let _ = child.wait();
    print_operator_log(&dir.path().join("operator.log"));
    let idle: u64 = env_or("AMP_BENCH_IDLE_SECONDS", 60);
    if idle > 0 {
        let running = ((api1 - api0) / elapsed, running_check);
        apiserver_without_operator(&client, idle, (apiserver, etcd), running).await;
    }
    heartbeats.abort();
    drop(locks);

    if write_cost > 0 {
        write_cost_per_kind(&workers, write_cost.min(n), apiserver, etcd).await;
    }
}

/// One Pod per worker, named by its node id and owned by a StatefulSet object (no
/// kubelet runs them: they stay Pending, which the cost of watching and linking them does
/// not depend on), plus the `default` ServiceAccount Pod admission looks up.
async fn create_worker_pods(client: &kube::Client, ns: &str, n: usize) {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
    let started = Instant::now();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))
        .expect("service account");
    let _ = sas.create(&PostParams::default(), &sa).await;
    let template = serde_json::json!({
        "metadata": {"labels": {"app": "amp-worker"}},
        "spec": {"containers": [{"name": "ampd", "image": "amp:bench"}]}
    });
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "amp-worker"},
        "spec": {"serviceName": "amp-worker", "replicas": n,
                 "selector": {"matchLabels": {"app": "amp-worker"}}, "template": template}
    }))
    .expect("statefulset");
    let owner = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("create StatefulSet")
        .metadata
        .uid
        .expect("uid");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = futures::stream::iter(0..n)
        .map(|i| {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": format!("worker-{i:05}"),
                    "labels": {"app": "amp-worker"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                         "name": "amp-worker", "uid": owner, "controller": true}]
                },
                "spec": template["spec"]
            }))
            .expect("pod");
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod).await.is_ok() }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(created, n, "every worker Pod created");
    println!(
        "pods: {n} worker Pods created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The kube-apiserver's own CPU profile over `seconds` (Go's `/debug/pprof/profile`,
/// served to the admin), summarised; None if it could not be read.
async fn apiserver_profile(client: kube::Client, seconds: u64) -> Option<pprof::Top> {
    let request = http::Request::get(format!("/debug/pprof/profile?seconds={seconds}"))
        .body(Vec::new())
        .ok()?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .ok()?;
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()?
        .to_bytes();
    match pprof::top_of_gzipped(&body) {
        Ok(top) => Some(top),
        Err(e) => {
            println!("kube-apiserver profile: unreadable ({e})");
            None
        }
    }
}

/// The share of a profile's CPU in the watch cache's consistency checker (Kubernetes
/// 1.34 and later list and decode every object from etcd every five minutes: at 50,000
/// AmpWorkers about 27 s of CPU, whether the operator runs or not).
fn consistency_check_share(top: &pprof::Top) -> f64 {
    let in_check = top
        .by_function
        .iter()
        .filter(|(name, _, _)| name.contains("consistencyChecker"))
        .map(|(_, _, cumulative)| *cumulative)
        .max()
        .unwrap_or(0);
    in_check as f64 / top.total_ns.max(1) as f64
}

/// Prints the profile's top; returns the consistency checker's share of it (None: no
/// profile).
fn print_apiserver_profile(what: &str, top: Option<pprof::Top>) -> Option<f64> {
    let Some(top) = top else {
        println!("kube-apiserver profile ({what}): not taken");
        return None;
    };
    println!(
        "kube-apiserver CPU profile ({what}): {:.1} s of CPU sampled; cumulative% flat% function",
        top.total_ns as f64 / 1e9
    );
    let focus = [
        "apiserver/pkg/endpoints/handlers.",
        "fieldmanager",
        "watch",
        "Watch",
        "cacher",
        "json",
        "audit",
        "admission",
        "validation",
        "etcd3",
        "runtime.gcBgMarkWorker",
        "runtime.mallocgc",
        "crypto/tls",
        "authentication",
        "authorization",
    ];
    for line in pprof::report(&top, 45, &focus) {
        println!("  {line}");
    }
    println!("  top of stack:");
    for line in pprof::report_flat(&top, 20) {
        println!("  {line}");
    }
    Some(consistency_check_share(&top))
}

/// The same objects with the operator stopped: what the API server spends holding them,
/// and so what the operator adds on top (`running`: its CPU share while it ran, and the
/// consistency checker's share of that window's profile).
async fn apiserver_without_operator(
    client: &kube::Client,
    seconds: u64,
    (apiserver, etcd): (u32, u32),
    (running, running_check): (f64, Option<f64>),
) {
    // Let the operator's last requests and watch teardown pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let profile = tokio::spawn(apiserver_profile(
        client.clone(),
        seconds.saturating_sub(5).clamp(1, 60),
    ));
    let (a0, e0, t0) = (cpu_secs(apiserver), cpu_secs(etcd), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (a1, e1) = (cpu_secs(apiserver), cpu_secs(etcd));
    let elapsed = t0.elapsed().as_secs_f64();
    let idle = (a1 - a0) / elapsed;
    println!(
        "kube-apiserver CPU with the operator stopped ({seconds} s, same objects): {:.1}% of a core (etcd {:.1}%); the operator adds {:.1}% of a core",
        idle * 100.0,
        (e1 - e0) / elapsed * 100.0,
        (running - idle) * 100.0
    );
    let stopped_check = print_apiserver_profile("operator stopped", profile.await.ok().flatten());
    for (window, share) in [("running", running_check), ("stopped", stopped_check)] {
        if let Some(share) = share.filter(|s| *s > 0.05) {
            println!(
                "NOTE: the watch cache's consistency checker ran in the operator-{window} window ({:.0}% of its sampled API server CPU): \"the operator adds\" above is not what the operator adds; run again",
                share * 100.0
            );
        }
    }
}

/// How long after `since` a watch sees the victim's condition `type_` at `status`
/// (None: not within 120 s).
async fn victim_shows(
    workers: Api<AmpWorker>,
    (type_, status): (&'static str, &'static str),
    since: Instant,
) -> Option<Duration> {
    let shown = await_condition(workers, VICTIM, move |w: Option<&AmpWorker>| {
        w.and_then(|w| w.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status)
        })
    });
    tokio::time::timeout(Duration::from_secs(120), shown)
        .await
        .ok()
        .and_then(Result::ok)
        .map(|_| since.elapsed())
}

/// `jobs` jobs over the `n` workers as Amp's scheduler leaves them (nightly schema): job
/// `i` on worker `i % n`; the first two of every ten rounds unfinished (RUNNING, one in
/// four STOPPING), the rest finished; every thousandth now on a node id without a row.
async fn insert_amp_jobs(pool: &sqlx::PgPool, n: usize, jobs: usize) {
    sqlx::query(
        "INSERT INTO jobs (node_id, idempotency_key)
         SELECT format('worker-%s', lpad((i % $1)::text, 5, '0')), 'k' || i
           FROM generate_series(0, $2 - 1) AS i",
    )
    .bind(n as i64)
    .bind(jobs as i64)
    .execute(pool)
    .await
    .expect("insert Amp's jobs");
    sqlx::query(
        "INSERT INTO jobs_status (job_id, node_id, status, updated_at)
         SELECT id, CASE WHEN id % 1000 = 0 THEN 'gone-' || id ELSE node_id END,
                CASE WHEN ((id - 1) / $1) % 10 < 2
                     THEN CASE WHEN id % 4 = 0 THEN 'STOPPING' ELSE 'RUNNING' END
                     ELSE (ARRAY['COMPLETED','STOPPED','FATAL'])[1 + id % 3] END,
                now() - (id % 600) * interval '1 second'
           FROM jobs",
    )
    .bind(n as i64)
    .execute(pool)
    .await
    .expect("insert Amp's job statuses");
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
}

/// The operator's warnings and errors over the run (RUST_LOG=warn): a DB read past
/// `--db-timeout` turns every worker `Unknown` and back, a storm of transitions that
/// would otherwise pass for the steady state.
fn print_operator_log(path: &std::path::Path) {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    println!("ampd operator log: {} warning/error lines", lines.len());
    for l in lines.iter().take(10) {
        println!("  {l}");
    }
}

/// PostgreSQL's own execution time of the operator's snapshot statement (median of 5),
/// read from `EXPLAIN (ANALYZE, FORMAT JSON)`: the server's share of a snapshot read.
async fn snapshot_execution_ms(pool: &sqlx::PgPool) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let sql = format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) {}",
            metadata_db::OPERATOR_SNAPSHOT_SQL
        );
        // As the operator runs it: without JIT (see metadata_db::snapshot).
        let Ok(mut tx) = pool.begin().await else {
            continue;
        };
        let _ = sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await;
        // A constant of ours, not input: nothing to inject.
        let plan: Option<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await
            .ok();
        let _ = tx.rollback().await;
        if let Some(ms) = plan.as_ref().and_then(|p| p[0]["Execution Time"].as_f64()) {
            samples.push(ms);
        }
    }
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// API server + etcd CPU per status write, the operator stopped: the same `k` objects
/// get `heartbeatAt` moved by a server-side apply of the whole status, then by a merge
/// patch of that field alone (8 at a time, as the operator writes).
async fn write_cost_per_kind(workers: &Api<AmpWorker>, k: usize, apiserver: u32, etcd: u32) {
    let list = workers
        .list(&ListParams::default().limit(k as u32))
        .await
        .expect("list");
    let objects: Vec<AmpWorker> = list.items.into_iter().take(k).collect();
    let base = chrono::Utc::now();
    for (kind, round) in [("apply whole status", 1i64), ("merge patch heartbeatAt", 2)] {
        let (a0, e0, t0) = (cpu_secs(apiserver), cpu_secs(etcd), Instant::now());
        let results: Vec<bool> = futures::stream::iter(objects.iter().enumerate())
            .map(|(i, w)| {
                let at = (base + chrono::Duration::seconds(round * 1000 + i as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let name = w.metadata.name.clone().unwrap_or_default();
                let mut status = w.status.clone().unwrap_or_default();
                async move {
                    status.heartbeat_at = amp_operator::timestamps::parse_rfc3339(&at);
                    let r = if round == 1 {
                        let body = serde_json::json!({
                            "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker", "status": status
                        });
                        workers
                            .patch_status(
                                &name,
                                &PatchParams::apply("amp-operator").force(),
                                &Patch::Apply(&body),
                            )
                            .await
                    } else {
                        let body = serde_json::json!({"status": {"heartbeatAt": at}});
                        let params = PatchParams {
                            field_manager: Some("amp-operator".into()),
                            ..PatchParams::default()
                        };
                        workers
                            .patch_status(&name, &params, &Patch::Merge(&body))
                            .await
                    };
                    r.is_ok()
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let ok = results.iter().filter(|r| **r).count();
        let (a1, e1, wall) = (cpu_secs(apiserver), cpu_secs(etcd), t0.elapsed());
        println!(
            "write cost, {kind}: {ok}/{} ok in {:.1} s ({:.0}/s); kube-apiserver {:.2} ms CPU/write, etcd {:.2} ms CPU/write",
            objects.len(),
            wall.as_secs_f64(),
            ok as f64 / wall.as_secs_f64(),
            (a1 - a0) * 1000.0 / ok.max(1) as f64,
            (e1 - e0) * 1000.0 / ok.max(1) as f64
        );
    }
}
