//! The real `ampd operator` process against the in-memory API server served over HTTP
//! where an injected fault is the point: a CRD that is not installed, an unreachable API
//! server, watches that fail. Leader election, RBAC and everything else that needs real
//! API-server semantics run against envtest (tests/envtest_operator.rs).

mod common;

use std::process::Command;
use std::time::Duration;

use amp_operator::testing::fake_apiserver::FakeApiServer;
use amp_operator::testing::postgres::eventually;
use common::{AMPD, Proc, free_addr};

const NS: &str = "amp";

fn operator(kubeconfig: &std::path::Path, db_url: &str, identity: &str, listen: &str) -> Command {
    let mut cmd = Command::new(AMPD);
    cmd.args([
        "operator",
        "--namespace",
        NS,
        "--listen",
        listen,
        "--lease-duration",
        "3s",
        "--log-format",
        "json",
    ])
    .env("KUBECONFIG", kubeconfig)
    .env("AMP_DATABASE_URL", db_url)
    .env("POD_NAME", identity)
    .env("RUST_LOG", "warn")
    .env_remove("KUBERNETES_SERVICE_HOST");
    cmd
}

async fn register(pool: &sqlx::PgPool, id: &str) {
    common::register_row(pool, id, "v1").await;
}

fn write_kubeconfig(
    dir: &tempfile::TempDir,
    name: &str,
    addr: std::net::SocketAddr,
) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, FakeApiServer::kubeconfig(addr, NS)).unwrap();
    path
}

#[tokio::test]
async fn a_missing_crd_stops_the_operator_with_the_fix_and_exit_1() {
    let fake = FakeApiServer::new();
    fake.crd_missing("ampworkers");
    let (addr, _server) = fake.serve_http("op").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(&dir, "kubeconfig", addr);
    let mut cmd = operator(
        &kubeconfig,
        "postgres://amp:hunter2@127.0.0.1:1/amp",
        "op-a",
        &free_addr(),
    );
    let proc = Proc::spawn("operator", &mut cmd);
    let (status, _, stderr) =
        tokio::task::spawn_blocking(move || proc.wait_for_exit(Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().any(|l| l
            == "error: the AmpWorker CustomResourceDefinition is not installed in the cluster: install it with `kubectl apply -f crds/` (or the Helm chart)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_api_server_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let closed: std::net::SocketAddr = free_addr().parse().unwrap();
    let kubeconfig = write_kubeconfig(&dir, "kubeconfig", closed);
    let mut cmd = operator(
        &kubeconfig,
        "postgres://amp@127.0.0.1:1/amp",
        "op-a",
        &free_addr(),
    );
    let proc = Proc::spawn("operator", &mut cmd);
    let (status, _, stderr) =
        tokio::task::spawn_blocking(move || proc.wait_for_exit(Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [format!(
            "error: cannot reach the Kubernetes API server at http://{closed}: Connection refused (os error 111)"
        )],
        "one line naming the server and the cause, no kube_client ERROR duplicates"
    );
}

#[tokio::test]
async fn no_kubeconfig_and_a_missing_namespace_are_one_line_each_with_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(AMPD)
        .args([
            "operator",
            "--database-url",
            "postgres://amp@127.0.0.1:1/amp",
        ])
        .env("KUBECONFIG", dir.path().join("absent"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: no Kubernetes cluster configured (")
            && line.ends_with(
                "): set KUBECONFIG to a cluster's kubeconfig, or run in a Pod; for a local cluster: ./scripts/kind-up.sh"
            ),
        "{stderr}"
    );

    let Some(plane) = amp_operator::testing::envtest::require(
        "no_kubeconfig_and_a_missing_namespace_are_one_line_each_with_the_next_step",
    )
    .await
    else {
        return;
    };
    let out = std::process::Command::new(AMPD)
        .args([
            "operator",
            "--database-url",
            "postgres://amp@127.0.0.1:1/amp",
        ])
        .args(["--namespace", "no-such-ns", "--listen", &free_addr()])
        .env("KUBECONFIG", plane.kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("error: namespace \"no-such-ns\" not found: kubectl create namespace no-such-ns"),
        "{stderr}"
    );
    assert!(!stderr.contains("operator started"), "{stderr}");
}

/// Two replicas, one Lease: only the holder writes; killing it hands over within the
/// lease duration and the other replica carries on from the API server's state.
/// Watches that fail (500) and end are retried with backoff; the cache catches up and a
/// user's AmpWorker created meanwhile gets its status.
#[tokio::test]
async fn failing_watches_are_retried_and_the_cache_catches_up() {
    let (pg, pool) = common::migrated_db().await;
    register(&pool, "worker-a").await;
    let fake = FakeApiServer::new();
    fake.fail("GET", "watch=true", 500, 6);
    let (addr, _server) = fake.serve_http("op").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = operator(
        &write_kubeconfig(&dir, "kubeconfig", addr),
        &pg.url(),
        "op-a",
        &free_addr(),
    );
    let _op = Proc::spawn("operator", cmd.arg("--leader-election=false"));
    eventually(Duration::from_secs(20), || async {
        fake.get("ampworkers", "worker-a")?["status"]["state"]
            .as_str()
            .filter(|s| *s == "Ready")
            .map(|_| ())
    })
    .await
    .expect("worker-a discovered and Ready");

    // A user's AmpWorker for a second id arrives only through the (recovering) watch.
    register(&pool, "worker-b").await;
    let mut mine = amp_operator::operator::crd::AmpWorker::new(
        "my-worker-b",
        amp_operator::operator::crd::AmpWorkerSpec {
            node_id: "worker-b".into(),
            expected_version: None,
            heartbeat_timeout_seconds: None,
            job_pickup_timeout_seconds: None,
        },
    );
    mine.metadata.namespace = Some(NS.into());
    fake.insert("ampworkers", &mine);
    let ready = eventually(Duration::from_secs(30), || async {
        fake.get("ampworkers", "my-worker-b")?["status"]["state"]
            .as_str()
            .filter(|s| *s == "Ready")
            .map(|_| ())
    })
    .await;
    assert!(ready.is_some(), "the user's AmpWorker never got a status");
    let failed_watches = fake
        .take_requests()
        .iter()
        .filter(|r| r.path.contains("watch=true"))
        .count();
    assert!(failed_watches >= 6, "{failed_watches} watch requests");
    // While the watch was down the operator could not see the user's object: a cycle in
    // that window discovers worker-b under its own name. Once the cache has caught up,
    // that duplicate must be collected (and never recreated).
    let no_duplicate = eventually(Duration::from_secs(30), || async {
        fake.get("ampworkers", "worker-b").is_none().then_some(())
    })
    .await;
    assert!(
        no_duplicate.is_some(),
        "a discovered duplicate of the user's AmpWorker stayed"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fake.get("ampworkers", "worker-b").is_none(),
        "the duplicate of the user's AmpWorker was created again"
    );
}
