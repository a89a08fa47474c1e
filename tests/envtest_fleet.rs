//! Fleet membership that cannot hide a failure (issue 29), on a real kube-apiserver
//! (envtest), real PostgreSQL, real `ampd worker` processes and a real `ampd operator`:
//! a crash-looping new version keeps the fleet not Ready (`kubectl wait` times out) and
//! stalls it at the deadline; a worker that stops in a steady fleet is a member that is
//! not Ready until it is retired; the fleet's heartbeat timeout applies to its workers
//! (a worker's own wins, the operator's flag is the default); a rollout is one Normal
//! event on the fleet.

mod common;

use std::time::Duration;

use amp_operator::operator::crd::{AmpWorker, AmpWorkerFleet, AmpWorkerFleetStatus};
use amp_operator::testing::envtest::{self, ControlPlane};
use amp_operator::testing::postgres::eventually;
use common::{Proc, migrated_db, wait_registered, worker};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sqlx::PgPool;

const FLEET: &str = "amp";

struct Setup {
    plane: &'static ControlPlane,
    ns: String,
    fleets: Api<AmpWorkerFleet>,
    workers: Api<AmpWorker>,
    events: Api<Event>,
}

async fn setup(test: &str, prefix: &str) -> Option<Setup> {
    let plane = envtest::require(test).await?;
    let ns = plane.namespace(prefix).await.unwrap();
    let client: Client = plane.client().await.unwrap();
    Some(Setup {
        plane,
        fleets: Api::namespaced(client.clone(), &ns),
        workers: Api::namespaced(client.clone(), &ns),
        events: Api::namespaced(client, &ns),
        ns,
    })
}

impl Setup {
    async fn create_fleet(&self, spec: Value) {
        let fleet: AmpWorkerFleet = serde_json::from_value(json!({
            "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet",
            "metadata": {"name": FLEET}, "spec": spec
        }))
        .unwrap();
        self.fleets
            .create(&PostParams::default(), &fleet)
            .await
            .unwrap();
    }

    async fn patch_fleet(&self, spec: Value) {
        self.fleets
            .patch(
                FLEET,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .unwrap();
    }

    async fn create_worker(&self, node: &str, labels: Value, spec: Value) {
        let mut spec = spec;
        spec["nodeId"] = json!(node);
        let w: AmpWorker = serde_json::from_value(json!({
            "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker",
            "metadata": {"name": node, "labels": labels}, "spec": spec
        }))
        .unwrap();
        self.workers
            .create(&PostParams::default(), &w)
            .await
            .unwrap();
    }

    fn operator(&self, url: &str, extra: &[&str]) -> Proc {
        let mut cmd = common::operator(self.plane.kubeconfig(), &self.ns, url, "op-fleet");
        cmd.args(extra);
        Proc::spawn("operator", &mut cmd)
    }

    async fn fleet_status(&self) -> Option<AmpWorkerFleetStatus> {
        self.fleets.get_opt(FLEET).await.ok()??.status
    }

    /// Polls the fleet's status until `f` accepts it.
    async fn wait_fleet(
        &self,
        what: &str,
        within: Duration,
        f: impl Fn(&AmpWorkerFleetStatus) -> bool,
    ) -> AmpWorkerFleetStatus {
        eventually(within, || async {
            self.fleet_status().await.filter(|s| f(s))
        })
        .await
        .unwrap_or_else(|| panic!("fleet not {what} within {within:?}"))
    }

    async fn wait_fleet_ready(&self, within: Duration) -> AmpWorkerFleetStatus {
        self.wait_fleet("Ready", within, |s| {
            cond(s, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await
    }

    /// (status, reason, message) of a worker's Healthy condition.
    async fn healthy(&self, name: &str) -> (String, String, String) {
        let w = self.workers.get(name).await.unwrap();
        let c = w
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Healthy")
            .unwrap();
        (c.status, c.reason, c.message)
    }

    async fn worker_state(&self, name: &str) -> Option<String> {
        self.workers.get_opt(name).await.ok()??.status?.state
    }

    async fn wait_worker(&self, name: &str, want: &str, within: Duration) {
        eventually(within, || async {
            (self.worker_state(name).await.as_deref() == Some(want)).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{name} not {want} within {within:?}"));
    }

    /// `(kind, name, reason, type, series count)` of every event in the namespace.
    async fn events(&self) -> Vec<Ev> {
        let list = self.events.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .map(|e| {
                let regarding = e.regarding.unwrap_or_default();
                Ev {
                    kind: regarding.kind.unwrap_or_default(),
                    name: regarding.name.unwrap_or_default(),
                    reason: e.reason.unwrap_or_default(),
                    type_: e.type_.unwrap_or_default(),
                    series: e.series.map(|s| s.count),
                    note: e.note.unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Events on the fleet with `reason`.
    async fn fleet_events(&self, reason: &str) -> Vec<Ev> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e.kind == "AmpWorkerFleet" && e.name == FLEET && e.reason == reason)
            .collect()
    }

    /// `kubectl wait --for=condition=Ready` on the fleet: (success, stderr).
    fn kubectl_wait_ready(&self, timeout: &str) -> (bool, String) {
        let (ok, _, err) = common::cluster::run(
            "kubectl",
            self.plane.kubeconfig(),
            &[
                "wait",
                "--for=condition=Ready",
                &format!("ampworkerfleet/{FLEET}"),
                "-n",
                &self.ns,
                &format!("--timeout={timeout}"),
            ],
            None,
        );
        (ok, err)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    kind: String,
    name: String,
    reason: String,
    type_: String,
    /// events.k8s.io series count: set when the recorder folded repeats into one object.
    series: Option<i32>,
    note: String,
}

/// (status, reason, message) of condition `t`.
fn cond(s: &AmpWorkerFleetStatus, t: &str) -> Option<(String, String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn status_reason(s: &AmpWorkerFleetStatus, t: &str) -> (String, String) {
    let (status, reason, _) = cond(s, t).unwrap_or_default();
    (status, reason)
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// Moves `node`'s last registration `secs` into the past: a worker that has been up that
/// long (a stop after that is a stop, not a crash within 60 s of starting).
async fn backdate_registration(pool: &PgPool, node: &str, secs: i64) {
    sqlx::query(
        "UPDATE workers SET registered_at = registered_at - make_interval(secs => $2) \
         WHERE node_id = $1",
    )
    .bind(node)
    .bind(secs as f64)
    .execute(pool)
    .await
    .unwrap();
}

fn spawn(url: &str, node: &str, version: &str) -> Proc {
    Proc::spawn(
        &format!("worker {node} {version}"),
        &mut worker(url, node, version),
    )
}

const UP: Duration = Duration::from_secs(20);
const FLEET_WAIT: Duration = Duration::from_secs(40);

/// A new version that crash-loops at start (the process registers, then dies a few
/// seconds later, over and over) never makes the fleet Ready: `kubectl wait` times out,
/// the fleet counts and names the crash once, and it is Stalled at the deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_new_version_keeps_the_fleet_not_ready_and_stalls_it() {
    let Some(s) = setup(
        "a_crash_looping_new_version_keeps_the_fleet_not_ready_and_stalls_it",
        "crashloop",
    )
    .await
    else {
        return;
    };
    let (pg, pool) = migrated_db().await;
    let url = pg.url();
    let v1 = spawn(&url, "w-0", "v1");
    wait_registered(&pool, "w-0", UP).await;
    // Up for 5 minutes when the rollout starts: its stop is a restart, not a crash.
    backdate_registration(&pool, "w-0", 300).await;
    // minReadySeconds 10 (the default): the v2 process dies 2 s after each start.
    s.create_fleet(json!({"version": "v1", "progressDeadlineSeconds": 20}))
        .await;
    let _op = s.operator(&url, &[]);
    s.wait_fleet_ready(FLEET_WAIT).await;

    // The StatefulSet's Pod w-0 is replaced by one on v2, which crash-loops.
    s.patch_fleet(json!({"version": "v2"})).await;
    let _ = v1.terminate();
    let looping = tokio::spawn(crash_loop(url.clone(), pool.clone()));

    // Watched once a second for a minute: never Ready; the crash counted and named.
    let mut seen_crashed = 0;
    let mut ready_true = Vec::new();
    let mut stalled = None;
    let mut seen = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while stalled.is_none() && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(st) = s
            .fleet_status()
            .await
            .filter(|st| st.observed_generation == Some(2))
        else {
            continue;
        };
        seen.push(format!(
            "{} crashed={} updated={} lastProgress={:?}",
            status_reason(&st, "Ready").1,
            st.crashed_workers,
            st.updated_workers,
            st.last_progress_time
        ));
        if status_reason(&st, "Ready").0 == "True" {
            ready_true.push(st.clone());
        }
        if st.crashed_workers >= 1 {
            seen_crashed += 1;
            assert_eq!(
                status_reason(&st, "Ready"),
                pair("False", "WorkersCrashing"),
                "{st:?}"
            );
        }
        if status_reason(&st, "Stalled").0 == "True" {
            stalled = Some(st);
        }
    }
    let (wait_ok, wait_err) = s.kubectl_wait_ready("5s");
    looping.abort();

    assert!(
        ready_true.is_empty(),
        "Ready=True during the loop: {ready_true:?}"
    );
    assert!(seen_crashed > 0, "status.crashedWorkers never >= 1");
    assert!(!wait_ok, "kubectl wait passed on a crash-looping fleet");
    assert!(wait_err.contains("timed out"), "{wait_err}");
    let stalled = stalled.unwrap_or_else(|| {
        panic!(
            "Stalled=True within 60 s of a 20 s deadline; seen:\n{}",
            seen.join("\n")
        )
    });
    assert_eq!(
        status_reason(&stalled, "Stalled"),
        pair("True", "WorkersCrashing"),
        "{stalled:?}"
    );
    let crashing = s.fleet_events("WorkersCrashing").await;
    assert_eq!(crashing.len(), 1, "{crashing:#?}");
    assert_eq!(
        (crashing[0].type_.as_str(), crashing[0].series),
        ("Warning", None),
        "{crashing:#?}"
    );
}

/// `w-0` on v2, killed (SIGKILL) 2 s after each registration, restarted 1 s later.
async fn crash_loop(url: String, pool: PgPool) {
    loop {
        let before: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT registered_at FROM workers WHERE node_id = 'w-0'")
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten();
        let mut p = spawn(&url, "w-0", "v2");
        let _ = eventually(UP, || async {
            let now: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT registered_at FROM workers WHERE node_id = 'w-0'")
                    .fetch_optional(&pool)
                    .await
                    .ok()
                    .flatten();
            (now != before).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        p.signal(libc::SIGKILL);
        let _ = p.child.wait();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A worker that stops in a steady fleet is a member that is not Ready (one Warning);
/// retiring it (deleting its AmpWorker) brings the fleet back without a stall.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_holds_a_steady_fleet_back_until_it_is_retired() {
    let Some(s) = setup(
        "a_stopped_worker_holds_a_steady_fleet_back_until_it_is_retired",
        "stopped",
    )
    .await
    else {
        return;
    };
    let (pg, pool) = migrated_db().await;
    let url = pg.url();
    let _a = spawn(&url, "w-a", "v1");
    let b = spawn(&url, "w-b", "v1");
    for id in ["w-a", "w-b"] {
        wait_registered(&pool, id, UP).await;
    }
    // Up for 5 minutes when it stops: a stop, not a crash.
    backdate_registration(&pool, "w-b", 300).await;
    s.create_fleet(json!({"version": "v1", "minReadySeconds": 2, "progressDeadlineSeconds": 20}))
        .await;
    let _op = s.operator(&url, &[]);
    let ready = s.wait_fleet_ready(FLEET_WAIT).await;
    assert_eq!((ready.workers, ready.available_workers), (2, 2));

    let _ = b.terminate();
    let down = s
        .wait_fleet("left Ready", FLEET_WAIT, |st| {
            status_reason(st, "Ready").0 == "False"
        })
        .await;
    assert_eq!(
        cond(&down, "Ready").unwrap(),
        (
            "False".to_owned(),
            "WorkersUnavailable".to_owned(),
            "1 of 2 workers run v1 and are healthy; not ready: w-b (stopped)".to_owned()
        ),
        "{down:?}"
    );
    assert_eq!(
        (
            down.workers,
            down.ready_workers,
            down.available_workers,
            down.crashed_workers,
            down.retired_workers
        ),
        (2, 1, 1, 0, 0)
    );
    assert_eq!(down.state.as_deref(), Some("Progressing"));
    let unavailable = eventually(Duration::from_secs(10), || async {
        let e = s.fleet_events("WorkersUnavailable").await;
        (!e.is_empty()).then_some(e)
    })
    .await
    .expect("a WorkersUnavailable event");

    // Retired: its AmpWorker deleted; the fleet is whole again.
    s.workers
        .delete("w-b", &DeleteParams::default())
        .await
        .unwrap();
    let back = s.wait_fleet_ready(FLEET_WAIT).await;
    assert_eq!(
        cond(&back, "Ready").unwrap(),
        (
            "True".to_owned(),
            "RolloutComplete".to_owned(),
            "all 1 workers run v1 and are healthy".to_owned()
        )
    );
    assert_eq!(
        status_reason(&back, "Stalled"),
        pair("False", "RolloutComplete")
    );
    assert_eq!((back.workers, back.available_workers), (1, 1));
    assert_eq!(
        unavailable
            .iter()
            .map(|e| (e.type_.as_str(), e.series))
            .collect::<Vec<_>>(),
        [("Warning", None)],
        "{unavailable:#?}"
    );
    assert_eq!(s.fleet_events("WorkersUnavailable").await, unavailable);
    assert!(s.fleet_events("RolloutStalled").await.is_empty());
}

/// The fleet's heartbeatTimeoutSeconds is its workers' timeout (a worker's own wins);
/// workers no fleet selects take the operator's --heartbeat-timeout.
#[tokio::test(flavor = "multi_thread")]
async fn the_fleets_heartbeat_timeout_applies_and_a_workers_own_wins() {
    let Some(s) = setup(
        "the_fleets_heartbeat_timeout_applies_and_a_workers_own_wins",
        "hbtimeout",
    )
    .await
    else {
        return;
    };
    let (pg, pool) = migrated_db().await;
    let url = pg.url();
    let fleet_labels = json!({"fleet": "a"});
    s.create_worker("w-fleet", fleet_labels.clone(), json!({}))
        .await;
    s.create_worker(
        "w-own",
        fleet_labels,
        json!({"heartbeatTimeoutSeconds": 60}),
    )
    .await;
    s.create_worker("w-free", json!({}), json!({})).await;
    s.create_fleet(json!({
        "version": "v1",
        "selector": {"matchLabels": {"fleet": "a"}},
        "heartbeatTimeoutSeconds": 5
    }))
    .await;
    let procs: Vec<Proc> = ["w-fleet", "w-own", "w-free"]
        .iter()
        .map(|id| spawn(&url, id, "v1"))
        .collect();
    for id in ["w-fleet", "w-own", "w-free"] {
        wait_registered(&pool, id, UP).await;
    }
    let _op = s.operator(&url, &["--heartbeat-timeout", "7s"]);
    for id in ["w-fleet", "w-own", "w-free"] {
        s.wait_worker(id, "Ready", FLEET_WAIT).await;
    }
    assert_eq!(
        s.healthy("w-fleet").await.2,
        "heartbeat within the 5s timeout"
    );
    assert_eq!(
        s.healthy("w-own").await.2,
        "heartbeat within the 60s timeout"
    );
    assert_eq!(
        s.healthy("w-free").await.2,
        "heartbeat within the 7s timeout"
    );

    // Frozen (SIGSTOP): the lock is held, the heartbeats stop. Stale within 20 s is the
    // fleet's 5 s at work (the default 30 s could not be reached by then).
    for p in &procs[..2] {
        p.signal(libc::SIGSTOP);
    }
    s.wait_worker("w-fleet", "Stale", Duration::from_secs(20))
        .await;
    let (status, reason, message) = s.healthy("w-fleet").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "HeartbeatStale")
    );
    assert!(
        message.starts_with("no heartbeat for more than 5s (last at "),
        "{message}"
    );
    // The worker's own 60 s wins: still Ready, judged by 60 s.
    assert_eq!(s.worker_state("w-own").await.as_deref(), Some("Ready"));
    assert_eq!(
        s.healthy("w-own").await.2,
        "heartbeat within the 60s timeout"
    );
    for p in &procs[..2] {
        p.signal(libc::SIGCONT);
    }
    s.wait_worker("w-fleet", "Ready", FLEET_WAIT).await;
}

/// A rollout across three workers: one Normal RolloutStarted on the fleet, no
/// VersionMismatch on the workers, one RolloutCompleted once all are up minReadySeconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_is_one_normal_event_on_the_fleet() {
    let Some(s) = setup("a_rollout_is_one_normal_event_on_the_fleet", "rollout").await else {
        return;
    };
    let (pg, pool) = migrated_db().await;
    let url = pg.url();
    let ids = ["w-0", "w-1", "w-2"];
    let mut procs: Vec<Proc> = ids.iter().map(|id| spawn(&url, id, "v1")).collect();
    for id in ids {
        wait_registered(&pool, id, UP).await;
        // Up for 5 minutes when the rollout starts: each stop is a rolling restart.
        backdate_registration(&pool, id, 300).await;
    }
    s.create_fleet(json!({"version": "v1", "minReadySeconds": 5, "progressDeadlineSeconds": 60}))
        .await;
    let _op = s.operator(&url, &[]);
    s.wait_fleet_ready(FLEET_WAIT).await;
    let before = s.events().await;

    s.patch_fleet(json!({"version": "v2"})).await;
    for (i, id) in ids.iter().enumerate() {
        let old = std::mem::replace(&mut procs[i], spawn_later());
        let _ = old.terminate();
        procs[i] = spawn(&url, id, "v2");
        wait_registered_version(&pool, id, "v2").await;
    }
    let done = s
        .wait_fleet("Ready on v2", FLEET_WAIT, |st| {
            st.observed_generation == Some(2) && status_reason(st, "Ready").0 == "True"
        })
        .await;
    assert_eq!(
        cond(&done, "Ready").unwrap(),
        (
            "True".to_owned(),
            "RolloutComplete".to_owned(),
            "all 3 workers run v2 and are healthy".to_owned()
        )
    );
    assert_eq!(
        (done.workers, done.updated_workers, done.available_workers),
        (3, 3, 3)
    );
    // Available means up minReadySeconds (DB clock): every worker was, when Ready.
    let youngest: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - max(registered_at))::float8 FROM workers",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // Status timestamps are whole seconds (registeredAt truncated), as a Deployment's.
    assert!(youngest >= 4.0, "Ready with a worker up {youngest}s");

    let completed = eventually(Duration::from_secs(10), || async {
        let e: Vec<Ev> = s
            .events()
            .await
            .into_iter()
            .filter(|e| !before.contains(e) && e.reason == "RolloutCompleted")
            .collect();
        (!e.is_empty()).then_some(e)
    })
    .await
    .expect("a RolloutCompleted event");
    let new: Vec<Ev> = s
        .events()
        .await
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    let on_fleet = |reason: &str| -> Vec<(String, Option<i32>)> {
        new.iter()
            .filter(|e| e.kind == "AmpWorkerFleet" && e.reason == reason)
            .map(|e| (e.type_.clone(), e.series))
            .collect()
    };
    assert_eq!(
        on_fleet("RolloutStarted"),
        [("Normal".to_owned(), None)],
        "{new:#?}"
    );
    assert_eq!(completed.len(), 1, "{completed:#?}");
    assert_eq!(
        on_fleet("RolloutCompleted"),
        [("Normal".to_owned(), None)],
        "{new:#?}"
    );
    let mismatch: Vec<Ev> = s
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason == "VersionMismatch")
        .collect();
    assert!(mismatch.is_empty(), "{mismatch:#?}");
    let warnings: Vec<&Ev> = new.iter().filter(|e| e.type_ == "Warning").collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// A placeholder process (exits at once) while a worker is swapped.
fn spawn_later() -> Proc {
    Proc::spawn("placeholder", &mut std::process::Command::new("true"))
}

async fn wait_registered_version(pool: &PgPool, node: &str, version: &str) {
    eventually(UP, || async {
        let v: Option<String> =
            sqlx::query_scalar("SELECT info->>'version' FROM workers WHERE node_id = $1")
                .bind(node)
                .fetch_optional(pool)
                .await
                .ok()
                .flatten();
        (v.as_deref() == Some(version)).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{node} did not register {version}"));
}
