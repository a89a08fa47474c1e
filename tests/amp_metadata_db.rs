//! Attaching to a metadata DB that Amp's own services created and write
//! (built by `amp_operator::testing::amp_db` from the facts sheet): `ampd migrate` changes
//! nothing there, our worker never undermines Amp's (duplicate guard, job scheduling),
//! and the Admin API reads whatever Amp wrote.

mod common;

use std::process::Command;
use std::time::Duration;

use amp_operator::metadata_db;
use amp_operator::testing::amp_db::{self, AmpSchema, AmpWorkerSim, amp_info};
use amp_operator::testing::postgres::{PgSettings, TempPostgres, find_bin_dir};
use common::{AMPD, Proc, http_get, migrated_db, start_admin_api, worker};
use serde_json::{Value, json};
use sqlx::{Connection, PgPool};

async fn amp_db(schema: AmpSchema) -> (TempPostgres, PgPool) {
    // A server whose own time zone is not UTC: nothing may depend on it.
    let pg = TempPostgres::start_with(
        PgSettings::default()
            .set("fsync", "off")
            .set("timezone", "'Pacific/Auckland'"),
    )
    .expect("start throwaway PostgreSQL");
    let pool = metadata_db::connect_pool(&pg.url(), "tests", 5)
        .await
        .expect("connect");
    amp_db::create(&pool, schema).await.expect("Amp's schema");
    (pg, pool)
}

/// Everything `migrate` could touch: the schema as pg_dump prints it, Amp's history and
/// the workers' rows.
async fn fingerprint(pg: &TempPostgres, pool: &PgPool) -> (String, Value, Value) {
    let bin = find_bin_dir().expect("PostgreSQL binaries");
    let dump = Command::new(bin.join("pg_dump"))
        .args(["--schema-only", "-h", "127.0.0.1", "-U", "amp", "-p"])
        .arg(pg.port().to_string())
        .arg("postgres")
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let history: Value = sqlx::query_scalar(
        "SELECT COALESCE(json_agg(m ORDER BY version), '[]') FROM _sqlx_migrations m",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let rows: Value =
        sqlx::query_scalar("SELECT COALESCE(json_agg(w ORDER BY id), '[]') FROM workers w")
            .fetch_one(pool)
            .await
            .unwrap();
    // pg_dump 15.14+ brackets its output with a random `\restrict` key per run.
    let schema = String::from_utf8(dump.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n");
    (schema, history, rows)
}

fn migrate(url: &str) -> (Option<i32>, String, String) {
    let out = Command::new(AMPD)
        .args(["--log-format", "text", "migrate", "--database-url", url])
        .env_remove("AMP_DATABASE_URL")
        .output()
        .expect("run ampd migrate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_changes_nothing_on_a_db_amp_manages() {
    let (pg, pool) = amp_db(AmpSchema::Current).await;
    let _amp = AmpWorkerSim::start(&pg.url(), "amp-a", amp_info("v0.0.35-275-g188bfd41"))
        .await
        .unwrap();
    let before = fingerprint(&pg, &pool).await;
    let (code, stdout, stderr) = migrate(&pg.url());
    assert_eq!(code, Some(0), "{stderr}");
    let found = "found an Amp-managed workers table (migration history in _sqlx_migrations up to 20260312000000): nothing to migrate, nothing written; the Admin API and the operator read it as it is";
    assert_eq!(stdout, format!("{found}\n"));
    // Its log says the same in words, not a Rust Debug string.
    let done = stderr
        .lines()
        .find(|l| l.contains("migrate done"))
        .unwrap_or_else(|| panic!("no `migrate done` line: {stderr}"));
    assert!(done.ends_with(&format!("outcome={found}")), "{done}");
    assert!(!stderr.contains("Foreign"), "{stderr}");

    let after = fingerprint(&pg, &pool).await;
    assert_eq!(before.0, after.0, "the schema changed");
    assert_eq!(before.1, after.1, "Amp's migration history changed");
    let ours: bool = sqlx::query_scalar("SELECT to_regclass('amp_operator_migrations') IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ours, "migrate created its history table on Amp's DB");

    // With the reader role docs/amp.md creates (no grant on `_sqlx_migrations`): the
    // same verdict, nothing written.
    for statement in [
        "CREATE ROLE amp_operator_reader LOGIN",
        "ALTER ROLE amp_operator_reader SET default_transaction_read_only = on",
        "GRANT SELECT ON workers TO amp_operator_reader",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let reader = format!(
        "postgres://amp_operator_reader@127.0.0.1:{}/postgres",
        pg.port()
    );
    let (code, stdout, stderr) = migrate(&reader);
    assert_eq!(
        (code, stdout.as_str()),
        (
            Some(0),
            "found an Amp-managed workers table (migration history in _sqlx_migrations, not readable by this role): nothing to migrate, nothing written; the Admin API and the operator read it as it is\n"
        ),
        "{stderr}"
    );
    assert_eq!(
        before.1,
        fingerprint(&pg, &pool).await.1,
        "Amp's history changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_reads_the_pre_v0_0_34_schema_and_refuses_older_ones() {
    let (pg, _pool) = amp_db(AmpSchema::WallClockHeartbeat).await;
    let (code, stdout, stderr) = migrate(&pg.url());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("heartbeat_at without time zone (Amp before v0.0.34), read as UTC"),
        "{stdout}"
    );

    let (pg, pool) = amp_db(AmpSchema::Ancient).await;
    let before = fingerprint_without_rows(&pg, &pool).await;
    let (code, stdout, stderr) = migrate(&pg.url());
    assert_eq!((code, stdout.as_str()), (Some(1), ""), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "cannot be served: info (missing), created_at (missing), registered_at (missing), heartbeat_at (missing)"
        ),
        "{stderr}"
    );
    assert_eq!(before, fingerprint_without_rows(&pg, &pool).await);
}

async fn fingerprint_without_rows(pg: &TempPostgres, pool: &PgPool) -> (String, Value) {
    let (schema, history, _) = fingerprint(pg, pool).await;
    (schema, history)
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_keeps_our_history_out_of_sqlx_migrations() {
    let pg = TempPostgres::start().unwrap();
    let pool = metadata_db::connect_pool(&pg.url(), "tests", 5)
        .await
        .unwrap();
    // A DB a release before this one migrated: our versions in `_sqlx_migrations`.
    let previous_release = sqlx::migrate!("./migrations");
    previous_release.run(&pool).await.unwrap();
    let old: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();

    let (code, stdout, stderr) = migrate(&pg.url());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "migrations applied (0 new); our migration history moved from _sqlx_migrations to amp_operator_migrations\n"
    );
    let moved: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM amp_operator_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(moved, old);
    let gone: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(gone, "_sqlx_migrations is left for Amp");

    // Idempotent, and a fresh DB never gets `_sqlx_migrations` at all.
    assert_eq!(migrate(&pg.url()).1, "migrations applied (0 new)\n");
    let fresh = pg.create_database("fresh").unwrap();
    assert_eq!(migrate(&fresh).1, "migrations applied (2 new)\n");
    let fresh_pool = metadata_db::connect_pool(&fresh, "tests", 1).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&fresh_pool)
    .await
    .unwrap();
    assert_eq!(tables, ["amp_operator_migrations", "workers"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn our_worker_is_refused_a_node_id_an_amp_worker_holds() {
    let (pg, pool) = migrated_db().await;
    common::register_row_unlocked(&pool, "amp-b", "v0.0.35").await;
    let (_amp_session, locked) = amp_db::hold_amp_lock(&pg.url(), "amp-b").await.unwrap();
    assert!(locked);
    // Read with the lock held: a row is read with whether a process holds its node id.
    let row_before = metadata_db::get_worker(&pool, "amp-b").await.unwrap();

    let out = worker(&pg.url(), "amp-b", "v9")
        .args(["--lock-wait", "0s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "failed to acquire advisory lock for node id \"amp-b\": another worker (Amp's or ours) holds it"
        ),
        "{stderr}"
    );
    let row_after = metadata_db::get_worker(&pool, "amp-b").await.unwrap();
    assert_eq!(row_before, row_after, "the row was touched");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_worker_of_ours_holds_amp_s_key_and_the_previous_release_s() {
    let (pg, pool) = migrated_db().await;
    let mut ours = Proc::spawn("worker ours-1", &mut worker(&pg.url(), "ours-1", "v1"));
    common::wait_registered(&pool, "ours-1", Duration::from_secs(20)).await;
    // An Amp worker (or anything locking the Amp way) cannot take the id.
    let (_session, locked) = amp_db::hold_amp_lock(&pg.url(), "ours-1").await.unwrap();
    assert!(!locked, "Amp's key was free while our worker ran");
    assert!(
        metadata_db::advisory_lock_held(&pool, "ours-1")
            .await
            .unwrap()
    );
    // A worker of the previous release (SHA-256 key) cannot take it either.
    let legacy = amp_operator::node_id::NodeId::parse("ours-1")
        .unwrap()
        .legacy_advisory_lock_key();
    let legacy_free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(legacy)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!legacy_free, "the previous release's key was free");
    assert!(ours.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_of_the_previous_release_blocks_ours_during_a_rolling_upgrade() {
    let (pg, pool) = migrated_db().await;
    let legacy = amp_operator::node_id::NodeId::parse("roll-0")
        .unwrap()
        .legacy_advisory_lock_key();
    let mut old_release = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(legacy)
        .fetch_one(&mut old_release)
        .await
        .unwrap();
    assert!(held);
    let out = worker(&pg.url(), "roll-0", "v2")
        .args(["--lock-wait", "0s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to acquire advisory lock"),
        "{stderr}"
    );
    // Amp's key was given back: nothing of ours is left holding it.
    assert!(
        !metadata_db::advisory_lock_held(&pool, "roll-0")
            .await
            .unwrap()
    );
    assert!(
        metadata_db::get_worker(&pool, "roll-0")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn our_worker_refuses_a_db_where_amp_schedules_jobs() {
    let (pg, pool) = amp_db(AmpSchema::Current).await;
    let _amp = AmpWorkerSim::start(&pg.url(), "amp-a", amp_info("v0.0.35"))
        .await
        .unwrap();
    let before = fingerprint(&pg, &pool).await;
    let out = worker(&pg.url(), "ours-1", "v1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "refusing to register: this metadata DB has Amp's job scheduler (a `jobs` table)"
        ) && last.contains("run Amp's own `ampd worker` here"),
        "{stderr}"
    );
    assert!(
        metadata_db::get_worker(&pool, "ours-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !metadata_db::advisory_lock_held(&pool, "ours-1")
            .await
            .unwrap()
    );
    let after = fingerprint(&pg, &pool).await;
    assert_eq!((before.0, before.1), (after.0, after.1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_serves_what_amp_wrote() {
    let (pg, pool) = amp_db(AmpSchema::Current).await;
    let long_id = format!("w{}", "x".repeat(199));
    let mut sims = Vec::new();
    for (id, info) in [
        ("amp-a", amp_info("v0.0.35-275-g188bfd41")),
        ("ünicode-wörker", amp_info("nightly-188bfd4")),
        (long_id.as_str(), json!({})),
        (
            "odd-info",
            json!({"version": {"major": 1}, "commit_sha": 7}),
        ),
    ] {
        sims.push(AmpWorkerSim::start(&pg.url(), id, info).await.unwrap());
    }
    let (_api, addr) = start_admin_api(&pg.url(), &[]).await;

    let (status, body) = http_get(&addr, "/workers/%C3%BCnicode-w%C3%B6rker").unwrap();
    assert_eq!(status, 200, "{body}");
    let w: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(w["node_id"], "ünicode-wörker");
    assert_eq!(w["info"]["version"], "nightly-188bfd4");
    // Amp's 9-digit, +01:00 commit timestamp in the whole-second Z form of the contract.
    assert_eq!(w["info"]["commit_timestamp"], "2026-03-12T09:38:36Z");
    for field in ["created_at", "registered_at", "heartbeat_at"] {
        let t = w[field].as_str().unwrap();
        assert!(t.ends_with('Z') && !t.contains('.'), "{field}: {t}");
    }

    let (status, body) = http_get(&addr, &format!("/workers/{long_id}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&addr, "/workers/odd-info").unwrap();
    assert_eq!(status, 200, "{body}");
    let odd: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(odd["info"]["version"], r#"{"major":1}"#);
    assert_eq!(odd["info"]["commit_sha"], "7");

    // Paging walks every row, Unicode and 200-character ids included.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => "/workers?limit=1".to_owned(),
            Some(token) => format!("/workers?limit=1&continue={}", url_encode(token)),
        };
        let (status, body) = http_get(&addr, &path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        for w in page["workers"].as_array().unwrap() {
            seen.push(w["node_id"].as_str().unwrap().to_owned());
        }
        match page.get("continue").and_then(Value::as_str) {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = sqlx::query_scalar("SELECT node_id FROM workers")
        .fetch_all(&pool)
        .await
        .unwrap();
    expected.sort();
    assert_eq!(seen, expected);
}

fn url_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pre_v0_0_34_heartbeat_is_read_as_the_utc_instant_it_is() {
    let (pg, pool) = amp_db(AmpSchema::WallClockHeartbeat).await;
    let _sim = AmpWorkerSim::start(&pg.url(), "old-amp", amp_info("v0.0.30"))
        .await
        .unwrap();
    let (_api, addr) = start_admin_api(&pg.url(), &[]).await;
    let (status, body) = http_get(&addr, "/workers").unwrap();
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let heartbeat = list["workers"][0]["heartbeat_at"].as_str().unwrap();
    let heartbeat = chrono::DateTime::parse_from_rfc3339(heartbeat).unwrap();
    let db_now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let age = db_now.signed_duration_since(heartbeat);
    assert!(
        (0..=3).contains(&age.num_seconds()),
        "a live worker's heartbeat read {age} old (a time zone applied twice?)"
    );
    // The operator's reader sees the same instant.
    let mut cache = metadata_db::InfoCache::default();
    let snapshot = metadata_db::operator_snapshot_within(&pool, Duration::from_secs(5), &mut cache)
        .await
        .unwrap();
    let row = &snapshot.rows[0];
    assert!((0..=3).contains(&(snapshot.db_now - row.heartbeat_at).num_seconds()));
}

/// The guide's bash block that contains `marker`, verbatim.
fn seed_block(marker: &str) -> String {
    const GUIDE: &str = include_str!("seeds/worker-troubleshooting.md");
    let blocks: Vec<&str> = GUIDE
        .split("```bash\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    let found: Vec<&&str> = blocks.iter().filter(|b| b.contains(marker)).collect();
    assert_eq!(found.len(), 1, "blocks containing {marker:?}");
    found[0].to_string()
}

fn run_seed(script: &str, admin_url: &str) -> String {
    let ampctl_dir = std::path::Path::new(env!("CARGO_BIN_EXE_ampctl"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        ampctl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", script])
        .env("PATH", path)
        .env("AMP_ADMIN_URL", admin_url)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_jq_workflows_run_verbatim_on_amp_s_db() {
    let (pg, pool) = amp_db(AmpSchema::Current).await;
    let _live = [
        AmpWorkerSim::start(&pg.url(), "amp-a", amp_info("v0.0.35-275-g188bfd41"))
            .await
            .unwrap(),
        AmpWorkerSim::start(&pg.url(), "ünicode-wörker", amp_info("nightly-188bfd4"))
            .await
            .unwrap(),
    ];
    // A worker that died two minutes ago (its row stays, as Amp leaves it).
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    amp_db::register(&mut conn, "amp-gone", &json!({}))
        .await
        .unwrap();
    sqlx::query("UPDATE workers SET heartbeat_at = now() - interval '120 seconds' WHERE node_id = 'amp-gone'")
        .execute(&pool)
        .await
        .unwrap();
    let (_api, addr) = start_admin_api(&pg.url(), &[]).await;
    let url = format!("http://{addr}");

    let stale = run_seed(
        &seed_block("# Find workers without recent heartbeats"),
        &url,
    );
    let gone: String = sqlx::query_scalar(
        "SELECT to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM workers WHERE node_id = 'amp-gone'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        stale,
        format!("⚠ Stale worker: amp-gone (last seen: {gone})\n")
    );

    // Per-worker inspect by node id, the Unicode one included; a row without `info`.
    let versions = run_seed(
        &seed_block("# Get unique versions across all workers"),
        &url,
    );
    assert_eq!(
        versions,
        "nightly-188bfd4\nunknown\nv0.0.35-275-g188bfd41\n"
    );
}
