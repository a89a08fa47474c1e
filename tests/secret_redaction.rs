//! No password in any log line: real `ampd worker` and `ampd admin-api` processes given
//! every accepted form of a database URL with a password, in text and JSON log formats,
//! through connection failures that make them log errors.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const SECRET: &str = "SECRETpw42";

/// URLs pointing at a closed port, so every connection attempt fails and gets logged.
fn urls(addr: &str) -> Vec<String> {
    vec![
        format!("postgres://amp@{addr}/amp?password={SECRET}"),
        format!("postgres://amp:{SECRET}@{addr}/amp"),
        // Percent-encoded: `SECRETpw42` with an `@` in the middle.
        format!("postgres://amp:SECRET%40pw42@{addr}/amp"),
        // A libpq-only parameter sqlx would log with its value.
        format!("postgres://amp@{addr}/amp?sslpassword={SECRET}&password={SECRET}"),
    ]
}

fn assert_clean(what: &str, stderr: &str) {
    for secret in [SECRET, "SECRET@pw42", "SECRET%40pw42"] {
        assert!(
            !stderr.contains(secret),
            "{what}: {secret} leaked:\n{stderr}"
        );
    }
}

#[test]
fn worker_logs_never_show_the_password() {
    let addr = free_addr();
    for format in ["text", "json"] {
        for url in urls(&addr) {
            let mut cmd = Command::new(AMPD);
            cmd.args(["--log-format", format, "worker", "--node-id", "w1"])
                .args(["--database-url", &url, "--max-backoff", "300ms"])
                .env_remove("AMP_DATABASE_URL")
                .env_remove("AMP_NODE_ID")
                .env("RUST_LOG", "debug");
            let worker = Proc::spawn("worker", &mut cmd);
            std::thread::sleep(Duration::from_millis(1500));
            let (_, _, stderr) = worker.terminate();
            assert!(
                stderr.contains("metadata DB call failed; retrying")
                    && stderr.contains("connection refused"),
                "the failure was logged ({format}, {url}):\n{stderr}"
            );
            assert!(
                stderr.contains("***"),
                "the URL was logged redacted:\n{stderr}"
            );
            assert_clean(&format!("worker {format} {url}"), &stderr);
        }
    }
}

#[test]
fn invalid_urls_and_dsns_exit_2_without_the_password() {
    for format in ["text", "json"] {
        for url in [
            format!("postgres://amp:{SECRET}@db:notaport/amp"),
            format!("host=db user=amp password={SECRET} dbname=amp"),
            format!("host=db password='{SECRET} x' dbname=amp"),
        ] {
            let out = Command::new(AMPD)
                .args(["--log-format", format, "worker", "--node-id", "w1"])
                .args(["--database-url", &url])
                .env_remove("AMP_DATABASE_URL")
                .env_remove("AMP_NODE_ID")
                .output()
                .expect("run ampd");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
            assert!(stderr.contains("invalid database URL"), "{stderr}");
            assert_clean(&format!("invalid {format} {url}"), &stderr);
        }
    }
}

#[tokio::test]
async fn admin_api_logs_never_show_the_password() {
    let addr = free_addr();
    for format in ["text", "json"] {
        for url in urls(&addr) {
            let listen = free_addr();
            let api = Proc::spawn(
                "admin-api",
                Command::new(AMPD)
                    .args(["--log-format", format, "admin-api", "--listen", &listen])
                    .args(["--database-url", &url])
                    .env_remove("AMP_DATABASE_URL")
                    .env("RUST_LOG", "debug"),
            );
            let up =
                amp_operator::testing::postgres::eventually(Duration::from_secs(15), || async {
                    http_get(&listen, "/healthz").ok().map(|_| ())
                })
                .await;
            assert!(up.is_some(), "admin API listening");
            // Each makes it try (and fail) to reach the database, and log why.
            let (status, body) = http_get(&listen, "/workers").expect("GET /workers");
            assert_eq!(status, 503, "{body}");
            assert_clean("503 body", &body);
            let (_, body) = http_get(&listen, "/readyz").expect("GET /readyz");
            assert_clean("/readyz body", &body);
            let (_, stderr) = {
                let (_, out, err) = api.terminate();
                (out, err)
            };
            assert!(
                stderr.contains("metadata DB query failed"),
                "the failure was logged:\n{stderr}"
            );
            assert_clean(&format!("admin-api {format} {url}"), &stderr);
        }
    }
}

/// Over TLS: `sslpassword` and the client key's contents never reach a log line, through
/// a worker that keeps failing the handshake (wrong CA) and a `migrate` that fails on a
/// key given inline as PEM. Key paths may show (they name what to fix).
#[test]
fn tls_settings_never_show_sslpassword_or_key_material() {
    use amp_operator::testing::postgres::{PgAccess, TempPostgres, unrelated_ca_pem};
    let pg = TempPostgres::start_access(PgAccess::TlsOnly).expect("PostgreSQL");
    let files = pg.tls_files().expect("TLS files").clone();
    let key_pem = std::fs::read_to_string(&files.client_key).expect("read key");
    let key_line = key_pem.lines().nth(1).expect("a base64 line").to_owned();
    let wrong_ca = files.ca.with_file_name("wrong-ca.crt");
    std::fs::write(&wrong_ca, unrelated_ca_pem().expect("CA")).expect("write CA");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}&sslpassword={SECRET}",
        pg.url(),
        wrong_ca.display(),
        files.client_cert.display(),
        files.client_key.display()
    );
    for format in ["text", "json"] {
        let mut cmd = Command::new(AMPD);
        cmd.args(["--log-format", format, "worker", "--node-id", "w1"])
            .args(["--database-url", &url, "--max-backoff", "300ms"])
            .env_remove("AMP_DATABASE_URL")
            .env_remove("AMP_NODE_ID")
            .env("RUST_LOG", "debug");
        let worker = Proc::spawn("worker", &mut cmd);
        std::thread::sleep(Duration::from_millis(1500));
        let (_, _, stderr) = worker.terminate();
        assert!(stderr.contains("TLS failed: certificate"), "{stderr}");
        assert!(stderr.contains("sslpassword=***"), "{stderr}");
        assert_clean(&format!("worker {format}"), &stderr);
        assert!(
            !stderr.contains(&key_line),
            "key material leaked:\n{stderr}"
        );
    }
    let mut inline = url::Url::parse(&format!("{}?sslmode=verify-full", pg.url())).expect("url");
    inline
        .query_pairs_mut()
        .append_pair("sslrootcert", &wrong_ca.display().to_string())
        .append_pair("sslcert", &files.client_cert.display().to_string())
        .append_pair("sslkey", &key_pem);
    let out = Command::new(AMPD)
        .args(["migrate", "--database-url", inline.as_str()])
        .output()
        .expect("run ampd migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("sslkey=***"), "{stderr}");
    assert!(
        !stderr.contains(&key_line),
        "key material leaked:\n{stderr}"
    );
}

/// Credentials read from files (`--database-url-file`, `--database-password-file`) are
/// hidden as those given in a flag: through failing connections of every role, in text
/// and JSON, with `RUST_LOG=debug`, and in the `/readyz` body.
#[test]
fn file_contents_never_show() {
    let addr = free_addr();
    let dir = tempfile::tempdir().expect("dir");
    let url_file = dir.path().join("url");
    let password_file = dir.path().join("password");
    // A password with characters that are percent-encoded in a URL.
    let password = format!("{SECRET}@/:%");
    std::fs::write(&password_file, format!("{password}\n")).expect("write");
    let files = |url: &str| {
        std::fs::write(&url_file, format!("{url}\n")).expect("write");
        [
            "--database-url-file".to_owned(),
            url_file.display().to_string(),
            "--database-password-file".to_owned(),
            password_file.display().to_string(),
        ]
    };
    let clean = |what: &str, text: &str| {
        assert_clean(what, text);
        assert!(!text.contains(&password), "{what}: leaked\n{text}");
    };
    for format in ["text", "json"] {
        for url in urls(&addr) {
            let worker = Proc::spawn(
                "worker",
                Command::new(AMPD)
                    .args(["--log-format", format, "worker", "--node-id", "w1"])
                    .args(files(&url))
                    .args(["--max-backoff", "300ms"])
                    .env_remove("AMP_DATABASE_URL")
                    .env_remove("AMP_NODE_ID")
                    .env("RUST_LOG", "debug"),
            );
            std::thread::sleep(Duration::from_millis(1500));
            let (_, _, stderr) = worker.terminate();
            assert!(stderr.contains("connection refused"), "{stderr}");
            clean(&format!("worker {format} {url}"), &stderr);

            let listen = free_addr();
            let api = Proc::spawn(
                "admin-api",
                Command::new(AMPD)
                    .args(["--log-format", format, "admin-api", "--listen", &listen])
                    .args(files(&url))
                    .env_remove("AMP_DATABASE_URL")
                    .env("RUST_LOG", "debug"),
            );
            let up = tokio_block_on(amp_operator::testing::postgres::eventually(
                Duration::from_secs(15),
                || async { http_get(&listen, "/healthz").ok().map(|_| ()) },
            ));
            assert!(up.is_some(), "admin API listening");
            let (status, body) = http_get(&listen, "/readyz").expect("GET /readyz");
            assert_eq!(status, 503, "{body}");
            clean("/readyz body", &body);
            let (_, _, stderr) = api.terminate();
            clean(&format!("admin-api {format} {url}"), &stderr);
        }
    }
    // migrate: one line, redacted.
    let out = Command::new(AMPD)
        .args(["migrate", "--connect-wait", "0s"])
        .args(files(&format!("postgres://amp@{addr}/amp")))
        .env_remove("AMP_DATABASE_URL")
        .output()
        .expect("run ampd migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("postgres://amp:***@"), "{stderr}");
    clean("migrate", &stderr);
}

fn tokio_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}
