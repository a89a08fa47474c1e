//! TLS to the metadata DB against a real PostgreSQL with `ssl=on` and `hostssl`-only
//! rules, certificates made per run: every role with `verify-full`, client-certificate
//! auth, and the one-line causes of the failures a person meets first.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use amp_operator::metadata_db::{self, redact_url};
use amp_operator::operator::controller::{Reconciler, ReconcilerConfig};
use amp_operator::operator::crd::{AmpWorker, AmpWorkerSpec};
use amp_operator::operator::metrics::OperatorMetrics;
use amp_operator::operator::plan::PlanConfig;
use amp_operator::testing::fake_apiserver::FakeApiServer;
use amp_operator::testing::postgres::{
    PgAccess, PgOptions, PgSettings, ServerCert, TempPostgres, unrelated_ca_pem,
};
use common::{AMPD, Proc, http_get, start_admin_api, wait_registered, worker};
use sqlx::PgPool;

fn start(access: PgAccess, server_cert: ServerCert) -> TempPostgres {
    TempPostgres::start_opts(PgOptions {
        settings: PgSettings::default().set("fsync", "off"),
        access,
        server_cert,
    })
    .expect("start throwaway PostgreSQL")
}

/// `url` with `sslcert`/`sslkey` of the run's client certificate appended.
fn with_client_cert(pg: &TempPostgres, url: &str) -> String {
    let files = pg.tls_files().expect("TLS files");
    format!(
        "{url}&sslcert={}&sslkey={}",
        files.client_cert.display(),
        files.client_key.display()
    )
}

/// A CA file that did not sign the server's certificate.
fn wrong_ca(pg: &TempPostgres) -> String {
    let path = pg.data_dir().with_file_name("wrong-ca.crt");
    std::fs::write(&path, unrelated_ca_pem().expect("CA")).expect("write CA");
    path.display().to_string()
}

async fn migrated_pool(url: &str) -> PgPool {
    let out = std::process::Command::new(AMPD)
        .args(["migrate", "--database-url", url])
        .output()
        .expect("run ampd migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate over TLS: {stderr}");
    metadata_db::connect_pool(url, "tests", 3)
        .await
        .expect("connect")
}

/// The error text of a failed connection attempt.
async fn connect_error(url: &str) -> String {
    match metadata_db::connect_pool(url, "tests", 1).await {
        Ok(_) => panic!("connected to {url}"),
        Err(err) => err.to_string(),
    }
}

/// `ampd migrate` fails within seconds with exactly one `error:` line; returns it.
fn migrate_fails(url: &str) -> String {
    let started = Instant::now();
    let out = std::process::Command::new(AMPD)
        .args(["--log-format", "text", "migrate", "--database-url", url])
        .output()
        .expect("run ampd migrate");
    assert!(!out.status.success(), "migrate must fail");
    assert!(started.elapsed() < Duration::from_secs(10), "fails at once");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

fn operator(pool: &PgPool, fake: &FakeApiServer) -> Reconciler {
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let server = fake.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            send.send_response(server.handle(req).await);
        }
    });
    Reconciler::new(
        kube::Client::new(service, "amp"),
        pool.clone(),
        ReconcilerConfig {
            namespace: "amp".into(),
            plan: PlanConfig {
                status_refresh: chrono::Duration::seconds(60),
                refresh_budget: 20.0,
                gc_after: None,
                gc_stopped_after: None,
                heartbeat_timeout_secs: 30,
            },
            write_concurrency: 1,
            identity: "operator-0".into(),
        },
        Arc::new(OperatorMetrics::new()),
    )
}

/// One operator cycle over an AmpWorker for `node_id`; the Healthy condition written.
async fn operator_healthy(url: &str, node_id: &str) -> (String, String) {
    // The operator's own pool: lazy and bounded (src/operator/run.rs).
    let pool =
        metadata_db::connect_pool_lazy_bounded(url, "amp-operator", 2, Duration::from_secs(3))
            .expect("pool options");
    let fake = FakeApiServer::new();
    let spec = AmpWorkerSpec {
        node_id: node_id.into(),
        expected_version: None,
        heartbeat_timeout_seconds: None,
        job_pickup_timeout_seconds: None,
    };
    fake.insert("ampworkers", &AmpWorker::new(node_id, spec));
    let mut ctl = operator(&pool, &fake);
    let workers = fake.cached_workers();
    ctl.cycle(workers, Vec::new()).await;
    let reqs = fake.take_requests();
    let patch = reqs
        .iter()
        .find(|r| r.method == "PATCH")
        .expect("a status patch");
    let healthy = patch.body["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Healthy")
        .expect("Healthy")
        .clone();
    (
        healthy["status"].as_str().unwrap_or_default().to_owned(),
        healthy["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_connects_with_verify_full() {
    let pg = start(PgAccess::TlsOnly, ServerCert::default());
    let url = pg.url_verify_full("postgres");
    let pool = migrated_pool(&url).await;
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("pg_stat_ssl");
    assert!(tls, "the session is encrypted");

    let _worker = Proc::spawn("worker", &mut worker(&url, "worker-tls", "v1"));
    wait_registered(&pool, "worker-tls", Duration::from_secs(15)).await;

    let (_api, addr) = start_admin_api(&url, &[]).await;
    let (code, body) = http_get(&addr, "/workers/worker-tls").expect("GET");
    assert_eq!(code, 200, "{body}");
    assert_eq!(http_get(&addr, "/readyz").expect("GET").0, 200);

    let (status, message) = operator_healthy(&url, "worker-tls").await;
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("True", "heartbeat within the 30s timeout")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_ignores_the_hostname_and_verify_full_refuses_it() {
    let names = vec!["db.amp.internal".to_owned()];
    let pg = start(
        PgAccess::TlsOnly,
        ServerCert {
            names,
            expired: false,
        },
    );
    let full = pg.url_verify_full("postgres");
    let ca = full.replace("sslmode=verify-full", "sslmode=verify-ca");
    metadata_db::connect_pool(&ca, "tests", 1)
        .await
        .expect("verify-ca does not check the name");
    // libpq's require with a root certificate is verify-ca: it connects too.
    let require = full.replace("sslmode=verify-full", "sslmode=require");
    metadata_db::connect_pool(&require, "tests", 1)
        .await
        .expect("require + sslrootcert");
    assert_eq!(
        connect_error(&full).await,
        format!(
            "cannot connect to the metadata DB at {}: TLS failed: hostname: the server's certificate is not valid for 127.0.0.1 (it lists db.amp.internal); connect by a name the certificate lists, or use sslmode=verify-ca",
            redact_url(&full)
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_ca_expired_and_plain_failures_name_their_cause() {
    let pg = start(PgAccess::TlsOnly, ServerCert::default());
    let full = pg.url_verify_full("postgres");
    let ca = pg.tls_files().expect("files").ca.display().to_string();
    let wrong = full.replace(&ca, &wrong_ca(&pg));
    assert_eq!(
        migrate_fails(&wrong),
        format!(
            "error: cannot connect to the metadata DB at {}: TLS failed: certificate: the server's certificate is not signed by a trusted CA (unknown issuer); set sslrootcert to the CA bundle that signed it",
            redact_url(&wrong)
        )
    );
    // A plain connection is refused by pg_hba (hostssl only).
    let plain = format!("{}?sslmode=disable", pg.url());
    assert_eq!(
        migrate_fails(&plain),
        format!(
            "error: cannot connect to the metadata DB at {}: pg_hba: the server refused a connection without TLS (no pg_hba.conf entry for host \"127.0.0.1\", user \"amp\", database \"postgres\", no encryption); set sslmode=verify-full (or require)",
            redact_url(&plain)
        )
    );

    let expired = start(
        PgAccess::TlsOnly,
        ServerCert {
            expired: true,
            ..ServerCert::default()
        },
    );
    let url = expired.url_verify_full("postgres");
    assert_eq!(
        connect_error(&url).await,
        format!(
            "cannot connect to the metadata DB at {}: TLS failed: certificate expired: the server's certificate is past its validity (expired 2020-01-01T00:00:00Z); renew it on the server",
            redact_url(&url)
        )
    );

    let no_tls = start(PgAccess::Plain, ServerCert::default());
    let url = format!("{}?sslmode=require", no_tls.url());
    assert_eq!(
        migrate_fails(&url),
        format!(
            "error: cannot connect to the metadata DB at {}: TLS failed: the server does not accept TLS connections (sslmode=require or stricter needs ssl=on on the server; sslmode=prefer connects without TLS)",
            redact_url(&url)
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_authenticate_the_worker_and_the_operator() {
    let pg = start(PgAccess::ClientCert, ServerCert::default());
    let url = with_client_cert(&pg, &pg.url_verify_full("postgres"));
    let pool = migrated_pool(&url).await;

    let _worker = Proc::spawn("worker", &mut worker(&url, "worker-cert", "v1"));
    wait_registered(&pool, "worker-cert", Duration::from_secs(15)).await;
    let (status, _) = operator_healthy(&url, "worker-cert").await;
    assert_eq!(status, "True");

    let without = pg.url_verify_full("postgres");
    assert_eq!(
        connect_error(&without).await,
        format!(
            "cannot connect to the metadata DB at {}: pg_hba: the server requires a client certificate (connection requires a valid client certificate); set sslcert and sslkey",
            redact_url(&without)
        )
    );
    // A certificate of the right CA for another name (the server's own: CN amp-test-postgres).
    let files = pg.tls_files().expect("files");
    let other_cn = format!(
        "{without}&sslcert={}&sslkey={}",
        files.server_cert.display(),
        files.server_key.display()
    );
    assert_eq!(
        connect_error(&other_cn).await,
        format!(
            "cannot connect to the metadata DB at {}: pg_hba: certificate authentication failed for user \"amp\"; the client certificate's CN must be the database user name",
            redact_url(&other_cn)
        )
    );
}

/// A certificate the client refuses will not heal by waiting: the worker stops at once
/// with the cause (its termination message); the Admin API and the operator keep
/// running and say why in `/readyz` and in the conditions.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_certificate_stops_the_worker_and_the_servers_say_why() {
    let pg = start(PgAccess::TlsOnly, ServerCert::default());
    let good = pg.url_verify_full("postgres");
    migrated_pool(&good).await;
    let ca = pg.tls_files().expect("files").ca.display().to_string();
    let wrong = good.replace(&ca, &wrong_ca(&pg));

    let w = Proc::spawn(
        "worker, wrong CA",
        &mut worker(&wrong, "worker-wrong-ca", "v1"),
    );
    let (status, _, stderr) = w.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        format!(
            "error: cannot connect to the metadata DB at {}: TLS failed: certificate: the server's certificate is not signed by a trusted CA (unknown issuer); set sslrootcert to the CA bundle that signed it",
            redact_url(&wrong)
        )
    );

    let (api, api_addr) = start_admin_api(&wrong, &[]).await;
    let (code, body) = http_get(&api_addr, "/readyz").expect("GET /readyz");
    assert_eq!(
        (code, body.as_str()),
        (
            503,
            "metadata DB unavailable: TLS failed: server certificate not signed by a trusted CA"
        )
    );
    let (status, message) = operator_healthy(&wrong, "worker-wrong-ca").await;
    assert_eq!(status, "Unknown");
    assert_eq!(
        message,
        "the metadata DB cannot be read (TLS failed: server certificate not signed by a trusted CA); heartbeat unknown"
    );
    let (_, _, api_log) = api.terminate();
    assert!(
        api_log.contains("TLS failed: certificate"),
        "the cause is logged: {api_log}"
    );
}
