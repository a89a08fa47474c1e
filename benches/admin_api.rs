//! Admin API and ampctl at fleet scale: `GET /workers` latency and `ampctl worker list
//! --json` wall time at 10,000 registered workers; `ampctl worker versions` against the
//! troubleshooting guide's version-distribution loop (one `inspect` per worker) at 1,000;
//! the Admin API's peak RSS while streaming 100,000 rows; `ampctl worker versions`
//! against Amp's own Admin API wire format (the stand-in of tests/common/amp_api.rs: one
//! list of node ids, then a `GET /workers/{id}` per worker, at most
//! `DETAIL_CONCURRENCY` in flight) at 1,000.
//!
//!   cargo bench --bench admin_api
//!   AMP_BENCH_WORKERS=10000 AMP_BENCH_LOOP_WORKERS=1000 AMP_BENCH_REQUESTS=50 \
//!     AMP_BENCH_RSS_WORKERS=100000 AMP_BENCH_AMP_WORKERS=1000 cargo bench --bench admin_api
//!   AMP_BENCH_ONLY=amp cargo bench --bench admin_api    # only the Amp wire format figures

mod support;
use support::{env_or, free_addr, percentile, proc_status_kib};

#[path = "../tests/common/amp_api.rs"]
mod amp_api;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amp_operator::admin_client::AdminClient;
use amp_operator::metadata_db;
use amp_operator::testing::postgres::{PgSettings, TempPostgres};

async fn fill(pool: &sqlx::PgPool, n: usize) {
    sqlx::query("TRUNCATE workers")
        .execute(pool)
        .await
        .expect("truncate");
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         SELECT format('worker-%s', lpad(i::text, 5, '0')),
                jsonb_build_object('version', CASE WHEN i % 3 = 0 THEN 'v0.0.21-8-ga1b2c3d4' ELSE 'v0.0.22-15-g8b065bde' END,
                                   'commit_sha', '8b065bde', 'commit_timestamp', '2025-10-30T09:00:00Z', 'build_date', '2025-10-30'),
                now(), now(), now()
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(n as i64)
    .execute(pool)
    .await
    .expect("insert workers");
}

fn time_cmd(cmd: &mut Command) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let out = cmd.stderr(Stdio::inherit()).output().expect("run");
    assert!(out.status.success(), "{cmd:?} failed");
    (started.elapsed(), out.stdout)
}

/// `ampctl worker versions` against Amp's wire format at `n` workers, each detail answer
/// taking `delay` (0: the stand-in's own speed; a few ms: a remote API over a DB).
fn amp_versions(ampctl: &str, n: usize, delay: Duration) {
    let created = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let fleet = (0..n)
        .map(|i| {
            let version = if i % 3 == 0 {
                "v0.0.21-8-ga1b2c3d4"
            } else {
                "v0.0.22-15-g8b065bde"
            };
            amp_api::AmpWorker::live(&format!("worker-{i:05}"), version, created)
        })
        .collect();
    let api = amp_api::AmpApi::start(fleet, &[], delay);
    let runs = 5;
    let (median, max) = time_versions(ampctl, &api.url(), runs);
    assert_eq!(
        api.detail_requests(),
        n * runs,
        "one detail request per worker"
    );
    println!(
        "ampctl worker versions against Amp's Admin API at {n} workers ({runs} runs; 1 list + {n} GET /workers/{{id}}, at most {} in flight; {delay:?} per detail answer): median {median:.1?}, max {max:.1?}",
        api.max_in_flight(),
    );
    api.reset_counters();
    let (wall, _) = time_cmd(
        Command::new(ampctl)
            .args(["--admin-url", &api.url(), "worker", "list", "--json"])
            .stdout(Stdio::piped()),
    );
    println!(
        "ampctl worker list --json against Amp's Admin API at {n} workers: {wall:.1?}, {} detail requests",
        api.detail_requests()
    );
}

/// Median wall time of `runs` × `ampctl worker versions` against `url`.
fn time_versions(ampctl: &str, url: &str, runs: usize) -> (Duration, Duration) {
    let mut walls: Vec<Duration> = (0..runs)
        .map(|_| {
            time_cmd(
                Command::new(ampctl)
                    .args(["--admin-url", url, "worker", "versions"])
                    .stdout(Stdio::piped()),
            )
            .0
        })
        .collect();
    walls.sort();
    (
        percentile(&walls, 0.5),
        walls.last().copied().unwrap_or_default(),
    )
}

/// The same question against our Admin API (one request) at `n` workers, for comparison.
async fn ours_versions(ampd: &str, ampctl: &str, n: usize) {
    let pg = TempPostgres::start().expect("start PostgreSQL");
    let pool = metadata_db::connect_pool(&pg.url(), "bench", 2)
        .await
        .expect("connect");
    metadata_db::migrate(&pool).await.expect("migrate");
    fill(&pool, n).await;
    let addr = free_addr();
    let url = format!("http://{addr}");
    let mut api = Command::new(ampd)
        .args(["admin-api", "--listen", &addr, "--log-format", "json"])
        .env("AMP_DATABASE_URL", pg.url())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn admin-api");
    let client = AdminClient::new(&url, None, Duration::from_secs(30)).expect("client");
    while client.list().await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (median, max) = time_versions(ampctl, &url, 5);
    println!(
        "ampctl worker versions against our Admin API at {n} workers (5 runs; 1 request): median {median:.1?}, max {max:.1?}"
    );
    let _ = api.kill();
    let _ = api.wait();
}

#[tokio::main]
async fn main() {
    let ampctl = env!("CARGO_BIN_EXE_ampctl");
    let amp_n: usize = env_or("AMP_BENCH_AMP_WORKERS", 1_000);
    if std::env::var("AMP_BENCH_ONLY").as_deref() == Ok("amp") {
        ours_versions(env!("CARGO_BIN_EXE_ampd"), ampctl, amp_n).await;
        amp_versions(ampctl, amp_n, Duration::ZERO);
        amp_versions(ampctl, amp_n, Duration::from_millis(5));
        return;
    }
    let n: usize = env_or("AMP_BENCH_WORKERS", 10_000);
    let loop_n: usize = env_or("AMP_BENCH_LOOP_WORKERS", 1_000);
    let requests: usize = env_or("AMP_BENCH_REQUESTS", 50);
    let rss_n: usize = env_or("AMP_BENCH_RSS_WORKERS", 100_000);
    let ampd = env!("CARGO_BIN_EXE_ampd");

    // AMP_BENCH_DB_TLS=verify-full: a TLS-only server, verified (default: plain).
    let (_pg, url) = TempPostgres::start_bench(
        PgSettings::default()
            .set("fsync", "off")
            .set("max_connections", 200),
    )
    .expect("start PostgreSQL");
    let pool = metadata_db::connect_pool(&url, "bench", 2)
        .await
        .expect("connect");
    metadata_db::migrate(&pool).await.expect("migrate");
    fill(&pool, n).await;

    let addr = free_addr();
    let url = format!("http://{addr}");
    let mut api = Command::new(ampd)
        .args(["admin-api", "--listen", &addr, "--log-format", "json"])
        .env("AMP_DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn admin-api");
    let client = AdminClient::new(&url, None, Duration::from_secs(30)).expect("client");
    let started = Instant::now();
    while client.list_workers().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "admin API did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // GET /workers at n workers: one streamed answer (read whole), and the typed
    // client's paged listing (limit=1000, following `continue`, parsed).
    let http = reqwest::Client::new();
    let all_url = format!("{url}/workers");
    let mut lat = Vec::new();
    for _ in 0..requests {
        let t = Instant::now();
        let body = http
            .get(&all_url)
            .send()
            .await
            .expect("GET /workers")
            .bytes()
            .await
            .expect("body");
        lat.push(t.elapsed());
        assert!(body.ends_with(b"]}"));
    }
    lat.sort();
    println!(
        "GET /workers (streamed, unpaged) at {n} workers ({requests} requests): p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    let mut lat = Vec::new();
    for _ in 0..requests {
        let t = Instant::now();
        let list = client.list_workers().await.expect("GET /workers pages");
        lat.push(t.elapsed());
        assert_eq!(list.len(), n);
    }
    lat.sort();
    println!(
        "typed client, pages of {} at {n} workers ({requests} listings): p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        amp_operator::admin_client::PAGE_SIZE,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );

    let mut walls = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let (wall, out) = time_cmd(
            Command::new(ampctl)
                .args(["--admin-url", &url, "worker", "list", "--json"])
                .stdout(Stdio::piped()),
        );
        bytes = out.len();
        walls.push(wall);
    }
    walls.sort();
    println!(
        "ampctl worker list --json at {n} workers (10 runs, {} KiB out): median {:.1?}, max {:.1?}",
        bytes / 1024,
        percentile(&walls, 0.5),
        walls.last().copied().unwrap_or_default()
    );

    // The guide's loop vs one command, on loop_n workers.
    fill(&pool, loop_n).await;
    let bin_dir = std::path::Path::new(ampctl).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = r#"ampctl worker list --json | jq -r '.workers[].node_id' | while read worker; do
  ampctl worker inspect "$worker" --json 2>/dev/null | jq -r '.info.version // "unknown"'
done | sort | uniq -c"#;
    let (loop_wall, loop_out) = time_cmd(
        Command::new("bash")
            .args(["-c", script])
            .env("PATH", &path)
            .env("AMP_ADMIN_URL", &url)
            .stdout(Stdio::piped()),
    );
    let (one_wall, one_out) = time_cmd(
        Command::new(ampctl)
            .args(["--admin-url", &url, "worker", "versions"])
            .stdout(Stdio::piped()),
    );
    println!(
        "version distribution at {loop_n} workers: guide's inspect loop {:.2?}, `ampctl worker versions` {:.1?}: {:.0}x faster",
        loop_wall,
        one_wall,
        loop_wall.as_secs_f64() / one_wall.as_secs_f64()
    );
    println!(
        "loop output:\n{}ampctl output:\n{}",
        String::from_utf8_lossy(&loop_out),
        String::from_utf8_lossy(&one_out)
    );

    // Memory while serving a large fleet: the answer is streamed row by row, so the
    // process's peak RSS stays flat however many rows it serves.
    let pid = api.id().to_string();
    let before = proc_status_kib(&pid, "VmHWM:");
    fill(&pool, rss_n).await;
    let mut out_bytes = 0;
    for _ in 0..3 {
        let body = http
            .get(&all_url)
            .send()
            .await
            .expect("GET /workers")
            .bytes()
            .await
            .expect("body");
        out_bytes = body.len();
    }
    println!(
        "admin-api peak RSS: {} MiB after the runs above, {} MiB after streaming {rss_n} workers ({} MiB of JSON) 3 times",
        before / 1024,
        proc_status_kib(&pid, "VmHWM:") / 1024,
        out_bytes / (1024 * 1024)
    );
    let _ = api.kill();
    let _ = api.wait();

    amp_versions(ampctl, amp_n, Duration::ZERO);
    amp_versions(ampctl, amp_n, Duration::from_millis(5));
}
