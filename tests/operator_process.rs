//! The real `ampd operator` process against the in-memory API server served over HTTP
//! (list + watch, Leases with server-side-apply ownership) and a real PostgreSQL:
//! startup errors, leader election (only the leader writes, failover), probes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use amp_operator::operator::crd::AmpWorker;
use amp_operator::testing::fake_apiserver::FakeApiServer;
use amp_operator::testing::postgres::eventually;
use common::{AMPD, Proc, free_addr, http_get};

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

fn lease_holder(fake: &FakeApiServer) -> Option<String> {
    fake.get("leases", "amp-operator")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
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
    let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        line.starts_with("error: cannot reach the Kubernetes API server: "),
        "{line}"
    );
}

/// Two replicas, one Lease: only the holder writes; killing it hands over within the
/// lease duration and the other replica carries on from the API server's state.
#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over_when_it_dies() {
    let (_pg, pool) = common::migrated_db().await;
    let url = _pg.url();
    register(&pool, "worker-a").await;
    register(&pool, "worker-b").await;

    let fake = FakeApiServer::new();
    let (addr_a, _sa) = fake.serve_http("op-a").await.unwrap();
    let (addr_b, _sb) = fake.serve_http("op-b").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (listen_a, listen_b) = (free_addr(), free_addr());
    let mut a = Some(Proc::spawn(
        "op-a",
        &mut operator(
            &write_kubeconfig(&dir, "a", addr_a),
            &url,
            "op-a",
            &listen_a,
        ),
    ));
    // Start the second replica once the first has taken the lease, so the roles are known.
    eventually(Duration::from_secs(20), || async { lease_holder(&fake) })
        .await
        .expect("op-a takes the lease");
    let b = Proc::spawn(
        "op-b",
        &mut operator(
            &write_kubeconfig(&dir, "b", addr_b),
            &url,
            "op-b",
            &listen_b,
        ),
    );

    let both_ready = eventually(Duration::from_secs(20), || async {
        let ws: Vec<AmpWorker> = fake.objects("ampworkers");
        (ws.len() == 2
            && ws
                .iter()
                .all(|w| w.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Ready")))
        .then_some(())
    })
    .await;
    assert!(
        both_ready.is_some(),
        "AmpWorkers never became Ready: {:?}",
        fake.objects::<AmpWorker>("ampworkers")
    );
    // Give the standby time to (wrongly) write, then check nobody but the leader did.
    eventually(Duration::from_secs(20), || async {
        http_get(&listen_b, "/readyz")
            .ok()
            .filter(|(code, _)| *code == 200)
    })
    .await
    .expect("standby becomes ready");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lease_holder(&fake).as_deref(), Some("op-a"));
    let writes: Vec<_> = fake
        .take_requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/leases"))
        .collect();
    assert!(!writes.is_empty());
    let by_b: Vec<_> = writes.iter().filter(|r| r.client != "op-a").collect();
    assert!(by_b.is_empty(), "the standby wrote: {by_b:?}");
    let (_, metrics_a) = http_get(&listen_a, "/metrics").unwrap();
    let (_, metrics_b) = http_get(&listen_b, "/metrics").unwrap();
    assert!(
        metrics_a.lines().any(|l| l == "amp_operator_leader 1"),
        "{metrics_a}"
    );
    assert!(
        metrics_b.lines().any(|l| l == "amp_operator_leader 0"),
        "{metrics_b}"
    );
    assert!(
        metrics_a
            .lines()
            .any(|l| l == "amp_operator_workers{condition=\"Ready\",status=\"True\"} 2"),
        "{metrics_a}"
    );

    // The leader dies without releasing the lease; worker-b stops heartbeating.
    if let Some(mut proc) = a.take() {
        proc.signal(libc::SIGKILL);
        let _ = proc.child.wait();
    }
    let killed = Instant::now();
    sqlx::query(
        "UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE node_id = 'worker-b'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let stale = eventually(Duration::from_secs(30), || async {
        let w: AmpWorker = serde_json::from_value(fake.get("ampworkers", "worker-b")?).ok()?;
        (w.status?.state.as_deref() == Some("Stale")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(stale.is_some(), "the standby never took over");
    assert_eq!(lease_holder(&fake).as_deref(), Some("op-b"));
    // Lease 3 s (+ the standby's renew cadence and one poll).
    assert!(took < Duration::from_secs(10), "failover took {took:?}");
    println!("failover: worker-b flagged by op-b {took:?} after op-a was killed (lease 3 s)");
    let writes: Vec<_> = fake
        .take_requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/leases"))
        .collect();
    assert!(writes.iter().all(|r| r.client == "op-b"), "{writes:?}");
    // One WorkerStale event, not a storm from the takeover.
    let stale_events = writes
        .iter()
        .filter(|r| r.body["reason"] == "WorkerStale")
        .count();
    assert_eq!(stale_events, 1);
    drop(b);
}

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
    assert!(
        fake.get("ampworkers", "worker-b").is_none(),
        "no discovered duplicate of the user's AmpWorker"
    );
}
