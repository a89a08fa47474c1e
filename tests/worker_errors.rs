//! Errors that waiting cannot fix stop the worker and `ampd migrate` at once, with the fix
//! in the one `error:` line (what `kubectl describe pod` shows as the termination
//! message); network-level errors are retried. The Admin API keeps serving and says the
//! cause.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use amp_operator::testing::postgres::TempPostgres;
use common::{AMPD, Proc, free_addr, migrated_db, worker};

/// Runs `cmd` to completion; fails if it takes longer than `within`.
fn run_within(cmd: &mut Command, within: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let out: Output = cmd.output().expect("run ampd");
    assert!(
        started.elapsed() < within,
        "took {:?}, expected under {within:?}",
        started.elapsed()
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last line of stderr: the fatal `error:` line (logs come before it).
fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

fn url_with(pg: &TempPostgres, user: &str, db: &str) -> String {
    format!("postgres://{user}@127.0.0.1:{}/{db}", pg.port())
}

/// The worker exits 1 within seconds and its last line is `error: cannot connect to the
/// metadata DB at URL: <why>`, without PostgreSQL's source line.
fn assert_worker_stops(url: &str, why: &str) {
    let (code, stderr) = run_within(&mut worker(url, "w1", "v1"), Duration::from_secs(10));
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        last_line(&stderr),
        format!("error: cannot connect to the metadata DB at {url}: {why}")
    );
    assert!(
        !stderr.contains(" at line "),
        "PostgreSQL's source line leaked: {stderr}"
    );
    assert_eq!(stderr.matches(why).count(), 1, "reported once: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_role_or_database_stops_the_worker_at_once_with_the_fix() {
    let (pg, _pool) = migrated_db().await;
    assert_worker_stops(
        &url_with(&pg, "nosuchuser", "postgres"),
        "role \"nosuchuser\" does not exist; create the role or fix the user in the database URL",
    );
    assert_worker_stops(
        &url_with(&pg, "amp", "nosuchdb"),
        "database \"nosuchdb\" does not exist; create it or fix the database name in the URL",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmigrated_db_stops_the_worker_with_run_ampd_migrate() {
    let pg = TempPostgres::start().expect("start PostgreSQL");
    let (code, stderr) = run_within(&mut worker(&pg.url(), "w1", "v1"), Duration::from_secs(10));
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        last_line(&stderr),
        "error: this metadata DB has no workers table yet: run `ampd migrate` against it first (the Helm chart does, before the workers start)"
    );
}

#[test]
fn urls_that_are_not_postgres_are_refused_as_bad_input() {
    let shape = "use postgres://user:password@host:port/dbname";
    for (url, why) in [
        (
            "mysql://amp:hunter2@127.0.0.1:3306/amp",
            format!("unsupported scheme mysql://: the metadata DB is PostgreSQL; {shape}"),
        ),
        ("not a url", format!("not a URL; {shape}")),
        (
            "host=db user=amp",
            format!("key=value connection strings are not supported; {shape}"),
        ),
    ] {
        let (code, stderr) = run_within(&mut worker(url, "w1", "v1"), Duration::from_secs(5));
        assert_eq!(code, Some(2), "{url}: {stderr}");
        let last = last_line(&stderr);
        assert!(
            last.starts_with("error: invalid database URL ") && last.ends_with(&why),
            "{url}: {last}"
        );
        assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
    }
}

/// A closed port is a network error: the worker keeps retrying, and says why.
#[test]
fn a_refused_connection_is_retried_and_named() {
    let url = format!("postgres://amp@{}/amp", free_addr());
    let mut cmd = worker(&url, "w1", "v1");
    cmd.args(["--max-backoff", "300ms"]);
    let proc = Proc::spawn("worker", &mut cmd);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _, stderr) = proc.terminate();
    assert!(status.success(), "still running until SIGTERM: {stderr}");
    let retries = stderr
        .lines()
        .filter(|l| l.contains("metadata DB call failed; retrying"))
        .count();
    assert!(retries >= 2, "retried: {stderr}");
    assert!(
        stderr.contains(
            "connection refused (is PostgreSQL running and listening on that host and port?)"
        ),
        "{stderr}"
    );
}

/// `ampd migrate` waits `--connect-wait` for a server that refuses connections, then
/// names the refusal (not "pool timed out").
#[test]
fn migrate_against_a_closed_port_says_connection_refused() {
    let addr = free_addr();
    let url = format!("postgres://amp@{addr}/amp");
    let started = Instant::now();
    let (code, stderr) = run_within(
        Command::new(AMPD).args(["migrate", "--connect-wait", "1s", "--database-url", &url]),
        Duration::from_secs(10),
    );
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        last_line(&stderr).starts_with(&format!(
            "error: cannot connect to the metadata DB at {url}: connection refused (is PostgreSQL running and listening on that host and port?): "
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_stops_at_once_on_a_missing_database() {
    let (pg, _pool) = migrated_db().await;
    let url = url_with(&pg, "amp", "nosuchdb");
    let (code, stderr) = run_within(
        Command::new(AMPD).args(["migrate", "--connect-wait", "60s", "--database-url", &url]),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        last_line(&stderr),
        format!(
            "error: cannot connect to the metadata DB at {url}: database \"nosuchdb\" does not exist; create it or fix the database name in the URL"
        )
    );
}

/// The Admin API keeps serving: a DB without our table answers 503 with the fix, and
/// `/readyz` names a refused connection.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_names_the_cause() {
    let mut pg = TempPostgres::start().expect("start PostgreSQL");
    let (_api, addr) = common::start_admin_api(&pg.url(), &[]).await;
    let (code, body) = common::http_get(&addr, "/workers").expect("GET /workers");
    assert_eq!(code, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(
        body["error_message"],
        "metadata DB unavailable: no workers table: run ampd migrate"
    );
    // The DB answers, but there is nothing to serve: not ready, and why.
    let (code, body) = common::http_get(&addr, "/readyz").expect("GET /readyz");
    assert_eq!(
        (code, body.as_str()),
        (
            503,
            "metadata DB unavailable: no workers table: run ampd migrate"
        )
    );
    pg.stop().expect("stop PostgreSQL");
    let (code, body) = common::http_get(&addr, "/readyz").expect("GET /readyz");
    assert_eq!(
        (code, body.as_str()),
        (503, "metadata DB unavailable: connection refused")
    );
}

/// A role that may connect but not read `workers` (the grant docs/amp.md lists was
/// forgotten): `/readyz` is 503 with the cause, as the operator's is, and every answer
/// says which grant is missing, to which role; granting it heals without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_says_which_grant_is_missing() {
    let (pg, pool) = migrated_db().await;
    sqlx::query("CREATE ROLE amp_nogrant LOGIN")
        .execute(&pool)
        .await
        .expect("create role");
    let url = url_with(&pg, "amp_nogrant", "postgres");
    let (_api, addr) = common::start_admin_api(&url, &[]).await;
    let (code, body) = common::http_get(&addr, "/readyz").expect("GET /readyz");
    assert_eq!(
        (code, body.as_str()),
        (503, "metadata DB unavailable: permission denied")
    );
    let denied = r#"{"error_code":"METADATA_DB_PERMISSION_DENIED","error_message":"metadata DB: permission denied: grant SELECT on workers to amp_nogrant"}"#;
    for path in ["/workers", "/workers?limit=10", "/workers/w1"] {
        assert_eq!(
            common::http_get(&addr, path).expect("GET"),
            (503, denied.to_owned()),
            "{path}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ampctl"))
        .args(["--admin-url", &format!("http://{addr}"), "worker", "list"])
        .env_remove("AMP_AUTH_TOKEN")
        .output()
        .expect("run ampctl");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(2),
            format!(
                "error: metadata DB: permission denied: grant SELECT on workers to amp_nogrant (503 METADATA_DB_PERMISSION_DENIED from http://{addr}/workers)\n"
            )
        )
    );
    sqlx::query("GRANT SELECT ON workers TO amp_nogrant")
        .execute(&pool)
        .await
        .expect("grant");
    assert_eq!(
        common::http_get(&addr, "/readyz").expect("GET /readyz"),
        (200, "ready".to_owned())
    );
    assert_eq!(
        common::http_get(&addr, "/workers").expect("GET /workers"),
        (200, r#"{"workers":[]}"#.to_owned())
    );
}
