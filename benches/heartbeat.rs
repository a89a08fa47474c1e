//! Heartbeat load: N simulated workers, each on its own lock-holding session (as the real
//! agent), heartbeating at 1 Hz against one throwaway PostgreSQL. Prints latency
//! percentiles and the database's CPU use.
//!
//!   cargo bench --bench heartbeat                         # 1,000 workers, 20 s
//!   AMP_BENCH_WORKERS=2000 AMP_BENCH_SECONDS=30 cargo bench --bench heartbeat
//!   AMP_BENCH_SYNC_COMMIT=on cargo bench --bench heartbeat  # compare with durable heartbeats
//!   AMP_BENCH_HEARTBEAT_INDEX=on cargo bench --bench heartbeat  # with the dropped index
//!   AMP_BENCH_WORKERS=10000 AMP_BENCH_CONNECTIONS=500 cargo bench --bench heartbeat
//!     # 10,000 rows heartbeating through 500 sessions (10,000 backends do not fit here)
//!
//! After the run it prints how many updates were HOT (heap-only: no index entry written)
//! and the table's and indexes' sizes.

mod support;
use support::{env_or, percentile};

use std::time::{Duration, Instant};

use amp_operator::build_info::BuildInfo;
use amp_operator::metadata_db;
use amp_operator::node_id::NodeId;
use amp_operator::testing::postgres::{PgSettings, TempPostgres};

/// utime + stime, in clock ticks, of the postmaster and all its children.
fn postgres_cpu_ticks(data_dir: &std::path::Path) -> u64 {
    let pid: u32 = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse().ok())
        .expect("postmaster.pid");
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the ")" that ends the command name: state ppid ... utime(14) stime(15).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let this: u32 = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let ppid: u32 = f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if this == pid || ppid == pid {
            total += f.get(11).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            total += f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

#[tokio::main]
async fn main() {
    let workers: usize = env_or("AMP_BENCH_WORKERS", 1000);
    let seconds: u64 = env_or("AMP_BENCH_SECONDS", 20);
    let sync_commit: String = env_or("AMP_BENCH_SYNC_COMMIT", "off".to_string());
    let with_index = env_or("AMP_BENCH_HEARTBEAT_INDEX", "off".to_string()) == "on";
    let sessions: usize = env_or("AMP_BENCH_CONNECTIONS", workers).clamp(1, workers);

    // AMP_BENCH_DB_TLS: off (plain server) or verify-full (TLS-only server, verified).
    let tls = env_or("AMP_BENCH_DB_TLS", "off".to_string()) == "verify-full";

    // Durable settings (fsync on) as in production; only the connection limit is raised.
    let (pg, url) =
        TempPostgres::start_bench(PgSettings::default().set("max_connections", sessions + 50))
            .expect("postgres");
    let pool = metadata_db::connect_pool(&url, "bench", 4)
        .await
        .expect("pool");
    metadata_db::migrate(&pool).await.expect("migrate");
    if with_index {
        // The index migration 0002 dropped, to measure what it cost.
        sqlx::query("CREATE INDEX workers_heartbeat_at_idx ON workers (heartbeat_at)")
            .execute(&pool)
            .await
            .expect("create index");
    }
    let info = BuildInfo::current();

    println!(
        "heartbeat bench: {workers} workers over {sessions} sessions, {seconds} s at 1 Hz, synchronous_commit={sync_commit}, heartbeat_at index {}, TLS {}",
        if with_index { "on" } else { "off" },
        if tls { "verify-full" } else { "off" }
    );
    let options = metadata_db::connect_options(&url, "bench-worker")
        .unwrap()
        .options([("synchronous_commit", sync_commit.as_str())]);

    let setup = Instant::now();
    let mut conns = Vec::with_capacity(sessions);
    for s in 0..sessions {
        // Session s carries workers s, s + sessions, s + 2 * sessions, ...
        let ids: Vec<NodeId> = (s..workers)
            .step_by(sessions)
            .map(|i| NodeId::parse(&format!("bench-worker-{i:05}")).unwrap())
            .collect();
        let mut conn = metadata_db::connect_one(&options, &url)
            .await
            .expect("connect");
        for id in &ids {
            assert!(metadata_db::try_advisory_lock(&mut conn, id).await.unwrap());
            metadata_db::register(&mut conn, id, &info, None)
                .await
                .unwrap();
        }
        conns.push((ids, conn));
    }
    println!(
        "setup: {workers} workers locked and registered on {sessions} sessions in {:.1?}",
        setup.elapsed()
    );

    let cpu_before = postgres_cpu_ticks(&pg.data_dir());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(sessions);
    for (i, (ids, mut conn)) in conns.into_iter().enumerate() {
        // Spread the workers' phases over the second, as real workers start at random times.
        let offset = Duration::from_micros((i as u64 * 1_000_000) / sessions as u64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(seconds as usize + 1);
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + offset,
                Duration::from_secs(1),
            );
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                for id in &ids {
                    let t = Instant::now();
                    assert!(
                        metadata_db::heartbeat(&mut conn, id)
                            .await
                            .expect("heartbeat")
                    );
                    latencies.push(t.elapsed());
                }
            }
            (latencies, conn)
        }));
    }
    let mut all = Vec::new();
    let mut conns = Vec::new();
    for t in tasks {
        let (lat, conn) = t.await.unwrap();
        all.extend(lat);
        conns.push(conn);
    }
    let wall = started.elapsed();
    let cpu_ticks = postgres_cpu_ticks(&pg.data_dir()) - cpu_before;
    drop(conns);

    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let db_cpu = cpu_ticks as f64 / ticks_per_sec;
    all.sort();
    println!(
        "heartbeats: {} in {:.1?} ({:.0}/s)",
        all.len(),
        wall,
        all.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "db cpu: {db_cpu:.1} s over {:.1} s = {:.0}% of one core ({} cores on this machine)",
        wall.as_secs_f64(),
        100.0 * db_cpu / wall.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Counters reach pg_stat_user_tables when the sessions end; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (upd, hot, table, indexes): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd, pg_relation_size('workers'), pg_indexes_size('workers')
         FROM pg_stat_user_tables WHERE relname = 'workers'",
    )
    .fetch_one(&pool)
    .await
    .expect("table stats");
    println!(
        "updates: {upd}, HOT {hot} ({:.1}%); table {} KiB, indexes {} KiB after the run",
        100.0 * hot as f64 / upd.max(1) as f64,
        table / 1024,
        indexes / 1024
    );
}
