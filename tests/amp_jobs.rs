//! Reading Amp's jobs per worker from a metadata DB of either job schema (nightly's
//! `jobs_status`, v0.0.35's `jobs.status`), built by `amp_operator::testing::amp_db` from
//! the facts sheet: what each worker has, jobs never picked up, jobs of an assignee
//! without a row, unknown statuses, a reader without grants, and nothing ever written.

mod common;

use std::time::Duration;

use amp_operator::metadata_db::{self, JobSchema, JobsRead, JobsSnapshot, NodeJobs};
use amp_operator::testing::amp_db::{self, AmpJobs, AmpSchema, amp_info};
use amp_operator::testing::postgres::TempPostgres;
use serde_json::Value;
use sqlx::PgPool;

const BOUND: Duration = Duration::from_secs(5);

async fn amp_db(jobs: Option<AmpJobs>) -> (TempPostgres, PgPool) {
    let pg = TempPostgres::start().expect("start throwaway PostgreSQL");
    let pool = metadata_db::connect_pool(&pg.url(), "tests", 3)
        .await
        .expect("connect");
    amp_db::create_with_jobs(&pool, AmpSchema::Current, jobs)
        .await
        .expect("Amp's schema");
    (pg, pool)
}

/// The operator's pool: read-only sessions, every call bounded.
fn reader(url: &str) -> PgPool {
    metadata_db::connect_pool_lazy_bounded(url, "tests", 2, BOUND).unwrap()
}

async fn register(pool: &PgPool, node_ids: &[&str]) {
    let mut conn = pool.acquire().await.unwrap();
    for node_id in node_ids {
        amp_db::register(&mut conn, node_id, &amp_info("v0.0.35"))
            .await
            .unwrap();
    }
}

async fn read(pool: &PgPool) -> JobsSnapshot {
    match metadata_db::jobs_within(pool, BOUND)
        .await
        .expect("jobs read")
    {
        JobsRead::Read(snapshot) => snapshot,
        other => panic!("jobs not read: {other:?}"),
    }
}

/// Every row of every job table there is, as JSON.
async fn job_rows(pool: &PgPool) -> Vec<(String, Value)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables
          WHERE schemaname = 'public' AND tablename LIKE 'job%' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        // Table names from the catalog, not from input.
        let all: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(json_agg(t ORDER BY t::text), '[]') FROM {table} t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        rows.push((table, all));
    }
    rows
}

fn node(s: &JobsSnapshot, node_id: &str) -> NodeJobs {
    s.node(node_id)
        .cloned()
        .unwrap_or_else(|| panic!("no jobs for {node_id}: {s:?}"))
}

/// Counts only: the oldest scheduled job is checked on its own.
fn counts(mut n: NodeJobs) -> NodeJobs {
    n.oldest_scheduled = None;
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn nightly_jobs_are_read_from_jobs_status_per_worker() {
    let (pg, pool) = amp_db(Some(AmpJobs::Nightly)).await;
    register(&pool, &["busy", "idle", "dead"]).await;
    let job = |first: &'static str, current: &'static str, status: &'static str, age: u64| {
        let pool = pool.clone();
        async move {
            amp_db::add_job(
                &pool,
                AmpJobs::Nightly,
                first,
                current,
                status,
                Duration::from_secs(age),
            )
            .await
            .unwrap()
        }
    };
    // A healthy worker with running jobs (legacy `jobs.status` says SCHEDULED for each).
    job("busy", "busy", "RUNNING", 30).await;
    job("busy", "busy", "RUNNING", 20).await;
    job("busy", "busy", "STOP_REQUESTED", 5).await;
    job("busy", "busy", "COMPLETED", 900).await;
    job("busy", "busy", "PAUSED", 5).await;
    // Scheduled and never picked up: the oldest is the one to name.
    job("idle", "idle", "SCHEDULED", 60).await;
    let stuck = job("idle", "idle", "SCHEDULED", 300).await;
    job("idle", "idle", "FATAL", 900).await;
    // A stopped worker's jobs stay as they were; a failure is retried on it.
    job("dead", "dead", "RUNNING", 600).await;
    job("dead", "dead", "STOPPING", 600).await;
    job("dead", "dead", "ERROR", 600).await;
    job("dead", "dead", "STOPPED", 600).await;
    // Rescheduled to a node id that has no row at all.
    job("busy", "ghost", "RUNNING", 100).await;
    let before = job_rows(&pool).await;

    let snapshot = read(&reader(&pg.url())).await;

    assert_eq!(snapshot.schema, JobSchema::Nightly);
    let ids: Vec<&str> = snapshot.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(ids, ["busy", "dead", "ghost", "idle"]);
    assert_eq!(
        node(&snapshot, "busy"),
        NodeJobs {
            node_id: "busy".into(),
            registered: true,
            running: 2,
            stop_requested: 1,
            unknown: 1,
            ..NodeJobs::default()
        }
    );
    assert_eq!(snapshot.unknown_statuses, ["PAUSED"]);
    let idle = node(&snapshot, "idle");
    assert_eq!(
        counts(idle.clone()),
        NodeJobs {
            node_id: "idle".into(),
            registered: true,
            scheduled: 2,
            ..NodeJobs::default()
        }
    );
    let oldest = idle.oldest_scheduled.expect("an oldest scheduled job");
    assert_eq!(oldest.id, stuck);
    assert!(
        oldest.age(snapshot.db_now) >= chrono::Duration::seconds(300),
        "{oldest:?} at {}",
        snapshot.db_now
    );
    assert_eq!(
        node(&snapshot, "dead"),
        NodeJobs {
            node_id: "dead".into(),
            registered: true,
            running: 1,
            stopping: 1,
            retrying: 1,
            ..NodeJobs::default()
        }
    );
    assert_eq!(
        node(&snapshot, "ghost"),
        NodeJobs {
            node_id: "ghost".into(),
            registered: false,
            running: 1,
            ..NodeJobs::default()
        }
    );
    assert_eq!(
        snapshot
            .unregistered()
            .map(|n| n.node_id.as_str())
            .collect::<Vec<_>>(),
        ["ghost"]
    );
    assert_eq!(job_rows(&pool).await, before, "the job tables changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_legacy_jobs_status_is_never_read_as_current() {
    let (pg, pool) = amp_db(Some(AmpJobs::Nightly)).await;
    register(&pool, &["w1"]).await;
    amp_db::add_job(
        &pool,
        AmpJobs::Nightly,
        "w1",
        "w1",
        "RUNNING",
        Duration::ZERO,
    )
    .await
    .unwrap();
    let legacy: Vec<String> = sqlx::query_scalar("SELECT status FROM jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        legacy,
        ["SCHEDULED"],
        "the fixture leaves jobs.status as Amp does"
    );

    let snapshot = read(&reader(&pg.url())).await;
    assert_eq!(
        snapshot.nodes,
        [NodeJobs {
            node_id: "w1".into(),
            registered: true,
            running: 1,
            ..NodeJobs::default()
        }]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn release_0_0_35_jobs_are_read_from_jobs() {
    let (pg, pool) = amp_db(Some(AmpJobs::Release0035)).await;
    register(&pool, &["a", "b"]).await;
    for (node_id, status, age) in [
        ("a", "RUNNING", 10),
        ("a", "SCHEDULED", 200),
        ("a", "FAILED", 10),
        ("a", "COMPLETED", 10),
        ("b", "STOPPING", 10),
        ("b", "", 10),
    ] {
        amp_db::add_job(
            &pool,
            AmpJobs::Release0035,
            node_id,
            node_id,
            status,
            Duration::from_secs(age),
        )
        .await
        .unwrap();
    }
    let before = job_rows(&pool).await;

    let snapshot = read(&reader(&pg.url())).await;

    assert_eq!(snapshot.schema, JobSchema::Release0035);
    assert_eq!(
        counts(node(&snapshot, "a")),
        NodeJobs {
            node_id: "a".into(),
            registered: true,
            running: 1,
            scheduled: 1,
            ..NodeJobs::default()
        }
    );
    assert!(node(&snapshot, "a").oldest_scheduled.is_some());
    assert_eq!(
        node(&snapshot, "b"),
        NodeJobs {
            node_id: "b".into(),
            registered: true,
            stopping: 1,
            unknown: 1,
            ..NodeJobs::default()
        }
    );
    assert_eq!(snapshot.unknown_statuses, [""]);
    assert_eq!(job_rows(&pool).await, before, "the job tables changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_without_grants_gets_jobs_unknown_naming_the_grant() {
    let (pg, pool) = amp_db(Some(AmpJobs::Nightly)).await;
    register(&pool, &["w1"]).await;
    amp_db::add_job(
        &pool,
        AmpJobs::Nightly,
        "w1",
        "w1",
        "RUNNING",
        Duration::ZERO,
    )
    .await
    .unwrap();
    for statement in [
        "CREATE ROLE amp_reader LOGIN",
        "GRANT SELECT ON workers TO amp_reader",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let url = pg.url().replacen("amp@", "amp_reader@", 1);
    let read = metadata_db::jobs_within(&reader(&url), BOUND)
        .await
        .unwrap();
    assert_eq!(
        read,
        JobsRead::Unknown(
            "jobs unknown: the metadata DB role may not read jobs_status (GRANT SELECT ON jobs_status TO <the reader role>)"
                .into()
        )
    );
    // Workers are still mirrored by the same role.
    assert_eq!(
        metadata_db::list_workers(&reader(&url))
            .await
            .unwrap()
            .len(),
        1
    );

    // The Admin API on that role: workers listed and served, jobs absent (unknown), not zeros.
    let (_api, addr) = common::start_admin_api(&url, &[]).await;
    for path in ["/workers", "/workers?limit=10", "/workers/w1"] {
        let (code, body) = common::http_get(&addr, path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            body.contains(r#""node_id":"w1""#) && !body.contains("jobs"),
            "{path}: {body}"
        );
    }

    sqlx::query("GRANT SELECT ON jobs_status TO amp_reader")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(read_nodes(&url).await, ["w1"]);
    let (_, body) = common::http_get(&addr, "/workers").unwrap();
    assert!(body.contains(r#""jobs":{"active":1,"#), "{body}");
}

async fn read_nodes(url: &str) -> Vec<String> {
    read(&reader(url))
        .await
        .nodes
        .into_iter()
        .map(|n| n.node_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_db_without_job_tables_has_no_jobs_and_an_odd_one_says_why() {
    let (pg, pool) = amp_db(None).await;
    assert_eq!(
        metadata_db::jobs_within(&reader(&pg.url()), BOUND)
            .await
            .unwrap(),
        JobsRead::NoJobTables
    );
    let (_ours, our_pool) = common::migrated_db().await;
    assert_eq!(
        metadata_db::jobs_within(&our_pool, BOUND).await.unwrap(),
        JobsRead::NoJobTables
    );

    sqlx::query("CREATE TABLE jobs_status (job_id uuid, node_id text, status integer)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        metadata_db::jobs_within(&reader(&pg.url()), BOUND)
            .await
            .unwrap(),
        JobsRead::Unknown(
            "jobs unknown: Amp's job tables have an unexpected shape: jobs_status.job_id (uuid), jobs_status.status (integer), jobs_status.updated_at (missing)"
                .into()
        )
    );
}

/// The figure in docs/benchmarks.md: PostgreSQL time of one jobs read at 10,000 workers
/// and 100,000 jobs (20,000 unfinished), on Amp's own indexes. Ignored by default (it
/// prints, it asserts nothing about time):
/// `cargo nextest run --test amp_jobs --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints the jobs read's cost at 10,000 workers / 100,000 jobs"]
async fn bench_jobs_read_at_10000_workers_and_100000_jobs() {
    let (pg, pool) = amp_db(Some(AmpJobs::Nightly)).await;
    for statement in [
        "INSERT INTO workers (node_id, heartbeat_at, info)
         SELECT 'w' || lpad(i::text, 5, '0'), now(), '{}' FROM generate_series(0, 9999) i",
        "INSERT INTO jobs (node_id, idempotency_key)
         SELECT 'w' || lpad((i % 10000)::text, 5, '0'), 'k' || i FROM generate_series(0, 99999) i",
        // Every fifth job unfinished (20,000), the rest finished; 100 on node ids gone.
        "INSERT INTO jobs_status (job_id, node_id, status, updated_at)
         SELECT id, CASE WHEN id % 1000 = 0 THEN 'gone-' || id ELSE node_id END,
                CASE WHEN id % 5 = 0
                     THEN (ARRAY['SCHEDULED','RUNNING','RUNNING','STOPPING'])[1 + (id / 5) % 4]
                     ELSE (ARRAY['COMPLETED','STOPPED','FATAL'])[1 + id % 3] END,
                now() - (id % 600) * interval '1 second'
           FROM jobs",
        "ANALYZE",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let reader = reader(&pg.url());
    let mut took = Vec::new();
    let mut snapshot = None;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        snapshot = Some(read(&reader).await);
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    let snapshot = snapshot.unwrap();
    let active: u64 = snapshot.nodes.iter().map(NodeJobs::active).sum();
    assert_eq!(active, 20_000);
    assert_eq!(snapshot.unregistered().count(), 100);
    let sql = metadata_db::jobs_read_sql(&JobSchema::Nightly).unwrap();
    let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"
    )))
    .bind(JobSchema::Nightly.terminal_statuses())
    .fetch_one(&pool)
    .await
    .unwrap();
    let text = plan.to_string();
    println!(
        "jobs read, 10,000 workers, 100,000 jobs (20,000 unfinished): round trip min {:.1} ms, median {:.1} ms, max {:.1} ms; PostgreSQL execution {} ms, planning {} ms; index scans on jobs_status: {}; sequential scans of jobs_status: {}",
        took[0],
        took[took.len() / 2],
        took[took.len() - 1],
        plan[0]["Execution Time"],
        plan[0]["Planning Time"],
        text.matches("jobs_status_by_status").count(),
        text.matches(r#""Node Type":"Seq Scan","Parallel Aware":false,"Async Capable":false,"Relation Name":"jobs_status""#).count(),
    );

    // The Admin API's list with every worker's jobs: one jobs read per answer.
    let (_api, addr) = common::start_admin_api(&pg.url(), &[]).await;
    let timed = |path: &str, with_jobs: bool| {
        let mut took = Vec::new();
        let mut bytes = 0;
        for _ in 0..10 {
            let started = std::time::Instant::now();
            let (code, body) = common::http_get(&addr, path).unwrap();
            took.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(code, 200, "{path}");
            assert_eq!(body.contains(r#""jobs":{"active":"#), with_jobs, "{path}");
            bytes = body.len();
        }
        took.sort_by(f64::total_cmp);
        (took[0], took[took.len() / 2], bytes / 1024)
    };
    let paths = [
        "/workers",
        "/workers?limit=1000",
        "/workers?limit=1000&continue=w04999",
    ];
    for path in paths {
        let (min, median, kib) = timed(path, true);
        println!(
            "GET {path} with jobs, 10,000 workers, 20,000 unfinished jobs: min {min:.1} ms, median {median:.1} ms, {kib} KiB"
        );
    }
    // The same answers without jobs (the job tables renamed away: our own DB's case).
    for statement in [
        "ALTER TABLE jobs_status RENAME TO away_status",
        "ALTER TABLE jobs RENAME TO away_jobs",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    for path in paths {
        let (min, median, kib) = timed(path, false);
        println!("GET {path} without jobs: min {min:.1} ms, median {median:.1} ms, {kib} KiB");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_serves_a_workers_jobs_where_amp_has_job_tables() {
    let (pg, pool) = amp_db(Some(AmpJobs::Nightly)).await;
    register(&pool, &["busy", "idle"]).await;
    for (status, age) in [
        ("RUNNING", 10),
        ("SCHEDULED", 300),
        ("ERROR", 10),
        ("COMPLETED", 10),
    ] {
        amp_db::add_job(
            &pool,
            AmpJobs::Nightly,
            "busy",
            "busy",
            status,
            Duration::from_secs(age),
        )
        .await
        .unwrap();
    }
    let oldest: i64 =
        sqlx::query_scalar("SELECT job_id FROM jobs_status WHERE status = 'SCHEDULED'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let before = job_rows(&pool).await;
    // Both run (hold their node id locks): a job waiting on "busy" is not picked up, not
    // stranded.
    let _running = common::hold_node_id_locks(&pg.url(), &["busy", "idle"]).await;
    let (_api, addr) = common::start_admin_api(&pg.url(), &[]).await;

    let (code, body) = common::http_get(&addr, "/workers/busy").unwrap();
    assert_eq!(code, 200, "{body}");
    let mut worker: Value = serde_json::from_str(&body).unwrap();
    let jobs = worker["jobs"].take();
    let age = jobs["oldest_scheduled"]["age_seconds"].as_i64().unwrap();
    assert!(age >= 300, "{jobs}");
    let since = jobs["oldest_scheduled"]["since"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(since.ends_with('Z') && since.len() == 20, "{since}");
    assert_eq!(
        jobs,
        serde_json::json!({
            "active": 2, "scheduled": 1, "running": 1, "stopping": 0, "retrying": 1,
            "unknown": 0,
            "oldest_scheduled": {"id": oldest, "since": since, "age_seconds": age}
        })
    );
    assert_eq!(worker["node_id"], "busy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ampctl"))
        .args([
            "--admin-url",
            &format!("http://{addr}"),
            "worker",
            "inspect",
            "busy",
        ])
        .env_remove("AMP_AUTH_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Oldest Scheduled: job {oldest} (5m ago)\nJobs Verdict:     not accepting jobs: job {oldest} scheduled 5m ago\n"
        )),
        "{stdout}"
    );

    // The list carries the same summaries, from one jobs read per answer: streamed
    // whole, and paged.
    for path in [
        "/workers",
        "/workers?limit=1",
        "/workers?limit=1&continue=busy",
    ] {
        let (code, body) = common::http_get(&addr, path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        for entry in list["workers"].as_array().unwrap() {
            let expected = match entry["node_id"].as_str() {
                Some("busy") => &jobs,
                _ => &serde_json::json!({"active": 0, "scheduled": 0, "running": 0,
                    "stopping": 0, "retrying": 0, "unknown": 0}),
            };
            let mut listed = entry["jobs"].clone();
            listed["oldest_scheduled"]["age_seconds"] =
                expected["oldest_scheduled"]["age_seconds"].clone();
            if expected.get("oldest_scheduled").is_none() {
                listed.as_object_mut().unwrap().remove("oldest_scheduled");
            }
            assert_eq!(&listed, expected, "{path}: {body}");
        }
    }
    // `ampctl worker list`: the JOBS column, from the list alone (no GET per worker).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ampctl"))
        .args(["--admin-url", &format!("http://{addr}"), "worker", "list"])
        .env_remove("AMP_AUTH_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let jobs_cells: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0], cells[3])
        })
        .collect();
    assert_eq!(
        jobs_cells,
        [("NODE", "VERSION"), ("busy", "2"), ("idle", "0")],
        "{stdout}"
    );

    // No unfinished job: zeros, not absent.
    let (_, body) = common::http_get(&addr, "/workers/idle").unwrap();
    let idle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        idle["jobs"],
        serde_json::json!({"active": 0, "scheduled": 0, "running": 0, "stopping": 0, "retrying": 0, "unknown": 0})
    );
    assert_eq!(job_rows(&pool).await, before, "the job tables changed");

    // Our own DB has no job tables: no `jobs` at all.
    let (ours, our_pool) = common::migrated_db().await;
    common::register_row(&our_pool, "w1", "v1").await;
    let (_ours_api, ours_addr) = common::start_admin_api(&ours.url(), &[]).await;
    let (code, body) = common::http_get(&ours_addr, "/workers/w1").unwrap();
    assert_eq!(code, 200, "{body}");
    let w: Value = serde_json::from_str(&body).unwrap();
    assert!(w.get("jobs").is_none(), "{body}");
    assert_eq!(w["node_id"], "w1");
    for path in ["/workers", "/workers?limit=5"] {
        let (_, body) = common::http_get(&ours_addr, path).unwrap();
        let list: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(list["workers"][0]["node_id"], "w1", "{body}");
        assert!(list["workers"][0].get("jobs").is_none(), "{path}: {body}");
    }
}

/// `ampctl worker check` against our Admin API on `addr`: exit code and stdout.
fn check(addr: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ampctl"))
        .args(["--admin-url", &format!("http://{addr}"), "worker", "check"])
        .args(extra)
        .env_remove("AMP_AUTH_TOKEN")
        .env_remove("AMPCTL_JOB_PICKUP_TIMEOUT")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ampctl_check_names_stranded_jobs_and_jobs_not_picked_up() {
    let (pg, pool) = amp_db(Some(AmpJobs::Nightly)).await;
    register(&pool, &["dead", "deaf", "fine"]).await;
    // "deaf" and "fine" run (hold their node id locks); "dead" does not.
    let _running = common::hold_node_id_locks(&pg.url(), &["deaf", "fine"]).await;
    for (node, status, age) in [
        ("dead", "RUNNING", 10),
        ("dead", "RUNNING", 10),
        ("dead", "SCHEDULED", 10),
        ("deaf", "SCHEDULED", 300),
        ("fine", "RUNNING", 10),
        ("fine", "SCHEDULED", 10),
    ] {
        amp_db::add_job(
            &pool,
            AmpJobs::Nightly,
            node,
            node,
            status,
            Duration::from_secs(age),
        )
        .await
        .unwrap();
    }
    let late: i64 = sqlx::query_scalar("SELECT job_id FROM jobs_status WHERE node_id = 'deaf'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let before = job_rows(&pool).await;
    let (_api, addr) = common::start_admin_api(&pg.url(), &[]).await;

    let (code, stdout) = check(&addr, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    // Sorted by node id; heartbeat ages are left out of the comparison (the clock runs).
    assert!(
        lines[0].starts_with("❌ dead: stopped, no process holds its node id (last heartbeat "),
        "{stdout}"
    );
    assert_eq!(
        lines[1..],
        [
            "❌ dead: 3 job(s) stranded (2 RUNNING, 1 SCHEDULED); start a worker with this node id to resume them, or stop them (ampctl job stop) and deploy again".to_owned(),
            format!("❌ deaf: not accepting jobs: job {late} scheduled 5m ago (pickup timeout 2m)"),
            lines[3].to_owned(),
        ][..]
    );
    assert!(
        lines[3].starts_with("✓ fine: healthy, heartbeat "),
        "{stdout}"
    );

    // --json: the same findings, for CI.
    let (code, stdout) = check(&addr, &["--json"]);
    assert_eq!(code, Some(1), "{stdout}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (doc["ok"].clone(), doc["problems"].clone()),
        (Value::Bool(false), Value::from(3))
    );
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(
        findings[1],
        serde_json::json!({"result": "stranded", "node_id": "dead", "jobs": 3,
            "running": 2, "scheduled": 1, "stopping": 0, "retrying": 0})
    );
    let mut not_accepting = findings[2].clone();
    let age = not_accepting["age_secs"].take().as_i64().unwrap();
    assert!(age >= 300, "{not_accepting}");
    assert_eq!(
        not_accepting,
        serde_json::json!({"result": "not_accepting_jobs", "node_id": "deaf",
            "job_id": late, "age_secs": null, "timeout_secs": 120})
    );

    // docs/amp.md, "Jobs: stranded and not picked up", step 1 without kubectl: each
    // ampctl command it shows, verbatim, against this Admin API.
    let documented: Vec<String> =
        common::doc_section_commands("docs/amp.md", "Jobs: stranded and not picked up")
            .into_iter()
            .filter(|c| c.starts_with("ampctl "))
            .collect();
    assert_eq!(documented, ["ampctl worker list", "ampctl worker check"]);
    let run = |command: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ampctl"))
            .args(command.split_whitespace().skip(1))
            .env("AMP_ADMIN_URL", format!("http://{addr}"))
            .env_remove("AMP_AUTH_TOKEN")
            .env_remove("AMPCTL_JOB_PICKUP_TIMEOUT")
            .output()
            .unwrap()
    };
    let list = run(&documented[0]);
    let table = String::from_utf8_lossy(&list.stdout);
    let jobs_cells: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0], cells[3])
        })
        .collect();
    assert_eq!(
        (list.status.code(), jobs_cells),
        (Some(0), vec![("dead", "3"), ("deaf", "1"), ("fine", "2")]),
        "{table}"
    );
    let checked = run(&documented[1]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("❌ dead: 3 job(s) stranded")
            && stdout.contains("❌ deaf: not accepting jobs: job "),
        "{stdout}"
    );

    // The jobs came with the list: not one `GET /workers/{id}`.
    let (_, metrics) = common::http_get(&addr, "/metrics").unwrap();
    assert!(
        !metrics.contains(r#"route="/workers/{id}""#),
        "check asked per worker: {metrics}"
    );

    // A longer pickup timeout: the waiting job is within it.
    let (_, stdout) = check(&addr, &["--job-pickup-timeout", "10m"]);
    assert!(!stdout.contains("not accepting"), "{stdout}");
    assert!(stdout.contains("✓ deaf: healthy"), "{stdout}");
    assert_eq!(job_rows(&pool).await, before, "the job tables changed");
}
