//! Pods and remediation through the whole plan: placement from the live Pod, the
//! fleet's `status.pods`, and which hung workers' Pods the cycle deletes.

use super::*;
use crate::metadata_db::{LockState, Placement, WorkerInfo};
use crate::operator::crd::{
    AmpWorkerFleetSpec, AmpWorkerSpec, NODE_ID_ANNOTATION, RemediationMode, RemediationSpec,
};
use crate::operator::pods::WorkerPod;
use crate::operator::remediation::{History, SkipReason};
use chrono::TimeZone;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

/// A running worker's row, last heartbeat at `hb`; it reports placement on `reported`.
fn row(node: &str, hb: i64) -> SnapshotRow {
    SnapshotRow {
        node_id: node.into(),
        info: Arc::new(WorkerInfo {
            version: Some("v1".into()),
            placement: Some(Placement {
                pod: Some("reported-pod".into()),
                node: Some("reported-node".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        created_at: t(-5000),
        registered_at: t(-5000),
        heartbeat_at: t(hb),
        lock: LockState::Held,
    }
}

fn worker(node: &str) -> Arc<CachedWorker> {
    let mut w = AmpWorker::new(
        node,
        AmpWorkerSpec {
            job_pickup_timeout_seconds: None,
            node_id: node.into(),
            expected_version: None,
            heartbeat_timeout_seconds: Some(10),
        },
    );
    w.metadata.uid = Some(format!("uid-{node}"));
    w.metadata.generation = Some(1);
    Arc::new(w.into())
}

fn fleet(mode: Option<RemediationMode>, max_unhealthy: Option<IntOrString>) -> Arc<AmpWorkerFleet> {
    let mut f = AmpWorkerFleet::new(
        "amp",
        AmpWorkerFleetSpec {
            version: "v1".into(),
            selector: None,
            min_ready: None,
            progress_deadline_seconds: None,
            pod_selector: Some(LabelSelector {
                match_labels: Some([("app".to_owned(), "amp".to_owned())].into()),
                ..Default::default()
            }),
            remediation: mode.map(|mode| RemediationSpec {
                mode,
                restart_stale_after_seconds: Some(60),
                max_unhealthy,
                min_interval_seconds: Some(30),
            }),
            ..Default::default()
        },
    );
    f.metadata.uid = Some("uid-amp".into());
    f.metadata.namespace = Some("ns".into());
    f.metadata.generation = Some(1);
    Arc::new(f)
}

/// A selected Pod of a StatefulSet, created long ago, on node-a.
fn pod(name: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some(format!("pod-uid-{name}"));
    p.metadata.labels = Some([("app".to_owned(), "amp".to_owned())].into());
    p.metadata.creation_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(t(-5000).timestamp()).unwrap(),
    ));
    p.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: "amp-worker".into(),
        uid: "sts-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    p.spec = Some(PodSpec {
        node_name: Some("node-a".into()),
        ..Default::default()
    });
    p.status = Some(PodStatus {
        pod_ip: Some("10.0.0.9".into()),
        ..Default::default()
    });
    p
}

struct World {
    db: DbView,
    rows: Vec<SnapshotRow>,
    workers: Vec<Arc<CachedWorker>>,
    fleets: Vec<Arc<AmpWorkerFleet>>,
    pods: Vec<Arc<WorkerPod>>,
    history: RemediationHistory,
    recovery_from: Option<DateTime<Utc>>,
}

impl World {
    fn new(fleet: Arc<AmpWorkerFleet>) -> Self {
        Self {
            db: DbView::Available {
                db_now: t(0),
                recovered_at: None,
            },
            rows: Vec::new(),
            workers: Vec::new(),
            fleets: vec![fleet],
            pods: Vec::new(),
            history: RemediationHistory::default(),
            recovery_from: None,
        }
    }

    /// A worker with its row (heartbeat at `hb`) and, when `p` is given, its Pod.
    fn with(mut self, node: &str, hb: i64, p: Option<Pod>) -> Self {
        self.rows.push(row(node, hb));
        self.workers.push(worker(node));
        self.pods.extend(p.map(|p| Arc::new(p.into())));
        self
    }

    fn plan(&self) -> Plan {
        let written = Written::default();
        let input = PlanInput {
            db: &self.db,
            rows: &self.rows,
            workers: &self.workers,
            fleets: &self.fleets,
            written: &written,
            recovery_from: self.recovery_from,
            now: t(0),
            refresh_allowance: usize::MAX,
            jobs: &JobsView::Absent,
        };
        let pods = PodInput {
            pods: &self.pods,
            namespace: "ns",
            history: self.history.clone(),
        };
        plan_with_pods(&input, &pods, &config(), &mut Judgements::default())
    }
}

fn config() -> PlanConfig {
    PlanConfig {
        status_refresh: chrono::Duration::seconds(60),
        refresh_budget: 20.0,
        gc_after: None,
        gc_stopped_after: None,
        heartbeat_timeout_secs: 30,
    }
}

fn status_of<'p>(p: &'p Plan, name: &str) -> &'p AmpWorkerStatus {
    &p.worker_writes
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no write for {name}"))
        .status
}

fn fleet_status(p: &Plan) -> &AmpWorkerFleetStatus {
    &p.fleet_writes[0].status
}

fn skips(p: &Plan) -> Vec<(&str, SkipReason)> {
    p.remediation_skips
        .iter()
        .map(|(n, r)| (n.as_str(), *r))
        .collect()
}

#[test]
fn the_live_pod_wins_over_the_reported_placement_and_says_so() {
    let mut annotated = pod("odd-pod-name");
    annotated.metadata.annotations =
        Some([(NODE_ID_ANNOTATION.to_owned(), "GPU_Worker.A1".to_owned())].into());
    let p = World::new(fleet(None, None))
        .with("worker-0", 0, Some(pod("worker-0")))
        .with("GPU_Worker.A1", 0, Some(annotated))
        .with("worker-2", 0, None)
        .plan();
    let placement = |n| serde_json::to_value(status_of(&p, n).placement.as_ref().unwrap()).unwrap();
    assert_eq!(
        placement("worker-0"),
        serde_json::json!({"pod": "worker-0", "namespace": "ns", "node": "node-a",
            "podIp": "10.0.0.9", "source": "Pod"})
    );
    assert_eq!(placement("GPU_Worker.A1")["pod"], "odd-pod-name");
    // No Pod: what the worker reported, said to be so.
    assert_eq!(
        placement("worker-2"),
        serde_json::json!({"pod": "reported-pod", "node": "reported-node", "source": "Worker"})
    );
}

#[test]
fn the_fleet_counts_workers_without_a_pod_and_pods_without_a_worker() {
    let p = World::new(fleet(None, None))
        .with("worker-0", 0, Some(pod("worker-0")))
        .with("worker-1", 0, None)
        .with("worker-2", 0, None);
    let mut w = p;
    w.pods.push(Arc::new(pod("worker-9").into()));
    let p = w.plan();
    assert_eq!(
        serde_json::to_value(fleet_status(&p).pods.as_ref().unwrap()).unwrap(),
        serde_json::json!({"selected": 2, "linked": 1, "workersWithoutPod": 2,
            "podsWithoutWorker": 1, "ambiguous": 0, "reason": "WorkersWithoutPod",
            "message": "2 workers without a selected Pod: worker-1, worker-2"})
    );
    // Not an error: the fleet's own conditions do not mention it.
    assert!(
        fleet_status(&p)
            .conditions
            .iter()
            .all(|c| c.type_ != REMEDIATION_ALLOWED)
    );
}

/// What counts as a Pod without a worker is the worker's row, not its AmpWorker: a Pod
/// linked to an AmpWorker whose node id has no row is one; a Pod whose node id has a
/// row the operator made no AmpWorker for is not.
#[test]
fn a_pod_without_a_worker_is_one_whose_node_id_has_no_row() {
    let mut w = World::new(fleet(None, None)).with("worker-0", 0, Some(pod("worker-0")));
    // An AmpWorker a user made ahead of its worker: linked to its Pod, but no row.
    w.workers.push(worker("worker-5"));
    w.pods.push(Arc::new(pod("worker-5").into()));
    // A stopped worker's row and its Pod: never discovered (no AmpWorker).
    w.rows.push(SnapshotRow {
        lock: LockState::Free,
        ..row("worker-7", 0)
    });
    w.pods.push(Arc::new(pod("worker-7").into()));
    let p = w.plan();
    assert_eq!(
        serde_json::to_value(fleet_status(&p).pods.as_ref().unwrap()).unwrap(),
        serde_json::json!({"selected": 3, "linked": 2, "workersWithoutPod": 0,
            "podsWithoutWorker": 1, "ambiguous": 0, "reason": "PodsWithoutWorker",
            "message": "1 selected Pods without a worker row: worker-5"})
    );
}

#[test]
fn a_fleet_without_pod_selector_reads_no_pods() {
    let mut f = (*fleet(None, None)).clone();
    f.spec.pod_selector = None;
    let p = World::new(Arc::new(f))
        .with("worker-0", 0, Some(pod("worker-0")))
        .plan();
    assert_eq!(
        status_of(&p, "worker-0")
            .placement
            .as_ref()
            .unwrap()
            .source
            .as_deref(),
        Some("Worker")
    );
    assert_eq!(fleet_status(&p).pods, None);
}

#[test]
fn a_worker_stale_past_the_delay_has_its_pod_deleted() {
    // Timeout 10 s, delay 60 s: Stale since -90 s.
    let p = World::new(fleet(Some(RemediationMode::Restart), None))
        .with("worker-0", -100, Some(pod("worker-0")))
        .with("worker-1", 0, Some(pod("worker-1")))
        .plan();
    assert_eq!(p.remediations.len(), 1, "{:?}", p.remediations);
    let a = &p.remediations[0];
    assert_eq!(
        (
            a.worker.as_str(),
            a.pod.as_str(),
            a.pod_uid.as_deref(),
            a.dry_run
        ),
        ("worker-0", "worker-0", Some("pod-uid-worker-0"), false)
    );
    assert!(a.note.contains("since 2026-11-22T09:58:30Z"), "{}", a.note);
    assert!(a.note.contains("StatefulSet/amp-worker"), "{}", a.note);
    let allowed = fleet_status(&p)
        .conditions
        .iter()
        .find(|c| c.type_ == REMEDIATION_ALLOWED)
        .unwrap();
    assert_eq!(
        (allowed.status.as_str(), allowed.reason.as_str()),
        ("True", "RemediationAllowed")
    );
    // Not yet due: Stale for 59 s only.
    let p = World::new(fleet(Some(RemediationMode::Restart), None))
        .with("worker-0", -69, Some(pod("worker-0")))
        .plan();
    assert!(p.remediations.is_empty() && p.remediation_skips.is_empty());
}

#[test]
fn dry_run_plans_the_same_action_marked_dry() {
    let p = World::new(fleet(Some(RemediationMode::DryRun), None))
        .with("worker-0", -100, Some(pod("worker-0")))
        .plan();
    assert_eq!(p.remediations.len(), 1);
    assert!(p.remediations[0].dry_run);
}

#[test]
fn remediation_off_plans_nothing_and_shows_no_condition() {
    for mode in [None, Some(RemediationMode::Off)] {
        let p = World::new(fleet(mode, None))
            .with("worker-0", -100, Some(pod("worker-0")))
            .plan();
        assert!(p.remediations.is_empty() && p.remediation_skips.is_empty());
        assert_eq!(fleet_status(&p).remediation, None);
    }
}

#[test]
fn more_stale_than_max_unhealthy_pauses_with_one_event() {
    let w = World::new(fleet(Some(RemediationMode::Restart), None))
        .with("worker-0", -100, Some(pod("worker-0")))
        .with("worker-1", -100, Some(pod("worker-1")))
        .with("worker-2", 0, Some(pod("worker-2")));
    let p = w.plan();
    assert!(p.remediations.is_empty());
    assert_eq!(
        skips(&p),
        [
            ("worker-0", SkipReason::TooManyUnhealthy),
            ("worker-1", SkipReason::TooManyUnhealthy)
        ]
    );
    let write = &p.fleet_writes[0];
    let paused = write
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == REMEDIATION_ALLOWED)
        .unwrap();
    assert_eq!(
        (paused.status.as_str(), paused.reason.as_str()),
        ("False", "TooManyUnhealthy")
    );
    assert_eq!(
        paused.message,
        "2 members are Stale, more than maxUnhealthy (1): something systemic is wrong, no worker is restarted until fewer are"
    );
    let events: Vec<&str> = write.events.iter().map(|e| e.reason).collect();
    assert!(events.contains(&REMEDIATION_PAUSED_REASON), "{events:?}");
    assert_eq!(p.remediation_paused, ["amp"]);
    assert_eq!(
        write.status.remediation,
        Some(crate::operator::crd::FleetRemediation {
            unhealthy: 2,
            max_unhealthy: 1
        })
    );
    // Stored: said once.
    let mut stored = (*w.fleets[0]).clone();
    stored.status = Some(write.status.clone());
    let w = World {
        fleets: vec![Arc::new(stored)],
        ..w
    };
    let p = w.plan();
    assert!(
        p.fleet_writes.iter().all(|f| f.events.is_empty()),
        "{:?}",
        p.fleet_writes
    );
    // A percentage: 2 of 3 members is within 70 %.
    let w = World {
        fleets: vec![fleet(
            Some(RemediationMode::Restart),
            Some(IntOrString::String("70%".into())),
        )],
        ..w
    };
    assert_eq!(w.plan().remediations.len(), 1);
}

#[test]
fn nothing_while_the_db_is_down_or_just_back() {
    let mut w = World::new(fleet(Some(RemediationMode::Restart), None)).with(
        "worker-0",
        -100,
        Some(pod("worker-0")),
    );
    w.db = DbView::Unavailable { cause: None };
    w.rows.clear();
    let p = w.plan();
    assert!(p.remediations.is_empty());
    let allowed = fleet_status(&p)
        .conditions
        .iter()
        .find(|c| c.type_ == REMEDIATION_ALLOWED)
        .unwrap();
    assert_eq!(
        (allowed.status.as_str(), allowed.reason.as_str()),
        ("Unknown", "MetadataDbUnavailable")
    );
    // Back 30 s ago, after an outage that began before the worker went quiet.
    let mut w = World::new(fleet(Some(RemediationMode::Restart), None)).with(
        "worker-0",
        -100,
        Some(pod("worker-0")),
    );
    w.db = DbView::Available {
        db_now: t(0),
        recovered_at: Some(t(-30)),
    };
    w.recovery_from = Some(t(-200));
    let p = w.plan();
    assert!(p.remediations.is_empty());
    assert_eq!(skips(&p), []);
}

#[test]
fn after_an_outage_a_worker_without_its_lock_is_neither_hung_nor_counted() {
    // Back 100 s ago; worker-0 heartbeat and froze since, worker-1 never reconnected
    // (judged Stale from the return, but its lock is free).
    let mut w = World::new(fleet(Some(RemediationMode::Restart), None))
        .with("worker-0", -90, Some(pod("worker-0")))
        .with("worker-1", -150, Some(pod("worker-1")));
    w.rows[1].lock = LockState::Free;
    w.db = DbView::Available {
        db_now: t(0),
        recovered_at: Some(t(-100)),
    };
    w.recovery_from = Some(t(-160));
    let p = w.plan();
    assert_eq!(status_of(&p, "worker-1").state.as_deref(), Some("Stale"));
    let acted: Vec<&str> = p.remediations.iter().map(|a| a.node_id.as_str()).collect();
    assert_eq!(acted, ["worker-0"]);
    assert_eq!(fleet_status(&p).remediation.as_ref().unwrap().unhealthy, 1);
}

#[test]
fn a_bare_pod_or_a_pod_claimed_twice_is_left_alone() {
    let mut bare = pod("worker-0");
    bare.metadata.owner_references = None;
    let p = World::new(fleet(Some(RemediationMode::Restart), None))
        .with("worker-0", -100, Some(bare))
        .plan();
    assert!(p.remediations.is_empty());
    assert_eq!(skips(&p), [("worker-0", SkipReason::NoController)]);

    let mut twin = pod("twin");
    twin.metadata.annotations =
        Some([(NODE_ID_ANNOTATION.to_owned(), "worker-0".to_owned())].into());
    let mut w = World::new(fleet(Some(RemediationMode::Restart), None)).with(
        "worker-0",
        -100,
        Some(pod("worker-0")),
    );
    w.pods.push(Arc::new(twin.into()));
    let p = w.plan();
    assert!(p.remediations.is_empty());
    assert_eq!(skips(&p), [("worker-0", SkipReason::AmbiguousPod)]);
    assert_eq!(
        fleet_status(&p).pods.as_ref().unwrap().reason,
        "AmbiguousPods"
    );
}

#[test]
fn one_restart_per_fleet_per_interval_the_longest_hung_first() {
    let w = World::new(fleet(
        Some(RemediationMode::Restart),
        Some(IntOrString::Int(5)),
    ))
    .with("worker-a", -100, Some(pod("worker-a")))
    .with("worker-b", -200, Some(pod("worker-b")));
    let p = w.plan();
    let acted: Vec<&str> = p.remediations.iter().map(|a| a.node_id.as_str()).collect();
    assert_eq!(acted, ["worker-b"]);
    assert_eq!(skips(&p), [("worker-a", SkipReason::FleetRateLimit)]);
}

#[test]
fn a_restart_is_recorded_and_backs_the_worker_off() {
    let mut w = World::new(fleet(Some(RemediationMode::Restart), None)).with(
        "worker-0",
        -100,
        Some(pod("worker-0")),
    );
    let last = History {
        last: t(-30),
        count: 1,
    };
    w.history.workers.insert(
        "worker-0".into(),
        WorkerRemediations {
            attempts: last,
            restarts: Some(last),
        },
    );
    let p = w.plan();
    assert!(p.remediations.is_empty());
    assert_eq!(skips(&p), [("worker-0", SkipReason::BackOff)]);
    let s = status_of(&p, "worker-0");
    assert_eq!(
        (s.last_remediation_time, s.remediation_count),
        (Some(t(-30)), Some(1))
    );
    // Once shown, judged again with a memo, nothing changes.
    let mut shown = (*w.workers[0]).clone();
    shown.status = Some(s.clone().into());
    w.workers = vec![Arc::new(shown)];
    let p = w.plan();
    assert!(p.worker_writes.is_empty(), "{:?}", p.worker_writes);
}

#[test]
fn a_pod_that_moves_or_goes_is_judged_again_even_with_a_memo() {
    let w = World::new(fleet(None, None)).with("worker-0", 0, Some(pod("worker-0")));
    let first = w.plan();
    let mut shown = (*w.workers[0]).clone();
    shown.status = Some(status_of(&first, "worker-0").clone().into());
    let mut w = World {
        workers: vec![Arc::new(shown)],
        ..w
    };
    let written = Written::default();
    let mut memos = Judgements::default();
    let run = |w: &World, memos: &mut Judgements| {
        let input = PlanInput {
            db: &w.db,
            rows: &w.rows,
            workers: &w.workers,
            fleets: &w.fleets,
            written: &written,
            recovery_from: None,
            now: t(0),
            refresh_allowance: usize::MAX,
            jobs: &JobsView::Absent,
        };
        let pods = PodInput {
            pods: &w.pods,
            namespace: "ns",
            history: RemediationHistory::default(),
        };
        plan_with_pods(&input, &pods, &config(), memos)
    };
    assert!(run(&w, &mut memos).worker_writes.is_empty());
    assert!(run(&w, &mut memos).worker_writes.is_empty());
    let mut moved = pod("worker-0");
    moved.spec.as_mut().unwrap().node_name = Some("node-b".into());
    w.pods = vec![Arc::new(moved.into())];
    let p = run(&w, &mut memos);
    assert_eq!(
        status_of(&p, "worker-0")
            .placement
            .as_ref()
            .unwrap()
            .node
            .as_deref(),
        Some("node-b")
    );
    w.pods.clear();
    let p = run(&w, &mut memos);
    assert_eq!(
        status_of(&p, "worker-0")
            .placement
            .as_ref()
            .unwrap()
            .source
            .as_deref(),
        Some("Worker")
    );
}
