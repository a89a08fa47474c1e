//! The controller against kube-rs mocks (tower-test; the controller-rs ApiServerVerifier
//! pattern) with a real PostgreSQL behind the DB side: exact request paths, apply bodies
//! and events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use amp_operator::metadata_db;
use amp_operator::node_id::NodeId;
use amp_operator::operator::controller::{CycleReport, Reconciler, ReconcilerConfig};
use amp_operator::operator::crd::{AmpWorker, AmpWorkerFleet, AmpWorkerFleetSpec, AmpWorkerSpec};
use amp_operator::operator::metrics::OperatorMetrics;
use amp_operator::operator::plan::PlanConfig;
use amp_operator::testing::fake_apiserver::{FakeApiServer, Recorded};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use sqlx::PgPool;

const NS: &str = "amp";
const WORKERS: &str = "/apis/amp.io/v1alpha1/namespaces/amp/ampworkers";
const FLEETS: &str = "/apis/amp.io/v1alpha1/namespaces/amp/ampworkerfleets";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/amp/events";
const APPLY: &str = "?&force=true&fieldManager=amp-operator";

/// A kube client whose requests go through tower-test's mock handle to the fake.
fn mock_client(fake: &FakeApiServer) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let fake = fake.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            send.send_response(fake.handle(req).await);
        }
    });
    kube::Client::new(service, NS)
}

fn controller(fake: &FakeApiServer, pool: &PgPool) -> Reconciler {
    Reconciler::new(
        mock_client(fake),
        pool.clone(),
        ReconcilerConfig {
            namespace: NS.into(),
            plan: PlanConfig {
                status_refresh: chrono::Duration::seconds(60),
                refresh_budget: 20.0,
                gc_after: Some(chrono::Duration::hours(24)),
                gc_stopped_after: Some(chrono::Duration::minutes(15)),
                heartbeat_timeout_secs: 30,
            },
            // One write at a time: requests arrive in a deterministic order.
            write_concurrency: 1,
            identity: "operator-0".into(),
        },
        Arc::new(OperatorMetrics::new()),
    )
}

async fn register(pool: &PgPool, id: &str, version: &str) {
    common::register_row(pool, id, version).await;
}

async fn backdate_heartbeat(pool: &PgPool, id: &str, secs: i64) {
    sqlx::query(
        "UPDATE workers SET heartbeat_at = now() - make_interval(secs => $2) WHERE node_id = $1",
    )
    .bind(id)
    .bind(secs as f64)
    .execute(pool)
    .await
    .unwrap();
}

async fn cycle(c: &mut Reconciler, fake: &FakeApiServer) -> CycleReport {
    let workers = fake.cached_workers();
    let fleets: Vec<Arc<AmpWorkerFleet>> = fake
        .objects("ampworkerfleets")
        .into_iter()
        .map(Arc::new)
        .collect();
    c.cycle(workers, fleets).await
}

fn user_worker(name: &str, node_id: &str) -> AmpWorker {
    AmpWorker::new(
        name,
        AmpWorkerSpec {
            node_id: node_id.into(),
            expected_version: None,
            heartbeat_timeout_seconds: None,
            job_pickup_timeout_seconds: None,
        },
    )
}

/// (method, path) of each request.
fn calls(reqs: &[Recorded]) -> Vec<(String, String)> {
    reqs.iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn call(method: &str, path: impl Into<String>) -> (String, String) {
    (method.into(), path.into())
}

/// type → (status, reason) of the conditions in an apply body.
fn conditions(body: &Value) -> Vec<(String, String, String)> {
    body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn c(t: &str, s: &str, r: &str) -> (String, String, String) {
    (t.into(), s.into(), r.into())
}

#[tokio::test]
async fn a_new_row_is_discovered_created_and_applied_then_left_alone() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "Worker_01", "v1.0.0").await;
    let fake = FakeApiServer::new();
    let mut ctl = controller(&fake, &pool);

    let report = cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    let name = amp_operator::operator::naming::object_name("Worker_01");
    assert_eq!(
        calls(&reqs),
        vec![
            call("POST", format!("{WORKERS}?&fieldManager=amp-operator")),
            call("PATCH", format!("{WORKERS}/{name}/status{APPLY}")),
        ]
    );
    assert_eq!(
        reqs[0].body,
        json!({
            "apiVersion": "amp.io/v1alpha1",
            "kind": "AmpWorker",
            "metadata": {
                "name": name,
                "labels": {"amp.io/discovered": "true"},
                "annotations": {"amp.io/node-id": "Worker_01"},
            },
            "spec": {"nodeId": "Worker_01"},
        })
    );
    let apply = &reqs[1].body;
    assert_eq!(apply["apiVersion"], "amp.io/v1alpha1");
    assert_eq!(apply["kind"], "AmpWorker");
    let status = &apply["status"];
    assert_eq!(status["state"], "Ready");
    assert_eq!(status["nodeId"], "Worker_01");
    assert_eq!(
        status["info"],
        json!({"version": "v1.0.0", "commitSha": "8b065bde", "commitTimestamp": "2025-10-30T09:00:00Z", "buildDate": "2025-10-30"})
    );
    assert_eq!(status["restartCount"], 0);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        conditions(apply),
        vec![
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "True", "HeartbeatFresh"),
            c("VersionMatched", "Unknown", "NoExpectedVersion"),
            c("Ready", "True", "WorkerReady"),
        ]
    );
    assert_eq!(report.created, 1);
    assert_eq!(report.status_writes, 1);

    // Nothing changed: no writes at all, whether or not the store has caught up.
    for _ in 0..3 {
        let report = cycle(&mut ctl, &fake).await;
        assert_eq!(report.status_writes + report.created, 0);
    }
    let reqs = fake.take_requests();
    assert!(reqs.is_empty(), "unexpected requests: {:?}", calls(&reqs));
}

/// A heartbeat-only change is a merge patch of `status.heartbeatAt` alone (cheaper for
/// the API server than applying the whole status); the rest of the status is untouched.
#[tokio::test]
async fn a_heartbeat_only_refresh_patches_heartbeat_at_alone() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "w", "v1.0.0").await;
    let fake = FakeApiServer::new();
    let mut ctl = controller(&fake, &pool);
    cycle(&mut ctl, &fake).await;
    let before: AmpWorker = fake.objects("ampworkers").remove(0);
    fake.take_requests();

    // 61 s of heartbeat progress: past --status-refresh (60 s), nothing else changed.
    sqlx::query("UPDATE workers SET heartbeat_at = heartbeat_at + interval '61 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    let report = cycle(&mut ctl, &fake).await;
    assert_eq!((report.status_writes, report.refreshes), (0, 1));
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![call(
            "PATCH",
            format!("{WORKERS}/w/status?&fieldManager=amp-operator")
        )]
    );
    let keys: Vec<&String> = reqs[0].body["status"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["heartbeatAt"]);
    let after: AmpWorker = fake.objects("ampworkers").remove(0);
    let (mut b, a) = (before.status.unwrap(), after.status.unwrap());
    assert_ne!(b.heartbeat_at, a.heartbeat_at);
    b.heartbeat_at = a.heartbeat_at;
    assert_eq!(b, a, "only heartbeatAt moved");

    // Written and remembered: nothing more until the next refresh is due.
    let report = cycle(&mut ctl, &fake).await;
    assert!(!report.wrote_anything(), "{report:?}");
}

#[tokio::test]
async fn a_worker_that_stops_heartbeating_gets_exactly_one_patch_and_one_stale_event() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1.0.0").await;
    let fake = FakeApiServer::new();
    fake.insert("ampworkers", &user_worker("worker-01", "worker-01"));
    let mut ctl = controller(&fake, &pool);
    cycle(&mut ctl, &fake).await;
    let first = fake.take_requests();
    assert_eq!(
        calls(&first),
        vec![call("PATCH", format!("{WORKERS}/worker-01/status{APPLY}"))]
    );
    assert_eq!(
        conditions(&first[0].body)[3],
        c("Ready", "True", "WorkerReady")
    );

    backdate_heartbeat(&pool, "worker-01", 31).await;
    cycle(&mut ctl, &fake).await;
    for _ in 0..3 {
        cycle(&mut ctl, &fake).await;
    }
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![
            call("PATCH", format!("{WORKERS}/worker-01/status{APPLY}")),
            call("POST", format!("{EVENTS}?")),
        ],
        "exactly one status patch and one event"
    );
    assert_eq!(
        conditions(&reqs[0].body),
        vec![
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "False", "HeartbeatStale"),
            c("VersionMatched", "Unknown", "NoExpectedVersion"),
            c("Ready", "False", "HeartbeatStale"),
        ]
    );
    assert_eq!(reqs[0].body["status"]["state"], "Stale");
    let healthy = &reqs[0].body["status"]["conditions"][1];
    assert!(
        healthy["message"]
            .as_str()
            .unwrap()
            .starts_with("no heartbeat for more than 30s (last at "),
        "{healthy}"
    );
    // lastTransitionTime moved for the flipped conditions only.
    let before = &first[0].body["status"]["conditions"];
    let after = &reqs[0].body["status"]["conditions"];
    assert_eq!(
        before[0]["lastTransitionTime"],
        after[0]["lastTransitionTime"]
    );

    let event = &reqs[1].body;
    assert_eq!(event["reason"], "WorkerStale");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "AmpWorker");
    assert_eq!(event["regarding"]["name"], "worker-01");
    assert_eq!(event["reportingController"], "amp-operator");
    assert_eq!(event["reportingInstance"], "operator-0");
    assert_eq!(event["note"], healthy["message"]);

    // Heartbeats resume: one patch back to Ready and one WorkerRecovered event.
    metadata_db::heartbeat(&pool, &NodeId::parse("worker-01").unwrap())
        .await
        .unwrap();
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    assert_eq!(reqs.len(), 2, "{:?}", calls(&reqs));
    assert_eq!(
        conditions(&reqs[0].body)[3],
        c("Ready", "True", "WorkerReady")
    );
    assert_eq!(reqs[1].body["reason"], "WorkerRecovered");
    assert_eq!(reqs[1].body["type"], "Normal");
}

#[tokio::test]
async fn a_db_outage_is_unknown_not_stale_and_recovers_without_events() {
    let (mut pg, pool) = common::migrated_db().await;
    register(&pool, "alive", "v1.0.0").await;
    register(&pool, "dead", "v1.0.0").await;
    backdate_heartbeat(&pool, "dead", 10).await;
    let fake = FakeApiServer::new();
    for id in ["alive", "dead"] {
        let mut w = user_worker(id, id);
        w.spec.heartbeat_timeout_seconds = Some(2);
        fake.insert("ampworkers", &w);
    }
    let mut ctl = controller(&fake, &pool);
    cycle(&mut ctl, &fake).await;
    fake.take_requests();

    pg.stop().unwrap();
    let report = cycle(&mut ctl, &fake).await;
    assert!(!report.db_available);
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![
            call("PATCH", format!("{WORKERS}/alive/status{APPLY}")),
            call("PATCH", format!("{WORKERS}/dead/status{APPLY}")),
        ],
        "one patch each, no events"
    );
    assert_eq!(
        conditions(&reqs[0].body),
        vec![
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "Unknown", "MetadataDbUnavailable"),
            c("VersionMatched", "Unknown", "NoExpectedVersion"),
            c("Ready", "Unknown", "MetadataDbUnavailable"),
        ]
    );
    assert_eq!(reqs[0].body["status"]["state"], "Unknown");

    // An outage longer than the 2 s timeout: "alive" could not heartbeat meanwhile and
    // is not judged stale for it; "dead" was stale before the outage and stays so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.restart_after_stop().unwrap();
    wait_until_up(&pool).await;
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![
            call("PATCH", format!("{WORKERS}/alive/status{APPLY}")),
            call("PATCH", format!("{WORKERS}/dead/status{APPLY}")),
            call("POST", format!("{EVENTS}?")),
        ],
    );
    // "alive" has not reconnected yet (no heartbeat since the return): its free lock says
    // nothing, and it is not judged stale for the outage. No event for it.
    assert_eq!(
        conditions(&reqs[0].body)[1],
        c("Healthy", "True", "HeartbeatFresh")
    );
    // "dead" was stale before the outage; the restart ended its session, so no process
    // holds its node id any more: Stopped, with one Normal event (not a stale alarm).
    assert_eq!(
        conditions(&reqs[1].body)[1],
        c("Healthy", "False", "WorkerStopped")
    );
    assert_eq!(reqs[2].body["reason"], "WorkerStopped");
    assert_eq!(reqs[2].body["regarding"]["name"], "dead");
}

/// The pool reconnects on its own once the server is back.
async fn wait_until_up(pool: &PgPool) {
    for _ in 0..50 {
        if sqlx::query("SELECT 1").execute(pool).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("PostgreSQL did not come back");
}

#[tokio::test]
async fn a_missing_crd_is_one_clear_error_naming_the_fix() {
    let fake = FakeApiServer::new();
    fake.crd_missing("ampworkers");
    let err = amp_operator::operator::check_crds(&mock_client(&fake), NS)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the AmpWorker CustomResourceDefinition is not installed in the cluster: install it with `kubectl apply -f crds/` (or the Helm chart)"
    );
    let fake = FakeApiServer::new();
    amp_operator::operator::check_crds(&mock_client(&fake), NS)
        .await
        .expect("both CRDs answer");
}

#[tokio::test]
async fn a_rollout_from_v1_to_v2_goes_reconciling_then_ready() {
    let (_pg, pool) = common::migrated_db().await;
    for id in ["w1", "w2", "w3"] {
        register(&pool, id, "v1").await;
    }
    // Registered a while ago, so re-registrations below are later by whole seconds.
    sqlx::query("UPDATE workers SET created_at = created_at - interval '1 hour', registered_at = registered_at - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let fake = FakeApiServer::new();
    for id in ["w1", "w2", "w3"] {
        fake.insert("ampworkers", &user_worker(id, id));
    }
    let fleet = AmpWorkerFleet::new(
        "amp",
        AmpWorkerFleetSpec {
            version: "v1".into(),
            selector: None,
            min_ready: None,
            pod_selector: None,
            remediation: None,
            progress_deadline_seconds: Some(600),
            ..Default::default()
        },
    );
    fake.insert("ampworkerfleets", &fleet);
    let mut ctl = controller(&fake, &pool);
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    let fleet_apply = reqs.last().unwrap();
    assert_eq!(fleet_apply.path, format!("{FLEETS}/amp/status{APPLY}"));
    assert_eq!(fleet_apply.body["status"]["state"], "Ready");

    // The GitOps change: spec.version v2 (generation 2).
    let mut stored: Value = fake.get("ampworkerfleets", "amp").unwrap();
    stored["spec"]["version"] = json!("v2");
    stored["metadata"]["generation"] = json!(2);
    fake.insert("ampworkerfleets", &stored);
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    let fleet_apply = reqs
        .iter()
        .find(|r| r.path.starts_with(FLEETS))
        .expect("fleet status applied");
    let status = &fleet_apply.body["status"];
    assert_eq!(status["state"], "Progressing");
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        (
            &status["workers"],
            &status["readyWorkers"],
            &status["updatedWorkers"]
        ),
        (&json!(3), &json!(0), &json!(0))
    );
    // READY counts Ready workers: none is on v2 yet.
    assert_eq!(status["readySummary"], "0/3");
    assert_eq!(status["versions"], json!([{"version": "v1", "count": 3}]));
    assert_eq!(status["mismatched"], json!(["w1", "w2", "w3"]));
    assert_eq!(
        conditions(&fleet_apply.body),
        vec![
            c("Ready", "False", "RolloutInProgress"),
            c("Reconciling", "True", "RolloutInProgress"),
            c("Stalled", "False", "Progressing"),
        ]
    );
    // Every worker now expects v2 and VersionMatched flips to False, but a rollout is one
    // Normal event on the fleet, not a Warning per worker.
    let events: Vec<(&str, &str)> = reqs
        .iter()
        .filter(|r| r.path.starts_with(EVENTS))
        .map(|r| {
            (
                r.body["reason"].as_str().unwrap(),
                r.body["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(events, vec![("RolloutStarted", "Normal")]);

    // Workers restart on v2 one by one.
    for (n, id) in ["w1", "w2", "w3"].into_iter().enumerate() {
        register(&pool, id, "v2").await;
        cycle(&mut ctl, &fake).await;
        let reqs = fake.take_requests();
        let worker_apply = reqs
            .iter()
            .find(|r| r.path == format!("{WORKERS}/{id}/status{APPLY}"))
            .unwrap();
        assert_eq!(worker_apply.body["status"]["state"], "Ready");
        assert_eq!(worker_apply.body["status"]["restartCount"], 1);
        let reasons: Vec<&str> = reqs
            .iter()
            .filter(|r| r.path.starts_with(EVENTS))
            .map(|r| r.body["reason"].as_str().unwrap())
            .collect();
        let fleet_status = &reqs
            .iter()
            .find(|r| r.path.starts_with(FLEETS))
            .unwrap()
            .body["status"];
        assert_eq!(fleet_status["updatedWorkers"], json!(n + 1));
        // Just started: not available before minReadySeconds (10 s) have passed.
        assert_eq!(fleet_status["availableWorkers"], json!(0));
        assert_eq!(fleet_status["state"], "Progressing");
        assert_eq!(reasons, vec!["WorkerRestarted", "VersionChanged"]);
    }
    // The last one has been up for minReadySeconds: the rollout is complete.
    sqlx::query("UPDATE workers SET registered_at = registered_at - interval '10 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    let fleet_status = &reqs
        .iter()
        .find(|r| r.path.starts_with(FLEETS))
        .unwrap()
        .body["status"];
    assert_eq!(fleet_status["state"], "Ready");
    assert_eq!(fleet_status["availableWorkers"], json!(3));
    assert_eq!(fleet_status["mismatched"], json!([]));
    assert_eq!(
        fleet_status["versions"],
        json!([{"version": "v2", "count": 3}])
    );
    let reasons: Vec<&str> = reqs
        .iter()
        .filter(|r| r.path.starts_with(EVENTS))
        .map(|r| r.body["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["RolloutCompleted"]);
    cycle(&mut ctl, &fake).await;
    assert!(fake.take_requests().is_empty());
}

#[tokio::test]
async fn api_server_errors_are_retried_with_backoff_and_converge_without_duplicates() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    let fake = FakeApiServer::new();
    let mut ctl = controller(&fake, &pool);

    // Create throttled, then a server error, then accepted.
    fake.fail("POST", "/ampworkers", 429, 1);
    let r = cycle(&mut ctl, &fake).await;
    assert_eq!((r.created, r.errors), (0, 1));
    // Backed off: the next immediate cycle does not retry.
    cycle(&mut ctl, &fake).await;
    assert_eq!(fake.take_requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fake.fail("POST", "/ampworkers", 500, 1);
    assert_eq!(cycle(&mut ctl, &fake).await.errors, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = cycle(&mut ctl, &fake).await;
    assert_eq!((r.created, r.errors), (1, 0));

    // A 409 on create (e.g. another create raced us) never makes a second object.
    let objects: Vec<AmpWorker> = fake.objects("ampworkers");
    assert_eq!(objects.len(), 1);

    // Status patch fails with 500: retried until it lands, then nothing more.
    backdate_heartbeat(&pool, "worker-01", 40).await;
    fake.take_requests();
    fake.fail("PATCH", "/status", 500, 1);
    assert_eq!(cycle(&mut ctl, &fake).await.errors, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = cycle(&mut ctl, &fake).await;
    assert_eq!((r.status_writes, r.errors, r.events), (1, 0, 1));
    let reqs = fake.take_requests();
    let stale_events = reqs
        .iter()
        .filter(|r| r.body["reason"] == "WorkerStale")
        .count();
    assert_eq!(
        stale_events, 1,
        "the event follows the successful write only"
    );
    let stored: AmpWorker = fake.objects("ampworkers").remove(0);
    assert_eq!(stored.status.unwrap().state.as_deref(), Some("Stale"));
}

#[tokio::test]
async fn a_restarted_operator_converges_to_the_same_status_with_no_extra_events() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    backdate_heartbeat(&pool, "worker-01", 40).await;
    let fake = FakeApiServer::new();
    fake.insert("ampworkers", &user_worker("worker-01", "worker-01"));
    let mut first = controller(&fake, &pool);
    cycle(&mut first, &fake).await;
    let written: AmpWorker = fake.objects("ampworkers").remove(0);
    drop(first);
    fake.take_requests();

    // A new process: empty memory, reads the status back from the API server.
    let mut second = controller(&fake, &pool);
    for _ in 0..3 {
        cycle(&mut second, &fake).await;
    }
    assert!(fake.take_requests().is_empty());
    let after: AmpWorker = fake.objects("ampworkers").remove(0);
    assert_eq!(after.status, written.status);
}

/// After an upgrade, a stored status lacking a field the new operator writes is filled
/// within the refresh budget: one apply of the whole status, no event, counted with the
/// refreshes (`status_fill` in the writes metric), and then nothing more.
#[tokio::test]
async fn a_status_an_older_operator_wrote_is_filled_by_one_apply_without_events() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "w", "v1.0.0").await;
    let fake = FakeApiServer::new();
    let mut first = controller(&fake, &pool);
    cycle(&mut first, &fake).await;
    drop(first);
    // As an older operator left it: no shortCommit.
    let mut older: AmpWorker = fake.objects("ampworkers").remove(0);
    let written = older.status.clone().unwrap();
    older.status.as_mut().unwrap().short_commit = None;
    fake.insert("ampworkers", &older);
    fake.take_requests();

    let (mut upgraded, metrics) = controller_with_metrics(&fake, &pool);
    let report = cycle(&mut upgraded, &fake).await;
    assert_eq!(
        (report.status_writes, report.refreshes, report.events),
        (0, 1, 0)
    );
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![call("PATCH", format!("{WORKERS}/w/status{APPLY}"))]
    );
    assert_eq!(reqs[0].body["status"]["shortCommit"], "8b065bde");
    let after: AmpWorker = fake.objects("ampworkers").remove(0);
    assert_eq!(
        after.status.unwrap(),
        written,
        "the status as a fresh judgement"
    );
    assert!(
        metrics_text(&metrics)
            .await
            .contains(r#"amp_operator_writes_total{kind="status_fill",result="ok"} 1"#)
    );
    for _ in 0..2 {
        let report = cycle(&mut upgraded, &fake).await;
        assert!(!report.wrote_anything(), "{report:?}");
    }
}

#[tokio::test]
async fn a_removed_row_marks_the_worker_not_registered() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    let fake = FakeApiServer::new();
    fake.insert("ampworkers", &user_worker("worker-01", "worker-01"));
    let mut ctl = controller(&fake, &pool);
    cycle(&mut ctl, &fake).await;
    fake.take_requests();
    sqlx::query("DELETE FROM workers")
        .execute(&pool)
        .await
        .unwrap();
    cycle(&mut ctl, &fake).await;
    let reqs = fake.take_requests();
    assert_eq!(
        conditions(&reqs[0].body),
        vec![
            c("Registered", "False", "NotRegistered"),
            c("Healthy", "False", "NotRegistered"),
            c("VersionMatched", "Unknown", "NoExpectedVersion"),
            c("Ready", "False", "NotRegistered"),
        ]
    );
    assert_eq!(reqs[0].body["status"]["state"], "NotRegistered");
}

#[tokio::test]
async fn killed_between_create_and_status_a_new_operator_finishes_without_duplicates_or_events() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    let fake = FakeApiServer::new();
    // The first operator creates the object, then dies before its status lands.
    fake.fail("PATCH", "/status", 500, 1);
    let mut first = controller(&fake, &pool);
    let r = cycle(&mut first, &fake).await;
    assert_eq!(r.created, 1);
    drop(first);
    let reqs = fake.take_requests();
    assert_eq!(reqs.len(), 2, "{:?}", calls(&reqs));

    let mut second = controller(&fake, &pool);
    cycle(&mut second, &fake).await;
    cycle(&mut second, &fake).await;
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![call("PATCH", format!("{WORKERS}/worker-01/status{APPLY}"))],
        "no second create, no events: only the missing status"
    );
    assert_eq!(fake.objects::<AmpWorker>("ampworkers").len(), 1);
    assert_eq!(reqs[0].body["status"]["state"], "Ready");
}

fn controller_with_metrics(
    fake: &FakeApiServer,
    pool: &PgPool,
) -> (Reconciler, Arc<OperatorMetrics>) {
    let metrics = Arc::new(OperatorMetrics::new());
    let ctl = Reconciler::new(
        mock_client(fake),
        pool.clone(),
        ReconcilerConfig {
            namespace: NS.into(),
            plan: PlanConfig {
                status_refresh: chrono::Duration::seconds(60),
                gc_after: Some(chrono::Duration::hours(24)),
                gc_stopped_after: Some(chrono::Duration::minutes(15)),
                heartbeat_timeout_secs: 30,
                refresh_budget: 20.0,
            },
            write_concurrency: 1,
            identity: "operator-0".into(),
        },
        metrics.clone(),
    );
    (ctl, metrics)
}

async fn metrics_text(metrics: &OperatorMetrics) -> String {
    let body = metrics.metrics_response().into_body();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_name_collision_is_a_warning_event_and_a_metric_and_is_retried_rarely() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    let fake = FakeApiServer::new();
    // A user's object holds the name the discovered worker needs, for another node id.
    let holder = fake.insert("ampworkers", &user_worker("worker-01", "someone-else"));
    let (mut ctl, metrics) = controller_with_metrics(&fake, &pool);

    let r = cycle(&mut ctl, &fake).await;
    assert_eq!((r.created, r.collisions), (0, 1), "{r:?}");
    let reqs = fake.take_requests();
    let creates: Vec<&Recorded> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with(WORKERS))
        .collect();
    assert_eq!(creates.len(), 1, "{:?}", calls(&reqs));
    assert!(
        reqs.iter()
            .any(|r| r.method == "GET" && r.path == format!("{WORKERS}/worker-01")),
        "the holder is read to tell a collision from a lagging cache: {:?}",
        calls(&reqs)
    );
    let events: Vec<&Recorded> = reqs
        .iter()
        .filter(|r| r.path.starts_with(EVENTS) && r.body["reason"] == "NameCollision")
        .collect();
    assert_eq!(events.len(), 1, "{:?}", calls(&reqs));
    let ev = &events[0].body;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["regarding"]["name"], "worker-01");
    assert_eq!(ev["regarding"]["uid"], holder["metadata"]["uid"]);
    let note = ev["note"].as_str().unwrap();
    assert!(
        note.contains("\"worker-01\"") && note.contains("\"someone-else\""),
        "{note}"
    );
    assert_eq!(metrics.name_collisions.get(), 1);
    assert!(
        metrics_text(&metrics)
            .await
            .contains("amp_operator_name_collisions_total 1"),
    );

    // Backed off: the following cycles neither re-try the create nor repeat the event.
    for _ in 0..3 {
        let r = cycle(&mut ctl, &fake).await;
        assert_eq!(r.collisions, 0);
    }
    let reqs = fake.take_requests();
    assert!(
        !reqs.iter().any(|r| r.method == "POST" || r.method == "GET"),
        "{:?}",
        calls(&reqs)
    );
    assert_eq!(metrics.name_collisions.get(), 1);
    // The user's object is left alone.
    let stored: Vec<AmpWorker> = fake.objects("ampworkers");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].spec.node_id, "someone-else");
}

#[tokio::test]
async fn an_injected_409_on_create_without_a_holder_is_retried_and_is_no_collision() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    let fake = FakeApiServer::new();
    let (mut ctl, metrics) = controller_with_metrics(&fake, &pool);
    // Another create raced us and the object is gone again, or the cache lags.
    fake.fail("POST", "/ampworkers", 409, 1);
    let r = cycle(&mut ctl, &fake).await;
    assert_eq!((r.created, r.errors, r.collisions), (0, 1, 0), "{r:?}");
    let reqs = fake.take_requests();
    assert_eq!(
        calls(&reqs),
        vec![
            call("POST", format!("{WORKERS}?&fieldManager=amp-operator")),
            call("GET", format!("{WORKERS}/worker-01")),
        ]
    );
    // Normal write backoff (1 s), then created once.
    cycle(&mut ctl, &fake).await;
    assert!(fake.take_requests().is_empty());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = cycle(&mut ctl, &fake).await;
    assert_eq!((r.created, r.errors, r.collisions), (1, 0, 0), "{r:?}");
    assert_eq!(fake.objects::<AmpWorker>("ampworkers").len(), 1);
    assert_eq!(metrics.name_collisions.get(), 0);
    assert!(
        !fake
            .take_requests()
            .iter()
            .any(|r| r.body["reason"] == "NameCollision")
    );
}

#[tokio::test]
async fn an_injected_409_while_the_holder_has_the_same_node_id_is_no_collision() {
    let (_pg, pool) = common::migrated_db().await;
    register(&pool, "worker-01", "v1").await;
    let fake = FakeApiServer::new();
    let (mut ctl, metrics) = controller_with_metrics(&fake, &pool);
    // Our own earlier create, not yet in the (here: empty) cache.
    let ours = amp_operator::operator::plan::discovered_worker("worker-01");
    fake.insert("ampworkers", &ours);
    fake.fail("POST", "/ampworkers", 409, 1);
    let r = ctl.cycle(Vec::new(), Vec::new()).await;
    assert_eq!((r.created, r.collisions), (0, 0), "{r:?}");
    assert_eq!(metrics.name_collisions.get(), 0);
    assert!(
        !fake
            .take_requests()
            .iter()
            .any(|r| r.body["reason"] == "NameCollision")
    );
}
