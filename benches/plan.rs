//! The planner alone (no API server, no DB): the operator's steady cycle at N workers
//! (default 10,000), every one Healthy, heartbeating every second, with Amp's jobs (a
//! fifth of the workers with unfinished jobs) and, with AMP_BENCH_PODS=1, a Pod per
//! worker selected by the fleet. The plan's writes land on the objects as the watch
//! would show them (new `Arc`s), so the memo behaves as in the operator. Prints the CPU
//! time of a steady cycle: the part of the operator's cycle that is ours alone, to
//! iterate on; the operator bench (`benches/operator.rs`) gives the whole figure. Then
//! the heap each cache holds per worker (a counting allocator), for the RSS figure.
//!
//!   cargo bench --bench plan
//!   AMP_BENCH_WORKERS=50000 AMP_BENCH_PODS=1 cargo bench --bench plan

mod support;
use support::env_or;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes, so the bench can say what each cache of the operator holds
/// per worker (the operator's RSS is these plus the allocator's own slack and the code).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes freed by dropping `what`.
fn held_by<T>(what: T) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    drop(what);
    before.saturating_sub(LIVE.load(Ordering::Relaxed))
}

use amp_operator::metadata_db::{
    JobSchema, JobsSnapshot, LockState, NodeJobs, SnapshotRow, WorkerInfo,
};
use amp_operator::operator::cache::{CachedWorker, WorkerSharing};
use amp_operator::operator::crd::{AmpWorkerFleet, AmpWorkerStatus};
use amp_operator::operator::plan::{
    Judgements, Plan, PlanConfig, PlanInput, PodInput, Written, discovered_worker, plan_with_pods,
};
use amp_operator::operator::pods::{PodSharing, WatchedPod, WorkerPod};
use amp_operator::operator::status::DbView;
use amp_operator::operator::status::jobs::{JobsIndex, JobsView};
use chrono::{DateTime, TimeZone, Utc};

const EXPECTED: &str = "v1.1.0";

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn node_id(i: usize) -> String {
    format!("worker-{i:05}")
}

fn rows(n: usize, now: i64, infos: &[Arc<WorkerInfo>]) -> Vec<SnapshotRow> {
    (0..n)
        .map(|i| SnapshotRow {
            node_id: node_id(i),
            info: infos[i].clone(),
            created_at: t(-10_000),
            registered_at: t(-10_000),
            heartbeat_at: t(now),
            lock: LockState::Held,
        })
        .collect()
}

fn info(i: usize) -> WorkerInfo {
    serde_json::from_value::<serde_json::Value>(serde_json::json!({
        "version": if i.is_multiple_of(3) { "v1.0.0" } else { EXPECTED },
        "commit_sha": "8b065bde", "commit_timestamp": "2025-10-30T09:00:00Z",
        "build_date": "2025-10-30"
    }))
    .map(|v| WorkerInfo::from_json(&v))
    .expect("info")
}

fn jobs(n: usize, now: i64) -> JobsView {
    let nodes = (0..n)
        .filter(|i| i.is_multiple_of(5))
        .map(|i| NodeJobs {
            node_id: node_id(i),
            registered: true,
            running: 2,
            ..NodeJobs::default()
        })
        .collect();
    JobsView::Known(Arc::new(JobsIndex::new(JobsSnapshot {
        db_now: t(now),
        schema: JobSchema::Nightly,
        nodes,
        unknown_statuses: Vec::new(),
    })))
}

/// A StatefulSet's Pods as the operator's watch caches them (labels and controller
/// shared).
fn pods(n: usize, ns: &str) -> Vec<Arc<WorkerPod>> {
    let mut sharing = PodSharing::default();
    (0..n)
        .map(|i| {
            let p: WatchedPod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": node_id(i), "namespace": ns, "uid": format!("pod-uid-{i}"),
                             "labels": {"app": "amp-worker"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                  "name": "amp-worker", "uid": "sts", "controller": true}]},
                "spec": {"containers": [{"name": "ampd", "image": "amp:bench"}]},
                "status": {"phase": "Pending"}
            }))
            .expect("pod");
            Arc::new(WorkerPod::keep(p, &mut sharing))
        })
        .collect()
}

fn fleet(with_pods: bool) -> Arc<AmpWorkerFleet> {
    let mut spec = serde_json::json!({"version": EXPECTED});
    if with_pods {
        spec["podSelector"] = serde_json::json!({"matchLabels": {"app": "amp-worker"}});
    }
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet",
            "metadata": {"name": "amp", "namespace": "bench", "uid": "fleet-uid", "generation": 1},
            "spec": spec
        }))
        .expect("fleet"),
    )
}

/// The objects as the watch shows them once `plan` landed: creates get a uid and their
/// status, writes and refreshes a new version; labels are shared as the watch shares them.
fn land(
    objects: &mut Vec<Arc<CachedWorker>>,
    sharing: &mut WorkerSharing,
    index: &mut foldhash::HashMap<String, usize>,
    plan: &Plan,
) {
    let mut put = |name: &str, status: &AmpWorkerStatus| {
        if let Some(&i) = index.get(name) {
            let mut o = (*objects[i]).clone();
            o.status = Some(sharing.status(status.clone()));
            objects[i] = Arc::new(o);
        }
    };
    for w in &plan.worker_writes {
        put(&w.name, &w.status);
    }
    for r in &plan.refreshes {
        put(&r.name, &r.status);
    }
    for (obj, status, _) in &plan.creates {
        let mut o = obj.clone();
        let name = o.metadata.name.clone().unwrap_or_default();
        o.metadata.uid = Some(format!("uid-{name}"));
        o.metadata.namespace = Some("bench".into());
        o.metadata.generation = Some(1);
        o.status = Some(status.clone());
        index.insert(name, objects.len());
        objects.push(Arc::new(CachedWorker::keep(o, sharing)));
    }
}

fn main() {
    let n: usize = env_or("AMP_BENCH_WORKERS", 10_000);
    let cycles: usize = env_or("AMP_BENCH_CYCLES", 200);
    let with_pods = env_or("AMP_BENCH_PODS", 0u8) == 1;
    let config = PlanConfig {
        status_refresh: chrono::Duration::seconds(60),
        refresh_budget: 20.0,
        gc_after: Some(chrono::Duration::hours(24)),
        gc_stopped_after: Some(chrono::Duration::minutes(15)),
        heartbeat_timeout_secs: 30,
    };
    // Equal infos are one allocation, as the snapshot's cache keeps them.
    let mut sharing = amp_operator::shared::Shared::default();
    let infos: Vec<Arc<WorkerInfo>> = (0..n).map(|i| sharing.share(info(i))).collect();
    let fleets = vec![fleet(with_pods)];
    let pod_list = if with_pods {
        pods(n, "bench")
    } else {
        Vec::new()
    };
    let written = Written::default();
    let mut objects: Vec<Arc<CachedWorker>> = Vec::new();
    let mut sharing = WorkerSharing::default();
    let mut index = foldhash::HashMap::default();
    let mut memos = Judgements::default();
    let _ = discovered_worker; // discovery comes from the planner itself
    let (mut warm, mut steady_ns, mut steady) = (0usize, 0u128, 0usize);
    let mut second = 0i64;
    while steady < cycles {
        second += 1;
        let db = DbView::Available {
            db_now: t(second),
            recovered_at: None,
        };
        let snapshot = rows(n, second, &infos);
        let jobs = jobs(n, second - second % 10);
        let input = PlanInput {
            db: &db,
            rows: &snapshot,
            workers: &objects,
            fleets: &fleets,
            written: &written,
            recovery_from: None,
            now: t(second),
            refresh_allowance: 20,
            jobs: &jobs,
        };
        let pod_input = PodInput {
            pods: &pod_list,
            namespace: "bench",
            ..PodInput::default()
        };
        let started = Instant::now();
        let plan = plan_with_pods(&input, &pod_input, &config, &mut memos);
        let took = started.elapsed();
        let settled =
            plan.creates.is_empty() && plan.worker_writes.is_empty() && objects.len() == n;
        if settled && warm >= 70 {
            steady_ns += took.as_nanos();
            steady += 1;
        } else if settled {
            warm += 1;
        }
        land(&mut objects, &mut sharing, &mut index, &plan);
    }
    println!(
        "plan: {n} workers{}, {steady} steady cycles: {:.2} ms a cycle (after {second} simulated seconds)",
        if with_pods { " and Pods" } else { "" },
        steady_ns as f64 / steady as f64 / 1e6
    );
    print_memory(n, objects, memos, pod_list, infos);
}

/// What each cache holds, per worker, once steady (dropped in an order that frees each
/// one's own share: the memo holds objects and infos, so it goes first).
fn print_memory(
    n: usize,
    objects: Vec<Arc<CachedWorker>>,
    memos: Judgements,
    pods: Vec<Arc<WorkerPod>>,
    infos: Vec<Arc<WorkerInfo>>,
) {
    let per = |bytes: usize| bytes as f64 / n as f64;
    // The parts of an object, each as a copy (the copy's heap alone is measured).
    let status = held_by(objects.iter().map(|o| o.status.clone()).collect::<Vec<_>>());
    let metadata = held_by(
        objects
            .iter()
            .map(|o| o.metadata.clone())
            .collect::<Vec<_>>(),
    );
    let memo = held_by(memos);
    let objects = held_by(objects);
    let pods = held_by(pods);
    let infos = held_by(infos);
    println!(
        "heap per worker: AmpWorker objects {:.0} B (metadata {:.0} B, status {:.0} B), memo and Pod indexes {:.0} B, Pods {:.0} B, infos {:.0} B",
        per(objects),
        per(metadata),
        per(status),
        per(memo),
        per(pods),
        per(infos)
    );
}
