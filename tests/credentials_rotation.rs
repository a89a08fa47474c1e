//! A password rotated while every role runs against a real PostgreSQL that asks for it
//! (scram-sha-256): the server-side `ALTER ROLE ... PASSWORD` first, the password file
//! rewritten after (as a Vault agent or a kubelet syncing a Secret does). Every role
//! recovers by itself, the worker keeps its session and lock, no `registered_at`
//! moves; a wrong new password is reported in one line per role and nothing leaks.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use amp_operator::metadata_db::{self, Credentials, DbCredentialArgs, InfoCache};
use amp_operator::testing::postgres::{TempPostgres, eventually};
use common::*;
use sqlx::PgPool;

const ROLE: &str = "amp_rot";
const FIRST: &str = "first-Pw-1";
const SECOND: &str = "second-Pw-2";
const WRONG: &str = "wrong-Pw-3";
const WAIT: Duration = Duration::from_secs(20);

/// A migrated server where [`ROLE`] must give its password over TCP, the superuser's
/// pool (trust), and the URL of [`ROLE`] without a password.
async fn server_with_password_role() -> (TempPostgres, PgPool, String) {
    let (pg, admin) = migrated_db().await;
    // Constants of this file only.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{FIRST}'"
    )))
    .execute(&admin)
    .await
    .expect("create role");
    let hba = pg.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    let rule = format!("host all {ROLE} 127.0.0.1/32 scram-sha-256\n");
    std::fs::write(&hba, format!("{rule}{rules}")).expect("write pg_hba.conf");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&admin)
        .await
        .expect("reload");
    let url = pg
        .url()
        .replacen("postgres://amp@", &format!("postgres://{ROLE}@"), 1);
    (pg, admin, url)
}

/// Replaces `path` the way a kubelet updates a Secret volume: whole, never half-written.
fn rewrite(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Files {
    _dir: tempfile::TempDir,
    url: PathBuf,
    password: PathBuf,
}

fn files(url: &str) -> Files {
    let dir = tempfile::tempdir().expect("dir");
    let files = Files {
        url: dir.path().join("url"),
        password: dir.path().join("password"),
        _dir: dir,
    };
    rewrite(&files.url, &format!("{url}\n"));
    rewrite(&files.password, &format!("{FIRST}\n"));
    files
}

fn file_flags(files: &Files) -> [String; 4] {
    [
        "--database-url-file".into(),
        files.url.display().to_string(),
        "--database-password-file".into(),
        files.password.display().to_string(),
    ]
}

fn ampd(files: &Files, role: &str) -> Command {
    let mut cmd = Command::new(AMPD);
    cmd.args(["--log-format", "json", role])
        .args(file_flags(files))
        .env_remove("AMP_DATABASE_URL")
        .env_remove("AMP_NODE_ID")
        .env_remove("PGPASSFILE")
        .env("AMPD_VERSION", "v1.0.0");
    cmd
}

/// Ends the sessions of `application_name` (a pool's idle connections): its next call
/// needs a new connection, made with whatever the credentials are then.
async fn end_sessions(admin: &PgPool, application_name: &str) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(application_name)
    .execute(admin)
    .await
    .expect("terminate");
}

/// The pid of the session holding `node_id`'s lock (Amp's key).
async fn lock_holder(admin: &PgPool, node_id: &str) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
           AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
    )
    .bind(node_id)
    .fetch_optional(admin)
    .await
    .expect("pg_locks")
}

async fn readyz(addr: &str) -> (u16, String) {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || http_get(&addr, "/readyz").expect("readyz"))
        .await
        .expect("join")
}

async fn readyz_becomes(addr: &str, status: u16) -> String {
    eventually(WAIT, || async {
        let (code, body) = readyz(addr).await;
        (code == status).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("/readyz never answered {status}"))
}

/// The operator's DB read: its pool ([`metadata_db::credentials::reader_pool`], as
/// `ampd operator` builds it) and its one statement per poll.
async fn operator_read(pool: &PgPool) -> Result<usize, metadata_db::DbError> {
    let mut cache = InfoCache::default();
    metadata_db::operator_snapshot_within(pool, Duration::from_secs(3), &mut cache)
        .await
        .map(|s| s.rows.len())
}

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

fn assert_no_password(what: &str, text: &str) {
    for pw in [FIRST, SECOND, WRONG] {
        assert!(!text.contains(pw), "{what} shows a password:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_follows_a_rotated_password_file_and_stops_on_a_wrong_one() {
    let (_pg, admin, url) = server_with_password_role().await;
    let files = files(&url);

    // Every role starts on the first password.
    let mut worker = Proc::spawn(
        "worker",
        ampd(&files, "worker").args(["--node-id", "w1", "--max-backoff", "300ms"]),
    );
    let api_addr = free_addr();
    let api = Proc::spawn(
        "admin-api",
        ampd(&files, "admin-api").args(["--listen", &api_addr]),
    );
    let credentials = Credentials::from_args(&DbCredentialArgs {
        database_url: None,
        database_url_file: Some(files.url.clone()),
        database_password_file: Some(files.password.clone()),
    });
    let operator = metadata_db::credentials::reader_pool(
        &credentials,
        "amp-operator",
        2,
        Duration::from_secs(3),
    )
    .expect("operator pool");
    let registered = wait_registered(&admin, "w1", WAIT).await;
    readyz_becomes(&api_addr, 200).await;
    assert_eq!(operator_read(&operator).await.expect("operator reads"), 1);
    let session = lock_holder(&admin, "w1").await.expect("w1 holds its lock");

    // The server takes the new password; the file still holds the old one. Open
    // sessions live on; new connections of the readers are refused and say why.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {ROLE} PASSWORD '{SECOND}'"
    )))
    .execute(&admin)
    .await
    .expect("alter role");
    end_sessions(&admin, "ampd-admin-api").await;
    end_sessions(&admin, "amp-operator").await;
    let body = readyz_becomes(&api_addr, 503).await;
    assert_eq!(body, "metadata DB unavailable: authentication failed");
    let err = operator_read(&operator)
        .await
        .expect_err("old password refused");
    assert_eq!(err.summary(), Some("authentication failed"), "{err}");

    // The file catches up: every role recovers by itself, without a restart.
    rewrite(&files.password, &format!("{SECOND}\n"));
    readyz_becomes(&api_addr, 200).await;
    let recovered = eventually(WAIT, || async { operator_read(&operator).await.ok() }).await;
    assert_eq!(recovered, Some(1), "the operator's read recovers");
    assert!(worker.is_running(), "the worker never stopped");
    assert_eq!(
        lock_holder(&admin, "w1").await,
        Some(session),
        "the worker kept its session and its lock across the rotation"
    );
    let before = metadata_db::get_worker(&admin, "w1")
        .await
        .expect("read")
        .expect("row");
    let heartbeating = eventually(WAIT, || async {
        let row = metadata_db::get_worker(&admin, "w1").await.ok()??;
        (row.heartbeat_at > before.heartbeat_at).then_some(row)
    })
    .await
    .expect("heartbeats go on");
    assert_eq!(heartbeating.registered_at, registered.registered_at);

    // The worker's next session (its old one ended) is made with the new password and
    // resumes its row.
    let old = lock_holder(&admin, "w1").await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(session)
        .execute(&admin)
        .await
        .expect("terminate");
    let relocked = eventually(WAIT, || async {
        lock_holder(&admin, "w1")
            .await
            .filter(|pid| Some(*pid) != old)
    })
    .await;
    assert!(
        relocked.is_some(),
        "the worker reconnected with the new password"
    );
    let row = metadata_db::get_worker(&admin, "w1")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        row.registered_at, registered.registered_at,
        "no restart seen"
    );

    // A wrong password in the file: each role says so in one line; the worker stops
    // (no loop of connection attempts), the readers keep serving and say why.
    rewrite(&files.password, WRONG);
    tokio::time::sleep(metadata_db::credentials::RELOAD_PERIOD * 2).await;
    end_sessions(&admin, "ampd-admin-api").await;
    end_sessions(&admin, "amp-operator").await;
    end_sessions(&admin, "ampd-worker/w1").await;
    let (status, _, worker_err) = worker.wait_for_exit(WAIT);
    assert_eq!(status.code(), Some(1), "{worker_err}");
    let lines = lines_with(&worker_err, "authentication failed");
    assert_eq!(lines.len(), 1, "one line:\n{worker_err}");
    assert!(
        lines[0].starts_with(&format!(
            "error: cannot connect to the metadata DB at postgres://{ROLE}:***@127.0.0.1:"
        )),
        "{}",
        lines[0]
    );
    assert_eq!(
        readyz_becomes(&api_addr, 503).await,
        "metadata DB unavailable: authentication failed"
    );
    for _ in 0..3 {
        assert_eq!(readyz(&api_addr).await.0, 503);
    }
    let err = eventually(WAIT, || async { operator_read(&operator).await.err() })
        .await
        .expect("the operator's read fails");
    assert_eq!(err.summary(), Some("authentication failed"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
    assert_no_password("the operator's error", &err.to_string());
    let (_, _, api_err) = api.terminate();
    // One line per refusal: the rotation window above, and the wrong password now.
    assert_eq!(
        lines_with(&api_err, "authentication failed").len(),
        2,
        "{api_err}"
    );
    assert_no_password("the worker's log", &worker_err);
    assert_no_password("the Admin API's log", &api_err);
}

#[tokio::test]
async fn migrate_reads_the_files_and_pgpassfile() {
    let (_pg, _admin, url) = server_with_password_role().await;
    let files = files(&url);
    let out = ampd(&files, "migrate").output().expect("run migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // libpq's passfile, for a URL without a password and no password file.
    let dir = tempfile::tempdir().expect("dir");
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, format!("127.0.0.1:*:*:{ROLE}:{FIRST}\n")).expect("write");
    // sqlx, like libpq, ignores a passfile others can read.
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let out = Command::new(AMPD)
        .args(["--log-format", "json", "migrate", "--database-url", &url])
        .env("PGPASSFILE", &passfile)
        .output()
        .expect("run migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // A wrong password: one line, exit 1, no password.
    rewrite(&files.password, WRONG);
    let out = ampd(&files, "migrate").output().expect("run migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        lines_with(&stderr, "authentication failed").len(),
        1,
        "{stderr}"
    );
    assert_no_password("migrate", &stderr);

    // A missing file: bad input (exit 2), named by its path.
    std::fs::remove_file(&files.password).expect("rm");
    let out = ampd(&files, "migrate").output().expect("run migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot read the database password file {}",
            files.password.display()
        )),
        "{stderr}"
    );
}

/// `GET path` with a bearer token: the status code.
fn get_with_token(addr: &str, path: &str, token: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    raw.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_admin_api_follows_a_rotated_token_file() {
    let (pg, _admin) = migrated_db().await;
    let url = pg.url();
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("token");
    rewrite(&token, "tok-One\n");
    let (api, addr) =
        start_admin_api(&url, &["--auth-token-file", &token.display().to_string()]).await;
    assert_eq!(get_with_token(&addr, "/workers", "tok-One"), 200);
    assert_eq!(get_with_token(&addr, "/workers", "tok-Two"), 401);

    rewrite(&token, "tok-Two\n");
    let rotated = eventually(WAIT, || async {
        (get_with_token(&addr, "/workers", "tok-One") == 401).then_some(())
    })
    .await;
    assert!(
        rotated.is_some(),
        "the old token is refused after the rotation"
    );
    assert_eq!(get_with_token(&addr, "/workers", "tok-Two"), 200);

    // A file that cannot be read keeps the last token valid (one warning).
    std::fs::remove_file(&token).expect("rm");
    tokio::time::sleep(metadata_db::credentials::RELOAD_PERIOD * 2).await;
    assert_eq!(get_with_token(&addr, "/workers", "tok-Two"), 200);
    assert_eq!(get_with_token(&addr, "/workers", "tok-Two"), 200);
    let (_, _, stderr) = api.terminate();
    assert_eq!(
        lines_with(&stderr, "cannot read the auth token file").len(),
        1,
        "{stderr}"
    );
    for t in ["tok-One", "tok-Two"] {
        assert!(!stderr.contains(t), "the token leaked:\n{stderr}");
    }
}

const AMPCTL: &str = env!("CARGO_BIN_EXE_ampctl");

/// `ampctl --admin-url URL ARGS` with only `env` of the token variables set: exit code,
/// stdout, stderr.
fn ampctl(url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(AMPCTL)
        .args(["--admin-url", url])
        .args(args)
        .env_remove("AMP_AUTH_TOKEN")
        .env_remove("AMPCTL_AUTH_TOKEN_FILE")
        .envs(env.iter().copied())
        .output()
        .expect("run ampctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ampctl --auth-token-file` (or `AMPCTL_AUTH_TOKEN_FILE`, as the chart's `helm test`
/// pod passes it) against an Admin API that requires the token: the file's token is
/// sent; a wrong one is a 401 as with `--auth-token`; a file that cannot be used is one
/// line naming the path, exit 2 (bad input), and no token shows anywhere.
#[tokio::test]
async fn ampctl_sends_the_token_of_a_token_file() {
    let (pg, _admin) = migrated_db().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (server, right, wrong, empty) =
        (path("server"), path("right"), path("wrong"), path("empty"));
    rewrite(Path::new(&server), "tok-Right\n");
    rewrite(Path::new(&right), "tok-Right\n");
    rewrite(Path::new(&wrong), "tok-Wrong\n");
    rewrite(Path::new(&empty), "\n");
    let (_api, addr) = start_admin_api(&pg.url(), &["--auth-token-file", &server]).await;
    let url = format!("http://{addr}");
    let no_token = |stderr: &str| {
        for t in ["tok-Right", "tok-Wrong", "tok-Given"] {
            assert!(!stderr.contains(t), "the token leaked:\n{stderr}");
        }
    };

    let listed = (Some(0), "{\"workers\":[]}\n".to_owned(), String::new());
    let list = ["worker", "list", "--json"];
    let flag = [&["--auth-token-file", right.as_str()][..], &list].concat();
    assert_eq!(ampctl(&url, &flag, &[]), listed);
    assert_eq!(
        ampctl(&url, &list, &[("AMPCTL_AUTH_TOKEN_FILE", right.as_str())]),
        listed
    );

    let (code, out, err) = ampctl(&url, &["--auth-token-file", &wrong, "worker", "list"], &[]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            Some(2),
            "",
            format!(
                "error: missing or invalid bearer token (401 from {url}/workers): pass the Admin API's token with --auth-token-file, --auth-token or AMP_AUTH_TOKEN\n"
            )
            .as_str()
        )
    );
    no_token(&err);

    let missing = path("missing");
    for (file, message) in [
        (
            missing.as_str(),
            format!(
                "cannot read the auth token file {missing}: No such file or directory (os error 2)"
            ),
        ),
        (
            empty.as_str(),
            format!("the auth token file {empty} is empty"),
        ),
        // A directory: the path exists but cannot be read as a file (even as root).
        (
            dir.path().to_str().expect("utf-8"),
            format!(
                "cannot read the auth token file {}: Is a directory (os error 21)",
                dir.path().display()
            ),
        ),
    ] {
        let (code, out, err) = ampctl(&url, &["--auth-token-file", file, "worker", "list"], &[]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(2), "", format!("error: {message}\n").as_str())
        );
    }

    // One source of the token: the flag and the file together are refused before any
    // request, as is the file with AMP_AUTH_TOKEN in the environment.
    let conflict = "error: the argument '--auth-token <AUTH_TOKEN>' cannot be used with '--auth-token-file <AUTH_TOKEN_FILE>'\n\nUsage: ampctl --admin-url <ADMIN_URL> --auth-token <AUTH_TOKEN> <COMMAND>\n\nFor more information, try '--help'.\n";
    let both = [
        "--auth-token",
        "tok-Given",
        "--auth-token-file",
        &right,
        "worker",
        "list",
    ];
    let (code, out, err) = ampctl(&url, &both, &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (Some(2), "", conflict));
    no_token(&err);
    let (code, _, err) = ampctl(
        &url,
        &["--auth-token-file", &right, "worker", "list"],
        &[("AMP_AUTH_TOKEN", "tok-Given")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    no_token(&err);
}
