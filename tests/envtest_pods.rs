//! Workers linked to their Pods and hung workers restarted, on a real kube-apiserver
//! (envtest: Pods are plain objects, no kubelet; each is owned by a StatefulSet object
//! created here, so it has a controller) with real `ampd worker` processes, one of them
//! frozen with SIGSTOP. The operator's cycles run in this process, reading the Pods the
//! way its cache does (slimmed).

mod common;

use std::sync::Arc;
use std::time::Duration;

use amp_operator::operator::cache::CachedWorker;
use amp_operator::operator::controller::{Reconciler, ReconcilerConfig};
use amp_operator::operator::crd::{AmpWorker, AmpWorkerFleet};
use amp_operator::operator::metrics::OperatorMetrics;
use amp_operator::operator::plan::PlanConfig;
use amp_operator::operator::pods::{PodSharing, WatchedPod, WorkerPod};
use amp_operator::testing::envtest;
use common::{Proc, migrated_db, wait_registered, worker};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sqlx::PgPool;

const WITHIN: Duration = Duration::from_secs(60);

/// The operator's cycle, run by the test.
struct Operator {
    ctl: Reconciler,
    metrics: Arc<OperatorMetrics>,
    client: Client,
    ns: String,
}

impl Operator {
    fn new(client: Client, pool: PgPool, ns: &str) -> Self {
        let metrics = Arc::new(OperatorMetrics::new());
        let ctl = Reconciler::new(
            client.clone(),
            pool,
            ReconcilerConfig {
                namespace: ns.into(),
                plan: PlanConfig {
                    status_refresh: chrono::Duration::seconds(60),
                    refresh_budget: 20.0,
                    gc_after: None,
                    gc_stopped_after: None,
                    heartbeat_timeout_secs: 30,
                },
                write_concurrency: 4,
                identity: "op-pods".into(),
            },
            metrics.clone(),
        );
        Self {
            ctl,
            metrics,
            client,
            ns: ns.into(),
        }
    }

    /// One cycle over what the API server holds now (read with `reader`'s rights).
    async fn cycle(&mut self, reader: &Client) {
        let lp = ListParams::default();
        let workers: Api<AmpWorker> = Api::namespaced(reader.clone(), &self.ns);
        let fleets: Api<AmpWorkerFleet> = Api::namespaced(reader.clone(), &self.ns);
        // Decoded into the operator's own Pod type, as its watch does.
        let pods: Api<WatchedPod> = Api::namespaced(reader.clone(), &self.ns);
        let mut sharing = PodSharing::default();
        let pods: Vec<_> = pods
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| Arc::new(WorkerPod::keep(p, &mut sharing)))
            .collect();
        let workers: Vec<_> = (workers.list(&lp).await.unwrap().items.into_iter())
            .map(|w| Arc::new(CachedWorker::from(w)))
            .collect();
        let fleets = arcs(fleets.list(&lp).await.unwrap().items);
        self.ctl.cycle_with_pods(&workers, &fleets, &pods).await;
    }

    /// Cycles (about one a second) until `done` says so.
    async fn until<T, F, Fut>(&mut self, what: &str, mut done: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let reader = self.client.clone();
        let deadline = std::time::Instant::now() + WITHIN;
        loop {
            self.cycle(&reader).await;
            if let Some(v) = done().await {
                return v;
            }
            if std::time::Instant::now() >= deadline {
                let body = self.metrics.metrics_response().into_body();
                let text = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&text);
                let ours: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with("amp_worker"))
                    .collect();
                panic!("not within {WITHIN:?}: {what}\n{}", ours.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }

    /// `n` more cycles, a second apart.
    async fn cycles(&mut self, n: usize) {
        let reader = self.client.clone();
        for _ in 0..n {
            self.cycle(&reader).await;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
}

fn arcs<T>(items: Vec<T>) -> Vec<Arc<T>> {
    items.into_iter().map(Arc::new).collect()
}

/// A user-created AmpWorker with a short heartbeat timeout.
fn ampworker(node: &str) -> AmpWorker {
    serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker",
        "metadata": {"name": node.to_lowercase().replace('_', "-")},
        "spec": {"nodeId": node, "heartbeatTimeoutSeconds": 3}
    }))
    .unwrap()
}

fn fleet(remediation: Value) -> AmpWorkerFleet {
    serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet",
        "metadata": {"name": "amp"},
        "spec": {
            "version": "v1",
            "podSelector": {"matchLabels": {"app": "amp-worker"}},
            "remediation": remediation,
        }
    }))
    .unwrap()
}

/// A StatefulSet object (no controller-manager runs it): the Pods' controller owner. And
/// the namespace's `default` ServiceAccount, which Pod admission looks up (no
/// controller-manager makes it either).
async fn statefulset(client: &Client, ns: &str) -> String {
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let _ = sas.create(&PostParams::default(), &sa).await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "amp-worker"},
        "spec": {
            "serviceName": "amp-worker",
            "selector": {"matchLabels": {"app": "amp-worker"}},
            "template": {
                "metadata": {"labels": {"app": "amp-worker"}},
                "spec": {"containers": [{"name": "ampd", "image": "amp:test"}]}
            }
        }
    }))
    .unwrap();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let created = api.create(&PostParams::default(), &sts).await.unwrap();
    created.metadata.uid.unwrap()
}

/// A worker Pod, owned by the StatefulSet when `owner` is given (else bare).
async fn pod(client: &Client, ns: &str, name: &str, owner: Option<&str>, extra: Value) -> Pod {
    let mut body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "amp-worker"}},
        "spec": {"containers": [{"name": "ampd", "image": "amp:test"}]}
    });
    if let Some(uid) = owner {
        body["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "amp-worker",
            "uid": uid, "controller": true
        }]);
    }
    merge(&mut body, extra);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

async fn pod_uid(client: &Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p = api.get_opt(name).await.unwrap()?;
    // A Pod being deleted is as good as gone (envtest has no kubelet to finish it).
    p.metadata
        .deletion_timestamp
        .is_none()
        .then(|| p.metadata.uid.unwrap())
}

async fn status(client: &Client, ns: &str, name: &str) -> Value {
    let api: Api<AmpWorker> = Api::namespaced(client.clone(), ns);
    serde_json::to_value(api.get(name).await.unwrap().status).unwrap()
}

async fn fleet_status(client: &Client, ns: &str) -> Value {
    let api: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), ns);
    serde_json::to_value(api.get("amp").await.unwrap().status).unwrap()
}

fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_default();
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

/// (kind, name) of the objects events with `reason` point at.
async fn events(client: &Client, ns: &str, reason: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut found: Vec<(String, String)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| {
            let r = e.regarding?;
            Some((r.kind?, r.name?))
        })
        .collect();
    found.sort();
    found
}

async fn patch_fleet(client: &Client, ns: &str, spec: Value) {
    let api: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), ns);
    api.patch(
        "amp",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec})),
    )
    .await
    .unwrap();
}

/// Running workers (real processes), registered and with their AmpWorkers created.
async fn workers(
    client: &Client,
    ns: &str,
    pg_url: &str,
    pool: &PgPool,
    ids: &[&str],
) -> Vec<Proc> {
    let api: Api<AmpWorker> = Api::namespaced(client.clone(), ns);
    let mut procs = Vec::new();
    for id in ids {
        api.create(&PostParams::default(), &ampworker(id))
            .await
            .unwrap();
        procs.push(Proc::spawn(id, &mut worker(pg_url, id, "v1")));
    }
    for id in ids {
        wait_registered(pool, id, Duration::from_secs(20)).await;
    }
    procs
}

async fn wait_state(op: &mut Operator, name: &str, want: &str) {
    let (client, ns) = (op.client.clone(), op.ns.clone());
    op.until(&format!("{name} {want}"), || {
        let (client, ns) = (client.clone(), ns.clone());
        async move { (status(&client, &ns, name).await["state"] == want).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_link_by_name_or_annotation_and_give_the_placement() {
    let Some(plane) =
        envtest::require("pods_link_by_name_or_annotation_and_give_the_placement").await
    else {
        return;
    };
    let ns = plane.namespace("pods-link").await.unwrap();
    let client = plane.client().await.unwrap();
    let (pg, pool) = migrated_db().await;
    let sts = statefulset(&client, &ns).await;
    let _procs = workers(&client, &ns, &pg.url(), &pool, &["w-0", "W_1", "w-2"]).await;
    // By name, on node-a; by annotation (W_1 is no valid Pod name); an orphan Pod.
    pod(
        &client,
        &ns,
        "w-0",
        Some(&sts),
        json!({"spec": {"nodeName": "node-a"}}),
    )
    .await;
    pod(
        &client,
        &ns,
        "pod-of-w1",
        Some(&sts),
        json!({"metadata": {"annotations": {"amp.io/node-id": "W_1"}}, "spec": {"nodeName": "node-b"}}),
    )
    .await;
    pod(&client, &ns, "w-9", Some(&sts), json!({})).await;
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    fleets
        .create(&PostParams::default(), &fleet(json!({"mode": "Off"})))
        .await
        .unwrap();

    let mut op = Operator::new(client.clone(), pool.clone(), &ns);
    wait_state(&mut op, "w-0", "Ready").await;
    let (c, n) = (client.clone(), ns.clone());
    let placement = op
        .until("w-1's placement from its Pod", || {
            let (c, n) = (c.clone(), n.clone());
            async move {
                let p = status(&c, &n, "w-1").await["placement"].clone();
                (p["source"] == "Pod").then_some(p)
            }
        })
        .await;
    assert_eq!(
        placement,
        json!({"pod": "pod-of-w1", "namespace": ns, "node": "node-b", "source": "Pod"})
    );
    assert_eq!(
        status(&client, &ns, "w-0").await["placement"],
        json!({"pod": "w-0", "namespace": ns, "node": "node-a", "source": "Pod"})
    );
    // Our worker reports its own placement only inside a Pod: none here.
    assert_eq!(status(&client, &ns, "w-2").await.get("placement"), None);
    op.cycles(2).await;
    assert_eq!(
        fleet_status(&client, &ns).await["pods"],
        json!({"selected": 3, "linked": 2, "workersWithoutPod": 1, "podsWithoutWorker": 1,
            "ambiguous": 0, "reason": "WorkersWithoutPod",
            "message": "1 workers without a selected Pod: w-2"})
    );
    // -o wide: POD and NODE.
    if common::cluster::have_helm() {
        let wide = common::cluster::kubectl(
            plane.kubeconfig(),
            &["get", "aw", "w-0", "-n", &ns, "-o", "wide", "--no-headers"],
            None,
        );
        let cols: Vec<&str> = wide.split_whitespace().collect();
        assert!(cols.ends_with(&["w-0", "node-a"]), "{wide}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_worker_is_reported_in_a_dry_run_then_restarted_then_backed_off() {
    let Some(plane) =
        envtest::require("a_frozen_worker_is_reported_in_a_dry_run_then_restarted_then_backed_off")
            .await
    else {
        return;
    };
    let ns = plane.namespace("pods-restart").await.unwrap();
    let client = plane.client().await.unwrap();
    let (pg, pool) = migrated_db().await;
    let sts = statefulset(&client, &ns).await;
    let procs = workers(&client, &ns, &pg.url(), &pool, &["w-frozen", "w-ok"]).await;
    for name in ["w-frozen", "w-ok"] {
        pod(&client, &ns, name, Some(&sts), json!({})).await;
    }
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    let remediation = json!({"mode": "DryRun", "restartStaleAfterSeconds": 2,
        "maxUnhealthy": 1, "minIntervalSeconds": 1});
    fleets
        .create(&PostParams::default(), &fleet(remediation))
        .await
        .unwrap();
    let mut op = Operator::new(client.clone(), pool.clone(), &ns);
    wait_state(&mut op, "w-frozen", "Ready").await;
    let first_uid = pod_uid(&client, &ns, "w-frozen").await.unwrap();

    procs[0].signal(libc::SIGSTOP);
    wait_state(&mut op, "w-frozen", "Stale").await;
    // Dry run: the Warning on the AmpWorker and on the Pod, counted, nothing deleted.
    let (c, n) = (client.clone(), ns.clone());
    let dry = op
        .until("the dry run's events", || {
            let (c, n) = (c.clone(), n.clone());
            async move {
                let e = events(&c, &n, "HungWorkerRestartDryRun").await;
                (e.len() >= 2).then_some(e)
            }
        })
        .await;
    assert_eq!(
        dry,
        [
            ("AmpWorker".to_owned(), "w-frozen".to_owned()),
            ("Pod".to_owned(), "w-frozen".to_owned())
        ]
    );
    assert!(op.metrics.remediations_counted("dry_run", "due") >= 1);
    op.cycles(2).await;
    assert_eq!(
        pod_uid(&client, &ns, "w-frozen").await,
        Some(first_uid.clone())
    );
    assert_eq!(
        status(&client, &ns, "w-frozen")
            .await
            .get("remediationCount"),
        None
    );

    // Restart: the Pod is deleted, the AmpWorker records it, and says why.
    patch_fleet(&client, &ns, json!({"remediation": {"mode": "Restart"}})).await;
    let (c, n) = (client.clone(), ns.clone());
    op.until("w-frozen's Pod deleted", || {
        let (c, n) = (c.clone(), n.clone());
        async move { pod_uid(&c, &n, "w-frozen").await.is_none().then_some(()) }
    })
    .await;
    let (c, n) = (client.clone(), ns.clone());
    let recorded = op
        .until("the restart recorded", || {
            let (c, n) = (c.clone(), n.clone());
            async move {
                let s = status(&c, &n, "w-frozen").await;
                (s["remediationCount"] == 1).then_some(s)
            }
        })
        .await;
    assert!(recorded["lastRemediationTime"].is_string(), "{recorded}");
    assert_eq!(
        events(&client, &ns, "HungWorkerRestarted").await,
        [
            ("AmpWorker".to_owned(), "w-frozen".to_owned()),
            ("Pod".to_owned(), "w-frozen".to_owned())
        ]
    );
    assert_eq!(op.metrics.remediations_counted("restarted", "due"), 1);
    // The healthy worker's Pod was never touched.
    assert!(pod_uid(&client, &ns, "w-ok").await.is_some());

    // The StatefulSet's part, played here: the Pod comes back, the worker is still hung.
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let _ = api.delete("w-frozen", &Default::default()).await;
    pod(&client, &ns, "w-frozen", Some(&sts), json!({})).await;
    // Held back (the new Pod is young, then the doubled back-off), then restarted again.
    let (c, n) = (client.clone(), ns.clone());
    op.until("a second restart", || {
        let (c, n) = (c.clone(), n.clone());
        async move { (status(&c, &n, "w-frozen").await["remediationCount"] == 2).then_some(()) }
    })
    .await;
    assert!(
        op.metrics.remediations_counted("skipped", "back_off") >= 1,
        "the second restart waited for the back-off"
    );
    procs[0].signal(libc::SIGCONT);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_hung_a_bare_pod_and_a_db_outage_restart_nothing() {
    let Some(plane) =
        envtest::require("too_many_hung_a_bare_pod_and_a_db_outage_restart_nothing").await
    else {
        return;
    };
    let ns = plane.namespace("pods-guard").await.unwrap();
    let client = plane.client().await.unwrap();
    let (mut pg, pool) = migrated_db().await;
    let sts = statefulset(&client, &ns).await;
    let procs = workers(&client, &ns, &pg.url(), &pool, &["w-a", "w-bare", "w-ok"]).await;
    pod(&client, &ns, "w-a", Some(&sts), json!({})).await;
    pod(&client, &ns, "w-bare", None, json!({})).await;
    pod(&client, &ns, "w-ok", Some(&sts), json!({})).await;
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    let remediation = json!({"mode": "Restart", "restartStaleAfterSeconds": 2,
        "maxUnhealthy": 1, "minIntervalSeconds": 1});
    fleets
        .create(&PostParams::default(), &fleet(remediation))
        .await
        .unwrap();
    let mut op = Operator::new(client.clone(), pool.clone(), &ns);
    for w in ["w-a", "w-bare", "w-ok"] {
        wait_state(&mut op, w, "Ready").await;
    }
    let uids = [
        pod_uid(&client, &ns, "w-a").await.unwrap(),
        pod_uid(&client, &ns, "w-bare").await.unwrap(),
    ];

    // Two of three hung, maxUnhealthy 1: paused, said once.
    procs[0].signal(libc::SIGSTOP);
    procs[1].signal(libc::SIGSTOP);
    let (c, n) = (client.clone(), ns.clone());
    op.until("remediation paused", || {
        let (c, n) = (c.clone(), n.clone());
        async move {
            let s = fleet_status(&c, &n).await;
            (condition(&s, "RemediationAllowed") == ("False".into(), "TooManyUnhealthy".into()))
                .then_some(())
        }
    })
    .await;
    op.cycles(4).await;
    assert_eq!(
        events(&client, &ns, "RemediationPaused").await,
        [("AmpWorkerFleet".to_owned(), "amp".to_owned())]
    );
    assert_eq!(
        fleet_status(&client, &ns).await["remediation"],
        json!({"unhealthy": 2, "maxUnhealthy": 1})
    );
    assert_eq!(pod_uid(&client, &ns, "w-a").await.as_ref(), Some(&uids[0]));
    assert_eq!(
        pod_uid(&client, &ns, "w-bare").await.as_ref(),
        Some(&uids[1])
    );
    // w-a held back by the fleet; w-bare by its Pod first (a bare Pod is never due).
    assert!(
        op.metrics
            .remediations_counted("skipped", "too_many_unhealthy")
            >= 1
    );
    assert!(op.metrics.remediations_counted("skipped", "no_controller") >= 1);

    // The metadata DB goes away: health is Unknown, nothing is restarted.
    pg.stop().unwrap();
    patch_fleet(&client, &ns, json!({"remediation": {"maxUnhealthy": 2}})).await;
    let (c, n) = (client.clone(), ns.clone());
    op.until("remediation Unknown", || {
        let (c, n) = (c.clone(), n.clone());
        async move {
            let s = fleet_status(&c, &n).await;
            (condition(&s, "RemediationAllowed").0 == "Unknown").then_some(())
        }
    })
    .await;
    op.cycles(4).await;
    assert_eq!(pod_uid(&client, &ns, "w-a").await.as_ref(), Some(&uids[0]));
    assert_eq!(op.metrics.remediations_counted("restarted", "due"), 0);
    pg.restart_after_stop().unwrap();

    // Back, with fresh hung workers to judge: the controlled Pod goes, the bare one stays.
    procs[0].signal(libc::SIGCONT);
    procs[1].signal(libc::SIGCONT);
    drop(procs);
    let _again = workers_again(&pg.url(), &pool, &["w-a", "w-bare"]).await;
    for w in ["w-a", "w-bare"] {
        wait_state(&mut op, w, "Ready").await;
    }
    _again[0].signal(libc::SIGSTOP);
    _again[1].signal(libc::SIGSTOP);
    let (c, n) = (client.clone(), ns.clone());
    op.until("w-a's Pod deleted", || {
        let (c, n) = (c.clone(), n.clone());
        async move { pod_uid(&c, &n, "w-a").await.is_none().then_some(()) }
    })
    .await;
    op.cycles(4).await;
    assert_eq!(
        pod_uid(&client, &ns, "w-bare").await.as_ref(),
        Some(&uids[1])
    );
    assert!(op.metrics.remediations_counted("skipped", "no_controller") >= 1);
    _again[0].signal(libc::SIGCONT);
    _again[1].signal(libc::SIGCONT);
}

/// Workers started again for node ids whose AmpWorkers exist.
async fn workers_again(pg_url: &str, pool: &PgPool, ids: &[&str]) -> Vec<Proc> {
    let procs: Vec<Proc> = ids
        .iter()
        .map(|id| Proc::spawn(id, &mut worker(pg_url, id, "v1")))
        .collect();
    for id in ids {
        wait_registered(pool, id, Duration::from_secs(30)).await;
    }
    procs
}

#[tokio::test(flavor = "multi_thread")]
async fn without_delete_on_pods_one_event_and_no_retry() {
    use common::cluster::{create_token, have_helm, helm_template, kubectl};
    let Some(plane) = envtest::require("without_delete_on_pods_one_event_and_no_retry").await
    else {
        return;
    };
    if !have_helm() {
        eprintln!("SKIP: helm not on PATH");
        return;
    }
    let ns = plane.namespace("pods-rbac").await.unwrap();
    let admin = plane.client().await.unwrap();
    // The chart's Role with its defaults: Pods readable, not deletable.
    let rbac = helm_template(
        &ns,
        &[
            "--show-only",
            "templates/serviceaccounts.yaml",
            "--show-only",
            "templates/operator-rbac.yaml",
        ],
    );
    kubectl(
        plane.kubeconfig(),
        &["apply", "-n", &ns, "-f", "-"],
        Some(&rbac),
    );
    let token = create_token(plane.kubeconfig(), &ns, "amp-operator");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    plane.write_token_kubeconfig(&token, &kubeconfig).unwrap();
    let operator_client = envtest::client_from(&kubeconfig).await.unwrap();
    assert_eq!(
        amp_operator::operator::pod_access(&operator_client, &ns).await,
        amp_operator::operator::PodAccess {
            read: true,
            delete: false
        }
    );

    let (pg, pool) = migrated_db().await;
    let sts = statefulset(&admin, &ns).await;
    let procs = workers(&admin, &ns, &pg.url(), &pool, &["w-0"]).await;
    pod(&admin, &ns, "w-0", Some(&sts), json!({})).await;
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(admin.clone(), &ns);
    let remediation = json!({"mode": "Restart", "restartStaleAfterSeconds": 2,
        "maxUnhealthy": 1, "minIntervalSeconds": 1});
    fleets
        .create(&PostParams::default(), &fleet(remediation))
        .await
        .unwrap();
    let mut op = Operator::new(operator_client.clone(), pool.clone(), &ns);
    op.client = operator_client;
    wait_state(&mut op, "w-0", "Ready").await;
    let uid = pod_uid(&admin, &ns, "w-0").await.unwrap();
    procs[0].signal(libc::SIGSTOP);
    let (c, n) = (admin.clone(), ns.clone());
    op.until("the forbidden delete said", || {
        let (c, n) = (c.clone(), n.clone());
        async move {
            let e = events(&c, &n, "RemediationForbidden").await;
            (!e.is_empty()).then_some(())
        }
    })
    .await;
    op.cycles(5).await;
    assert_eq!(
        events(&admin, &ns, "RemediationForbidden").await,
        [("AmpWorkerFleet".to_owned(), "amp".to_owned())]
    );
    assert_eq!(op.metrics.remediations_counted("failed", "forbidden"), 1);
    assert_eq!(pod_uid(&admin, &ns, "w-0").await, Some(uid));
    procs[0].signal(libc::SIGCONT);
}

/// The real `ampd operator`: it starts watching Pods when a fleet selects them, and the
/// placement comes from its (slimmed) cache.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_process_watches_pods_once_a_fleet_selects_them() {
    let Some(plane) =
        envtest::require("the_operator_process_watches_pods_once_a_fleet_selects_them").await
    else {
        return;
    };
    let ns = plane.namespace("pods-process").await.unwrap();
    let client = plane.client().await.unwrap();
    let (pg, pool) = migrated_db().await;
    let sts = statefulset(&client, &ns).await;
    let _procs = workers(&client, &ns, &pg.url(), &pool, &["w-0"]).await;
    pod(
        &client,
        &ns,
        "w-0",
        Some(&sts),
        json!({"spec": {"nodeName": "node-a"}}),
    )
    .await;
    let _op = Proc::spawn(
        "operator",
        &mut common::operator(plane.kubeconfig(), &ns, &pg.url(), "op-pods"),
    );
    let placed = |source: &'static str| {
        let (c, n) = (client.clone(), ns.clone());
        move || {
            let (c, n) = (c.clone(), n.clone());
            async move {
                let s = status(&c, &n, "w-0").await;
                let placed = source.is_empty() || s["placement"]["source"] == source;
                (s["state"] == "Ready" && placed).then_some(s)
            }
        }
    };
    // No fleet selects Pods yet: no placement from a Pod.
    let s = amp_operator::testing::postgres::eventually(WITHIN, placed(""))
        .await
        .expect("w-0 Ready");
    assert_eq!(s.get("placement"), None);
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    fleets
        .create(&PostParams::default(), &fleet(json!({"mode": "Off"})))
        .await
        .unwrap();
    let s = amp_operator::testing::postgres::eventually(WITHIN, placed("Pod"))
        .await
        .expect("placement from the Pod");
    assert_eq!(
        s["placement"],
        json!({"pod": "w-0", "namespace": ns, "node": "node-a", "source": "Pod"})
    );
}
