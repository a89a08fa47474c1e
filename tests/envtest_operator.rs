//! The real `ampd operator` process against a real kube-apiserver + etcd (envtest) and a
//! real PostgreSQL, authenticated only by the chart's ServiceAccount: the chart's RBAC is
//! enough, only the leader writes (proved by the API server's audit log), failover on
//! kill -9 and on SIGTERM, and the CRD schema keeps every field the operator writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amp_operator::operator::crd::{
    AmpWorker, AmpWorkerFleet, AmpWorkerFleetStatus, AmpWorkerStatus, VersionCount,
    WorkerBuildInfo, WorkerPlacement,
};
use amp_operator::testing::envtest::{self, ControlPlane};
use amp_operator::testing::postgres::eventually;
use common::cluster::{create_token, have_helm, helm_template, kubectl, yaml_objects};
use common::{AMPD, Proc, free_addr, http_get};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const LEASE: &str = "amp-operator";

/// The control plane and helm, or None after saying why (CI fails instead).
async fn plane(test: &str) -> Option<&'static ControlPlane> {
    let plane = envtest::require(test).await?;
    if !have_helm() {
        if envtest::in_ci() {
            panic!("{test}: helm missing in CI (.ci/install-tools.sh installs it)");
        }
        eprintln!("SKIPPED (not run, not passed): {test}: helm not found (.ci/install-tools.sh)");
        return None;
    }
    Some(plane)
}

/// The chart's operator ServiceAccount, Role and RoleBinding applied in `ns`; returns the
/// operator container's plain env values as the chart renders them.
fn apply_chart_rbac(plane: &ControlPlane, ns: &str) -> Vec<(String, String)> {
    let rbac = helm_template(
        ns,
        &[
            "--show-only",
            "templates/serviceaccounts.yaml",
            "--show-only",
            "templates/operator-rbac.yaml",
        ],
    );
    kubectl(
        plane.kubeconfig(),
        &["apply", "-n", ns, "-f", "-"],
        Some(&rbac),
    );
    let operator = helm_template(ns, &["--show-only", "templates/operator.yaml"]);
    let deployment = yaml_objects(&operator)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart renders the operator Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("operator env")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// How the chart runs the operator in one namespace, against one metadata DB.
struct ChartOperator<'a> {
    plane: &'a ControlPlane,
    dir: &'a Path,
    env: Vec<(String, String)>,
    ns: &'a str,
    db_url: &'a str,
}

impl ChartOperator<'_> {
    /// `ampd operator` configured like the chart's container, authenticated by `token` only.
    fn spawn(&self, identity: &str, token: &str, listen: &str) -> Proc {
        let kubeconfig: PathBuf = self.dir.join(format!("{identity}.kubeconfig"));
        self.plane
            .write_token_kubeconfig(token, &kubeconfig)
            .expect("token kubeconfig");
        // The chart mounts the URL as a file (AMP_DATABASE_URL_FILE in its env).
        let url_file = self.dir.join(format!("{identity}.db-url"));
        std::fs::write(&url_file, self.db_url).expect("write the DB URL file");
        let mut cmd = Command::new(AMPD);
        cmd.arg("operator")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("KUBECONFIG", &kubeconfig)
            .env("AMP_DATABASE_URL_FILE", &url_file)
            .env("AMP_NAMESPACE", self.ns)
            .env("POD_NAME", identity)
            .env("AMP_OPERATOR_LISTEN", listen)
            .env("AMP_LEASE_DURATION", "3s")
            .env("AMP_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST");
        Proc::spawn(identity, &mut cmd)
    }
}

fn user(ns: &str, sa: &str) -> String {
    format!("system:serviceaccount:{ns}:{sa}")
}

/// Audit entries of `username` in `ns`.
fn audited(plane: &ControlPlane, ns: &str, username: &str) -> Vec<Value> {
    plane
        .audit_events()
        .expect("audit log")
        .into_iter()
        .filter(|e| e["user"]["username"] == username && e["objectRef"]["namespace"] == ns)
        .collect()
}

fn is_write(e: &Value) -> bool {
    matches!(
        e["verb"].as_str(),
        Some("create" | "update" | "patch" | "delete" | "deletecollection")
    )
}

fn describe(e: &Value) -> String {
    format!(
        "{} {}/{} {} -> {}",
        e["verb"],
        e["objectRef"]["resource"],
        e["objectRef"]["subresource"],
        e["objectRef"]["name"],
        e["responseStatus"]["code"]
    )
}

async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(LEASE)
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn wait_state(api: &Api<AmpWorker>, name: &str, state: &str, timeout: Duration) {
    let cond = await_condition(api.clone(), name, move |w: Option<&AmpWorker>| {
        w.and_then(|w| w.status.as_ref()?.state.as_deref()) == Some(state)
    });
    tokio::time::timeout(timeout, cond)
        .await
        .unwrap_or_else(|_| panic!("{name} did not become {state} within {timeout:?}"))
        .expect("watch AmpWorker");
}

fn fleet(ns: &str, version: &str) -> AmpWorkerFleet {
    serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet",
        "metadata": {"name": "amp", "namespace": ns},
        "spec": {"version": version}
    }))
    .expect("fleet")
}

#[tokio::test]
async fn the_charts_rbac_is_all_the_operator_needs() {
    let Some(plane) = plane("the_charts_rbac_is_all_the_operator_needs").await else {
        return;
    };
    let client = plane.client().await.unwrap();
    let ns = plane.namespace("amp-rbac").await.unwrap();
    let env = apply_chart_rbac(plane, &ns);
    let token = create_token(plane.kubeconfig(), &ns, "amp-operator");
    let (pg, pool) = common::migrated_db().await;
    common::register_row(&pool, "worker-a", "v1").await;
    common::register_row(&pool, "worker-b", "v1").await;
    Api::<AmpWorkerFleet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &fleet(&ns, "v1"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let url = pg.url();
    let chart = ChartOperator {
        plane,
        dir: dir.path(),
        env,
        ns: &ns,
        db_url: &url,
    };
    let op = chart.spawn("op-0", &token, &listen);
    let workers: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    // Discovery (create), status (patch), the Lease (create + patch).
    wait_state(&workers, "worker-a", "Ready", Duration::from_secs(30)).await;
    wait_state(&workers, "worker-b", "Ready", Duration::from_secs(30)).await;
    assert_eq!(lease_holder(&client, &ns).await.as_deref(), Some("op-0"));
    // Events: a stale worker publishes WorkerStale.
    sqlx::query(
        "UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE node_id = 'worker-b'",
    )
    .execute(&pool)
    .await
    .unwrap();
    wait_state(&workers, "worker-b", "Stale", Duration::from_secs(15)).await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let stale = eventually(Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("WorkerStale"))
    })
    .await
    .expect("a WorkerStale event");
    assert_eq!(stale.reporting_instance.as_deref(), Some("op-0"));
    // The fleet's status (its own subresource).
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    let fleet_written = eventually(Duration::from_secs(10), || async {
        let f = fleets.get("amp").await.ok()?;
        (f.status?.workers == 2).then_some(())
    })
    .await;
    assert!(fleet_written.is_some(), "fleet status never written");

    let (_, metrics) = http_get(&listen, "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l == "amp_operator_leader 1"),
        "{metrics}"
    );
    // The heap as jemalloc counts it (ampd's allocator): set every cycle.
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let allocated = gauge("amp_operator_heap_allocated_bytes");
    let resident = gauge("amp_operator_heap_resident_bytes");
    assert!(
        allocated > 0.0 && resident >= allocated,
        "heap: {allocated} bytes allocated, {resident} resident"
    );
    let (status, stdout, stderr) = op.terminate();
    assert!(status.success(), "operator exit {status:?}: {stderr}");
    let log = format!("{stdout}{stderr}");
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something:\n{log}"
    );
    let sa_user = user(&ns, "amp-operator");
    let denied: Vec<String> = audited(plane, &ns, &sa_user)
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(describe)
        .collect();
    assert!(
        denied.is_empty(),
        "403s for the chart's ServiceAccount: {denied:?}"
    );
    let writes: Vec<String> = audited(plane, &ns, &sa_user)
        .iter()
        .filter(|e| is_write(e))
        .map(describe)
        .collect();
    for needed in [
        "ampworkers",
        "ampworkers/status",
        "ampworkerfleets/status",
        "events",
        "leases",
    ] {
        assert!(
            writes.iter().any(|w| {
                let (res, sub) = needed.split_once('/').unwrap_or((needed, ""));
                w.contains(&format!("\"{res}\"/"))
                    && (sub.is_empty() || w.contains(&format!("/\"{sub}\"")))
            }),
            "no audited write to {needed}: {writes:?}"
        );
    }

    // The Admin API and the workers need no API access: no token is mounted for them and
    // no binding names their ServiceAccounts.
    let all = yaml_objects(&helm_template(&ns, &[]));
    for (kind, component) in [("Deployment", "admin-api"), ("StatefulSet", "worker")] {
        let obj = all
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["labels"]["app.kubernetes.io/component"] == component
            })
            .unwrap_or_else(|| panic!("{kind} {component} rendered"));
        let sa = obj["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap();
        let account = all
            .iter()
            .find(|o| o["kind"] == "ServiceAccount" && o["metadata"]["name"] == sa)
            .expect("its ServiceAccount");
        let pod_automount =
            obj["spec"]["template"]["spec"]["automountServiceAccountToken"].as_bool();
        assert_eq!(
            pod_automount.or(account["automountServiceAccountToken"].as_bool()),
            Some(false),
            "{component} mounts an API token"
        );
        for binding in all
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
        {
            let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
            assert!(
                !subjects.iter().any(|s| s["name"] == sa),
                "{sa} is bound: {binding}"
            );
        }
        // And the API server agrees: that ServiceAccount can do nothing in the namespace.
        let can = common::cluster::run(
            "kubectl",
            plane.kubeconfig(),
            &[
                "auth",
                "can-i",
                "list",
                "ampworkers.amp.io",
                "-n",
                &ns,
                "--as",
                &user(&ns, sa),
            ],
            None,
        );
        assert_eq!(can.1.trim(), "no", "{sa} may list ampworkers");
    }
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over_on_kill_and_on_sigterm() {
    let Some(plane) =
        plane("only_the_leader_writes_and_a_standby_takes_over_on_kill_and_on_sigterm").await
    else {
        return;
    };
    let client = plane.client().await.unwrap();
    let ns = plane.namespace("amp-leader").await.unwrap();
    let env = apply_chart_rbac(plane, &ns);
    // A second identity bound to the chart's Role, so the audit log tells the replicas apart.
    kubectl(
        plane.kubeconfig(),
        &["create", "serviceaccount", "amp-operator-b", "-n", &ns],
        None,
    );
    kubectl(
        plane.kubeconfig(),
        &[
            "create",
            "rolebinding",
            "amp-operator-b",
            "-n",
            &ns,
            "--role=amp-operator",
            &format!("--serviceaccount={ns}:amp-operator-b"),
        ],
        None,
    );
    let (token_a, token_b) = (
        create_token(plane.kubeconfig(), &ns, "amp-operator"),
        create_token(plane.kubeconfig(), &ns, "amp-operator-b"),
    );
    let (pg, pool) = common::migrated_db().await;
    common::register_row(&pool, "worker-a", "v1").await;
    common::register_row(&pool, "worker-b", "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let (listen_a, listen_b) = (free_addr(), free_addr());
    let url = pg.url();
    let chart = ChartOperator {
        plane,
        dir: dir.path(),
        env,
        ns: &ns,
        db_url: &url,
    };

    let mut a = Some(chart.spawn("op-a", &token_a, &listen_a));
    let got = eventually(Duration::from_secs(20), || lease_holder(&client, &ns)).await;
    assert_eq!(got.as_deref(), Some("op-a"));
    let b = chart.spawn("op-b", &token_b, &listen_b);
    let workers: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    wait_state(&workers, "worker-a", "Ready", Duration::from_secs(30)).await;
    wait_state(&workers, "worker-b", "Ready", Duration::from_secs(30)).await;
    eventually(Duration::from_secs(20), || async {
        http_get(&listen_b, "/readyz")
            .ok()
            .filter(|(code, _)| *code == 200)
    })
    .await
    .expect("the standby becomes ready");
    // Give the standby time to (wrongly) write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lease_holder(&client, &ns).await.as_deref(), Some("op-a"));
    let user_a = user(&ns, "amp-operator");
    let user_b = user(&ns, "amp-operator-b");
    let by_a = audited(plane, &ns, &user_a)
        .into_iter()
        .filter(is_write)
        .count();
    assert!(by_a > 0, "the leader wrote nothing");
    let by_b: Vec<String> = audited(plane, &ns, &user_b)
        .iter()
        .filter(|e| is_write(e) && e["objectRef"]["resource"] != "leases")
        .map(describe)
        .collect();
    assert!(by_b.is_empty(), "the standby wrote: {by_b:?}");

    // kill -9: the lease is not released; the standby waits out its 3 s duration.
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
    wait_state(&workers, "worker-b", "Stale", Duration::from_secs(30)).await;
    let took = killed.elapsed();
    assert_eq!(lease_holder(&client, &ns).await.as_deref(), Some("op-b"));
    // Lease 3 s + the standby's retry cadence + one 1 s poll, with room for a loaded runner.
    assert!(
        took < Duration::from_secs(10),
        "failover after kill -9 took {took:?}"
    );
    println!(
        "failover on the real API server: kill -9 -> worker-b Stale by op-b in {took:.1?} (lease 3 s)"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let stale_events = eventually(Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let n = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("WorkerStale"))
            .count();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(
        stale_events,
        Some(1),
        "one WorkerStale event, not a storm from the takeover"
    );

    // SIGTERM: the leader releases the lease, so the standby need not wait it out.
    let a2 = chart.spawn("op-a", &token_a, &listen_a);
    eventually(Duration::from_secs(20), || async {
        http_get(&listen_a, "/readyz")
            .ok()
            .filter(|(code, _)| *code == 200)
    })
    .await
    .expect("op-a is back as the standby");
    let stopping = Instant::now();
    let (status, _, stderr) = b.terminate();
    assert!(status.success(), "op-b exit {status:?}: {stderr}");
    let holder = eventually(Duration::from_secs(20), || async {
        lease_holder(&client, &ns).await.filter(|h| h == "op-a")
    })
    .await;
    let handover = stopping.elapsed();
    assert_eq!(holder.as_deref(), Some("op-a"));
    println!(
        "failover on the real API server: SIGTERM -> op-a holds the lease after {handover:.1?} (lease 3 s)"
    );
    assert!(
        handover < Duration::from_secs(3),
        "a released lease was waited out: {handover:?}"
    );
    drop(a2);
}

fn condition(type_: &str, status: &str, reason: &str, generation: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{type_} is {status}"),
        observed_generation: Some(generation),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-22T10:00:00Z".parse().unwrap(),
        ),
    }
}

/// Every field the operator writes, server-side applied as the operator does, reads back
/// unchanged: the CRD schema prunes nothing.
#[tokio::test]
async fn the_crd_schema_keeps_every_status_field_the_operator_writes() {
    let Some(plane) =
        envtest::require("the_crd_schema_keeps_every_status_field_the_operator_writes").await
    else {
        return;
    };
    let client = plane.client().await.unwrap();
    let ns = plane.namespace("amp-schema").await.unwrap();
    let workers: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    let worker: AmpWorker = serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker",
        "metadata": {"name": "worker-1"},
        "spec": {"nodeId": "Worker_1", "expectedVersion": "v1", "heartbeatTimeoutSeconds": 45}
    }))
    .unwrap();
    let created = workers
        .create(&PostParams::default(), &worker)
        .await
        .unwrap();
    assert_eq!(created.spec, worker.spec, "the spec round-trips");
    let status = AmpWorkerStatus {
        observed_generation: Some(1),
        state: Some("Ready".into()),
        node_id: Some("Worker_1".into()),
        info: Some(WorkerBuildInfo {
            version: Some("v0.0.22-15-g8b065bde".into()),
            commit_sha: Some("8b065bde".into()),
            commit_timestamp: Some("2025-10-30T09:00:00Z".into()),
            build_date: Some("2025-10-30".into()),
        }),
        expected_version: Some("v1".into()),
        short_commit: Some("8b065bde".into()),
        created_at: Some("2026-11-22T09:00:00Z".parse().unwrap()),
        registered_at: Some("2026-11-22T09:30:00Z".parse().unwrap()),
        heartbeat_at: Some("2026-11-22T10:00:00Z".parse().unwrap()),
        placement: Some(WorkerPlacement {
            pod: Some("amp-worker-1".into()),
            namespace: Some("amp".into()),
            node: Some("node-a".into()),
            pod_ip: Some("10.0.0.7".into()),
            source: Some("Worker".into()),
        }),
        restart_count: 3,
        last_remediation_time: Some("2026-11-22T09:45:00Z".parse().unwrap()),
        remediation_count: Some(2),
        jobs: Some(amp_operator::operator::crd::WorkerJobs {
            active: 3,
            scheduled: 1,
            running: 2,
            stopping: 0,
            retrying: 1,
            unknown: 0,
            oldest_scheduled: Some(amp_operator::operator::crd::ScheduledJobRef {
                id: 42,
                since: "2026-11-22T09:55:00Z".parse().unwrap(),
            }),
        }),
        conditions: ["Registered", "Healthy", "VersionMatched", "Ready"]
            .iter()
            .map(|t| condition(t, "True", "WorkerReady", 1))
            .collect(),
    };
    let params = PatchParams::apply(amp_operator::operator::crd::FIELD_MANAGER).force();
    let patch = json!({"apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker", "status": status});
    workers
        .patch_status("worker-1", &params, &Patch::Apply(&patch))
        .await
        .unwrap();
    let back = workers.get("worker-1").await.unwrap();
    assert_eq!(back.status, Some(status));
    // spec.nodeId is a selectable field: the object behind a mapped name is found by id.
    let found = workers
        .list(&ListParams::default().fields("spec.nodeId=Worker_1"))
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|w| w.name_any()).collect::<Vec<_>>(),
        ["worker-1"]
    );
    let none = workers
        .list(&ListParams::default().fields("spec.nodeId=Worker_2"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    fleets
        .create(&PostParams::default(), &fleet(&ns, "v2"))
        .await
        .unwrap();
    let fleet_status = AmpWorkerFleetStatus {
        observed_generation: Some(1),
        state: Some("Progressing".into()),
        workers: 3,
        ready_workers: 2,
        updated_workers: 1,
        available_workers: 1,
        crashed_workers: 1,
        retired_workers: 2,
        ready_summary: Some("2/3".into()),
        versions: vec![
            VersionCount {
                version: "v1".into(),
                count: 2,
            },
            VersionCount {
                version: "v2".into(),
                count: 1,
            },
        ],
        unlisted_version_workers: 4,
        mismatched: vec!["Worker_1".into(), "worker-2".into()],
        mismatched_count: 6,
        last_progress_time: Some("2026-11-22T10:00:00Z".parse().unwrap()),
        pods: Some(amp_operator::operator::crd::FleetPods {
            selected: 3,
            linked: 2,
            workers_without_pod: 1,
            pods_without_worker: 1,
            ambiguous: 0,
            reason: "WorkersWithoutPod".into(),
            message: "1 workers without a selected Pod: worker-2".into(),
        }),
        remediation: Some(amp_operator::operator::crd::FleetRemediation {
            unhealthy: 1,
            max_unhealthy: 1,
        }),
        conditions: vec![
            condition("Ready", "False", "VersionMismatch", 1),
            condition("Reconciling", "True", "RolloutInProgress", 1),
            condition("Stalled", "False", "RolloutProgressing", 1),
        ],
        jobs: None,
    };
    let patch =
        json!({"apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet", "status": fleet_status});
    fleets
        .patch_status("amp", &params, &Patch::Apply(&patch))
        .await
        .unwrap();
    assert_eq!(fleets.get("amp").await.unwrap().status, Some(fleet_status));

    // Validation is the API server's: a bad node id and a changed node id are refused.
    let bad: AmpWorker = serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker",
        "metadata": {"name": "bad"}, "spec": {"nodeId": "1-starts-with-a-digit"}
    }))
    .unwrap();
    let err = workers
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.nodeId"), "{err}");
    let change = json!({"spec": {"nodeId": "Worker_2"}});
    let err = workers
        .patch("worker-1", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nodeId is immutable"), "{err}");
}

/// What a user sees with plain kubectl: `get -o wide` shows the expected version, the
/// Ready condition's reason and a 12-character commit; `explain` describes every field
/// and lists each condition's reasons.
#[tokio::test]
async fn kubectl_explain_and_get_wide_tell_the_whole_story() {
    let test = "kubectl_explain_and_get_wide_tell_the_whole_story";
    let Some(plane) = envtest::require(test).await else {
        return;
    };
    let client = plane.client().await.unwrap();
    let ns = plane.namespace("amp-explain").await.unwrap();
    let workers: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    let worker: AmpWorker = serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker",
        "metadata": {"name": "worker-1"},
        "spec": {"nodeId": "worker-1", "expectedVersion": "v2"}
    }))
    .unwrap();
    workers
        .create(&PostParams::default(), &worker)
        .await
        .unwrap();
    let status = json!({
        "state": "VersionMismatch", "nodeId": "worker-1", "restartCount": 0,
        "info": {"version": "v1", "commitSha": "8b065bde3c1f4a7e9d2b6c5a0f1e2d3c4b5a6978"},
        "expectedVersion": "v2", "shortCommit": "8b065bde3c1f",
        "heartbeatAt": "2025-01-01T00:00:00Z",
        "placement": {"pod": "amp-worker-1", "node": "node-a"},
        "jobs": {"active": 3, "scheduled": 1, "running": 2, "stopping": 0, "retrying": 0, "unknown": 0},
        "conditions": [
            condition("Healthy", "True", "HeartbeatFresh", 1),
            condition("Ready", "False", "VersionMismatch", 1),
        ],
    });
    let patch = json!({"apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker", "status": status});
    let params = PatchParams::apply(amp_operator::operator::crd::FIELD_MANAGER).force();
    workers
        .patch_status("worker-1", &params, &Patch::Apply(&patch))
        .await
        .unwrap();

    let wide = kubectl(
        plane.kubeconfig(),
        &["get", "aw", "-n", &ns, "-o", "wide"],
        None,
    );
    eprintln!("{wide}");
    let rows: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        wide.lines()
            .next()
            .unwrap()
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect::<Vec<_>>(),
        [
            "NAME",
            "NODE ID",
            "STATUS",
            "VERSION",
            "JOBS",
            "RESTARTS",
            "LAST HEARTBEAT",
            "AGE",
            "EXPECTED",
            "REASON",
            "COMMIT",
            "POD",
            "NODE"
        ]
    );
    // LAST HEARTBEAT and AGE are ages: they move.
    let row = &rows[1];
    assert_eq!(
        row[..6],
        ["worker-1", "worker-1", "VersionMismatch", "v1", "3", "0"]
    );
    assert_eq!(
        row[8..],
        [
            "v2",
            "VersionMismatch",
            "8b065bde3c1f",
            "amp-worker-1",
            "node-a"
        ]
    );

    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    fleets
        .create(&PostParams::default(), &fleet(&ns, "v2"))
        .await
        .unwrap();
    let status = json!({
        "state": "Stalled", "readySummary": "0/1", "updatedWorkers": 0,
        "conditions": [condition("Ready", "False", "VersionMismatch", 1)],
    });
    let patch =
        json!({"apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet", "status": status});
    fleets
        .patch_status("amp", &params, &Patch::Apply(&patch))
        .await
        .unwrap();
    let wide = kubectl(
        plane.kubeconfig(),
        &["get", "awf", "-n", &ns, "-o", "wide"],
        None,
    );
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(
        words(lines[0]),
        [
            "NAME", "VERSION", "READY", "UPDATED", "STATUS", "AGE", "REASON"
        ],
        "{wide}"
    );
    let row = words(lines[1]);
    assert_eq!(row[..5], ["amp", "v2", "0/1", "0", "Stalled"], "{wide}");
    assert_eq!(row[6], "VersionMismatch", "{wide}");

    // The API server publishes a new CRD's OpenAPI shortly after it is established.
    let explain = |what: &str| {
        let (ok, out, err) =
            common::cluster::run("kubectl", plane.kubeconfig(), &["explain", what], None);
        ok.then_some(out).ok_or(err)
    };
    let conditions = eventually(Duration::from_secs(20), || async {
        explain("ampworker.status.conditions")
            .ok()
            .filter(|o| o.contains("WorkerStopped"))
    })
    .await
    .unwrap_or_else(|| panic!("{:?}", explain("ampworker.status.conditions")));
    eprintln!("{conditions}");
    for reason in [
        "WorkerRegistered",
        "HeartbeatStale",
        "NoExpectedVersion",
        "WorkerReady",
    ] {
        assert!(
            conditions.contains(reason),
            "{reason} missing:\n{conditions}"
        );
    }
    for what in [
        "ampworker.spec",
        "ampworker.status",
        "ampworker.status.info",
        "ampworker.status.placement",
        "ampworker.status.jobs",
        "ampworkerfleet.spec",
        "ampworkerfleet.status",
        "ampworkerfleet.status.versions",
    ] {
        let out = explain(what).unwrap_or_else(|e| panic!("kubectl explain {what}: {e}"));
        assert!(
            !out.contains("<no description>"),
            "kubectl explain {what}:\n{out}"
        );
    }
    let fleet = explain("ampworkerfleet.status.conditions").unwrap();
    assert!(fleet.contains("ProgressDeadlineExceeded"), "{fleet}");
    let heartbeat = explain("ampworker.status.heartbeatAt").unwrap();
    eprintln!("{heartbeat}");
    assert!(!heartbeat.contains("--"), "no operator flags:\n{heartbeat}");
}

/// The status entries of an object's `managedFields`: (manager, operation, fieldsV1).
fn status_entries(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["subresource"] == "status")
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or_default().to_owned(),
                e["operation"].as_str().unwrap_or_default().to_owned(),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

/// The AmpWorker CRD as checked in, under another group (so the shared control plane's
/// own AmpWorkers are not touched), with or without the atomic status.
fn ampworker_crd_in(group: &str, atomic_status: bool) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/ampworkers.amp.io.yaml");
    let mut crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    crd["metadata"] = json!({"name": format!("ampworkers.{group}")});
    crd["spec"]["group"] = json!(group);
    let status =
        &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["x-kubernetes-map-type"], "atomic",
        "the CRD as checked in"
    );
    if !atomic_status {
        status
            .as_object_mut()
            .unwrap()
            .remove("x-kubernetes-map-type");
    }
    crd
}

/// The operator's status is atomic for server-side apply: one `managedFields` entry
/// for the whole status, and an apply replaces it whole. Objects a release with a
/// per-field status wrote (an apply, then heartbeat merge patches) take the new rule
/// once the CRD is upgraded: the next apply leaves exactly what it applied, and the old
/// per-field entries are gone.
#[tokio::test]
async fn status_is_applied_whole_also_over_objects_written_before_the_upgrade() {
    let Some(plane) =
        envtest::require("status_is_applied_whole_also_over_objects_written_before_the_upgrade")
            .await
    else {
        return;
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let client = plane.client().await.unwrap();
    let group = "upgrade.test.amp.io";
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let install = |atomic: bool| {
        let crds = crds.clone();
        async move {
            let crd: CustomResourceDefinition =
                serde_json::from_value(ampworker_crd_in(group, atomic)).unwrap();
            let name = crd.name_any();
            crds.patch(
                &name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap();
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(crds, &name, kube::runtime::conditions::is_crd_established()),
            )
            .await
            .expect("CRD established")
            .unwrap();
        }
    };
    install(false).await;
    let ns = plane.namespace("amp-upgrade").await.unwrap();
    let gvk = GroupVersionKind::gvk(group, "v1alpha1", "AmpWorker");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let manager = amp_operator::operator::crd::FIELD_MANAGER;
    let apply = PatchParams::apply(manager).force();
    let body = |status: Value| json!({"apiVersion": format!("{group}/v1alpha1"), "kind": "AmpWorker", "status": status});
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1alpha1"), "kind": "AmpWorker",
        "metadata": {"name": "w-1"}, "spec": {"nodeId": "w-1"}
    }))
    .unwrap();
    // eventually: a new CRD's endpoint may answer 404 for a moment after Established.
    eventually(Duration::from_secs(20), || async {
        api.create(&PostParams::default(), &object).await.ok()
    })
    .await
    .expect("create under the old CRD");
    let before = json!({
        "state": "Ready", "nodeId": "w-1", "heartbeatAt": "2026-12-07T10:00:00Z",
        "placement": {"pod": "amp-worker-0", "source": "Pod"},
        "conditions": [condition("Ready", "True", "WorkerReady", 1)]
    });
    api.patch_status("w-1", &apply, &Patch::Apply(&body(before)))
        .await
        .unwrap();
    let refresh = json!({"status": {"heartbeatAt": "2026-12-07T10:05:00Z"}});
    let merge = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status("w-1", &merge, &Patch::Merge(&refresh))
        .await
        .unwrap();
    let old = serde_json::to_value(api.get("w-1").await.unwrap()).unwrap();
    assert!(
        status_entries(&old)
            .iter()
            .any(|(_, op, fields)| op == "Apply" && fields["f:status"].get("f:placement").is_some()),
        "per-field entries before the upgrade: {:?}",
        status_entries(&old)
    );

    install(true).await;
    // Stopped: no heartbeatAt of its own in this apply (so the old rule, which keeps the
    // refresh's, is told apart), no placement.
    let after = json!({
        "state": "Stopped", "nodeId": "w-1",
        "conditions": [condition("Ready", "False", "WorkerStopped", 1)]
    });
    // The API server takes a new CRD schema a moment after it is stored.
    let served = eventually(Duration::from_secs(30), || async {
        api.patch_status("w-1", &apply, &Patch::Apply(&body(after.clone())))
            .await
            .ok()?;
        let served = serde_json::to_value(api.get("w-1").await.ok()?).ok()?;
        (served["status"].get("heartbeatAt").is_none()).then_some(served)
    })
    .await
    .expect("an apply after the upgrade replaces the whole status");
    let mut want = after.clone();
    want["restartCount"] = json!(0); // the schema's default
    assert_eq!(served["status"], want);
    assert_eq!(
        status_entries(&served),
        [(
            manager.to_owned(),
            "Apply".to_owned(),
            json!({"f:status": {}})
        )]
    );
    crds.delete(&format!("ampworkers.{group}"), &Default::default())
        .await
        .unwrap();
}
