//! One poll cycle, decided without side effects: given the DB snapshot, the AmpWorkers
//! and fleets in the namespace and what was last written, which objects to create,
//! which statuses to apply, which events to publish and what to delete.

//!
//! Each step is its own module with its own tests: [`discovery`], [`gc`] (garbage
//! collection), [`judge`] (per-worker judgement), [`refresh`] (refresh scheduling),
//! [`fleets`] (fleet planning), [`tally`] (what a cycle counts per fleet and in total);
//! [`plan_with`] composes them.

mod budget;
mod discovery;
mod fleets;
mod gc;
mod judge;
mod object_facts;
mod pods;
mod refresh;
mod remediate;
mod stored;
mod tally;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::cache::CachedWorker;
use super::crd::{AmpWorker, AmpWorkerFleet, AmpWorkerFleetStatus, AmpWorkerStatus};
use super::fleet_status::Member;
use super::status::jobs::{FleetJobsTally, JobFacts, JobsView};
use super::status::{ConditionStatus, DbView, StatusEvent, heartbeat_timeout};
use crate::metadata_db::{LockState, SnapshotRow};

pub use budget::RefreshBudget;
pub use discovery::discovered_worker;
pub use judge::Judgements;
use judge::{CONDITION_TYPES, Subject, Verdict};
use refresh::Pending;
pub use remediate::{
    DRY_RUN_REASON, REMEDIATION_ALLOWED, REMEDIATION_PAUSED_REASON, RESTARTED_REASON,
    RemediationAction, RemediationHistory, RemediationSkip, WorkerRemediations,
};
use stored::Stored;
use tally::CycleTally;

#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// `heartbeatAt` alone is rewritten at most this often (the floor of the refresh
    /// interval; the budget stretches it for large fleets).
    pub status_refresh: chrono::Duration,
    /// Heartbeat-only refreshes per second, shared by the whole fleet: the API load of
    /// a steady fleet is bounded by this, not by the fleet's size.
    pub refresh_budget: f64,
    /// Discovered AmpWorkers whose worker is gone longer than this are deleted.
    pub gc_after: Option<chrono::Duration>,
    /// Discovered AmpWorkers whose worker stopped (no process holds its lock) longer
    /// than this ago are deleted: a retired worker's object goes, its row stays.
    pub gc_stopped_after: Option<chrono::Duration>,
    /// The heartbeat timeout of workers whose AmpWorker and fleet set none.
    pub heartbeat_timeout_secs: i64,
}

/// What the operator last wrote, by object uid: the watch may lag behind our own
/// writes, and comparing against a stale copy would write (and fire events) twice.
#[derive(Debug, Default)]
pub struct Written {
    pub workers: foldhash::HashMap<String, AmpWorkerStatus>,
    pub fleets: HashMap<String, AmpWorkerFleetStatus>,
}

impl Written {
    /// The worker statuses room is kept for once the watch caught up.
    const ROOM: usize = 64;

    /// After a plan: forgets every worker status the cache already shows, or whose
    /// object is gone (the plan kept the uids still ahead of the watch: this map is for
    /// the window in which the watch lags behind our writes, and a second copy of every
    /// status for the whole fleet is memory for nothing), and the fleets that are gone.
    pub fn forget_shown(&mut self, plan: &Plan, fleets: &[Arc<AmpWorkerFleet>]) {
        if !self.workers.is_empty() {
            let ahead: foldhash::HashSet<&str> =
                plan.written_ahead.iter().map(String::as_str).collect();
            self.workers.retain(|uid, _| ahead.contains(uid.as_str()));
            // A discovery leaves room for thousands of statuses (half a KiB a slot);
            // steady state holds a cycle's refreshes.
            let keep = self.workers.len().max(Self::ROOM);
            if self.workers.capacity() > 2 * keep {
                self.workers.shrink_to(keep);
            }
        }
        let live: std::collections::HashSet<&str> = fleets
            .iter()
            .filter_map(|f| f.metadata.uid.as_deref())
            .collect();
        self.fleets.retain(|uid, _| live.contains(uid.as_str()));
    }
}

pub struct PlanInput<'a> {
    pub db: &'a DbView,
    /// Rows of the snapshot (empty when the DB is unavailable).
    pub rows: &'a [SnapshotRow],
    pub workers: &'a [Arc<CachedWorker>],
    pub fleets: &'a [Arc<AmpWorkerFleet>],
    pub written: &'a Written,
    /// DB clock of the last good read before the latest outage, while `db` carries a
    /// `recovered_at`: workers already stale before the outage get no recovery grace.
    pub recovery_from: Option<DateTime<Utc>>,
    /// Wall clock (condition transition times, fleet deadlines).
    pub now: DateTime<Utc>,
    /// Heartbeat-only refreshes this cycle may write (from [`RefreshBudget`]).
    pub refresh_allowance: usize,
    /// The operator's latest jobs read (read at its own cadence, not every cycle).
    pub jobs: &'a JobsView,
}

/// What the cycle knows of Pods (for fleets with a podSelector) and of past
/// remediations; empty for a cycle that reads no Pods.
#[derive(Default)]
pub struct PodInput<'a> {
    /// The namespace's Pods (what the operator keeps of them: `operator::pods::WorkerPod`).
    pub pods: &'a [Arc<super::pods::WorkerPod>],
    /// The operator's namespace: a fleet's Pods must be in the fleet's.
    pub namespace: &'a str,
    pub history: RemediationHistory,
}

/// A heartbeat-only refresh: only `heartbeatAt` differs from what is stored, so only
/// that field needs to reach the API server. `status` is the whole status it results
/// in, remembered as written once the patch landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    pub name: String,
    pub uid: Option<String>,
    pub heartbeat_at: String,
    pub status: AmpWorkerStatus,
    /// The stored status only lacks fields this operator writes (`status::only_fills`,
    /// after an upgrade): the whole `status` is applied, within the same budget.
    pub fill: bool,
}

/// How far behind heartbeat-only refreshes are, for the metrics and the docs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RefreshStats {
    /// Refreshes due this cycle (written or not).
    pub due: usize,
    /// Due refreshes left for later cycles by the budget.
    pub deferred: usize,
    /// Age on the DB clock of the oldest `heartbeatAt` shown by a heartbeating worker
    /// after this cycle's writes: how old LAST HEARTBEAT may be right now.
    pub oldest_shown_age_secs: f64,
    /// Expected refresh interval per worker: `--status-refresh`, or the time the budget
    /// needs to go round every heartbeating worker once, whichever is longer.
    pub interval_secs: f64,
}

/// A status to apply to the named object (an AmpWorker's or a fleet's), and the events
/// to publish once it landed.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite<S> {
    pub name: String,
    pub uid: Option<String>,
    pub status: S,
    pub events: Vec<StatusEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub name: String,
    pub uid: Option<String>,
    pub why: String,
}

/// Condition counts over all AmpWorkers, for the `amp_operator_workers` gauge.
pub type ConditionCounts = BTreeMap<(String, String), i64>;

#[derive(Debug, Default)]
pub struct Plan {
    /// New AmpWorkers with the status to apply once created.
    /// Objects to create, with their first status and the events to publish with it.
    pub creates: Vec<(AmpWorker, AmpWorkerStatus, Vec<StatusEvent>)>,
    /// Transitions: written first, whatever the refresh budget.
    pub worker_writes: Vec<StatusWrite<AmpWorkerStatus>>,
    /// Heartbeat-only refreshes and fills within this cycle's allowance, oldest heartbeat
    /// first.
    pub refreshes: Vec<Refresh>,
    pub refresh_stats: RefreshStats,
    pub fleet_writes: Vec<StatusWrite<AmpWorkerFleetStatus>>,
    pub deletes: Vec<Delete>,
    pub worker_conditions: ConditionCounts,
    /// (fleet name, condition, status) = 1 for every fleet condition.
    pub fleet_conditions: Vec<(String, String, String)>,
    /// Hung workers' Pods to delete (or, in a dry run, to report).
    pub remediations: Vec<RemediationAction>,
    /// Workers due for a restart but held back, and why (for the metrics).
    pub remediation_skips: Vec<RemediationSkip>,
    /// Fleets whose remediation is paused by maxUnhealthy (for the metrics).
    pub remediation_paused: Vec<String>,
    /// Unfinished jobs on workers that are down or have no row (None: jobs not known).
    pub jobs_stranded: Option<i64>,
    /// Workers whose AcceptingJobs is False.
    pub workers_not_accepting_jobs: i64,
    /// Uids of workers whose status this replica wrote and the watch does not show yet
    /// (what [`Written::forget_shown`] keeps). Found while judging: the uid of each
    /// worker is looked up once a cycle, not once more to prune.
    pub written_ahead: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.worker_writes.is_empty()
            && self.refreshes.is_empty()
            && self.fleet_writes.is_empty()
            && self.deletes.is_empty()
            && self.remediations.is_empty()
    }
}

/// What every step of one cycle reads: the input, indexed.
pub(super) struct Cycle<'a> {
    input: &'a PlanInput<'a>,
    config: &'a PlanConfig,
    db_now: Option<DateTime<Utc>>,
    /// Every node id of the cycle, a row's or an AmpWorker's: one map, one lookup per
    /// row and per object (foldhash: SipHash over these was a tenth of the cycle).
    nodes: foldhash::HashMap<&'a str, Node<'a>>,
    /// Each AmpWorker's row (by its position in `input.workers`), found while indexing:
    /// the main loop does not look its node id up a second time.
    worker_rows: Vec<Option<&'a SnapshotRow>>,
    /// Node ids an AmpWorker a user created claims (usually none).
    user_claimed: foldhash::HashSet<&'a str>,
}

/// What the cycle knows of one node id.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Node<'a> {
    pub(super) row: Option<&'a SnapshotRow>,
    /// Some when AmpWorkers claim the node id: true when a user created one of them.
    pub(super) claimed_by_user: Option<bool>,
}

impl<'a> Cycle<'a> {
    /// `facts`: what each worker's object alone says, kept from cycle to cycle.
    fn new(
        input: &'a PlanInput<'a>,
        config: &'a PlanConfig,
        facts: &mut object_facts::ObjectFacts,
    ) -> Self {
        let mut nodes: foldhash::HashMap<&str, Node> = foldhash::HashMap::with_capacity_and_hasher(
            input.rows.len().max(input.workers.len()),
            Default::default(),
        );
        for r in input.rows {
            nodes.entry(r.node_id.as_str()).or_default().row = Some(r);
        }
        let mut worker_rows = Vec::with_capacity(input.workers.len());
        let mut user_claimed = foldhash::HashSet::default();
        facts.follow(input.workers);
        for (w, discovered) in input.workers.iter().zip(facts.discovered()) {
            let node = nodes.entry(w.spec.node_id.as_str()).or_default();
            let by_user = !discovered;
            node.claimed_by_user = Some(node.claimed_by_user.unwrap_or(false) | by_user);
            worker_rows.push(node.row);
            if by_user {
                user_claimed.insert(w.spec.node_id.as_str());
            }
        }
        Self {
            worker_rows,
            user_claimed,
            input,
            config,
            db_now: match input.db {
                DbView::Available { db_now, .. } => Some(*db_now),
                DbView::Unavailable { .. } => None,
            },
            nodes,
        }
    }

    /// What the cycle knows of the node id of `input.workers[i]` (`w`).
    fn worker_node(&self, i: usize, w: &CachedWorker) -> Node<'a> {
        let claimed =
            !self.user_claimed.is_empty() && self.user_claimed.contains(w.spec.node_id.as_str());
        Node {
            row: self.worker_rows.get(i).copied().flatten(),
            claimed_by_user: Some(claimed),
        }
    }

    /// What the cycle knows of `node_id`.
    fn node(&self, node_id: &str) -> Node<'a> {
        self.nodes.get(node_id).copied().unwrap_or_default()
    }

    /// Last seen longer than `--gc-after` ago (on the DB clock).
    fn gone(&self, heartbeat: Option<DateTime<Utc>>) -> bool {
        match (self.config.gc_after, self.db_now, heartbeat) {
            (Some(after), Some(now), Some(hb)) => now - hb > after,
            _ => false,
        }
    }

    /// Stopped (lock free) and silent longer than `--gc-stopped-after`.
    fn stopped_long(&self, row: Option<&SnapshotRow>) -> bool {
        match (self.config.gc_stopped_after, self.db_now, row) {
            (Some(after), Some(now), Some(r)) => {
                r.lock == LockState::Free && now - r.heartbeat_at > after
            }
            _ => false,
        }
    }

    /// What this replica wrote for the object if the watch does not show it yet, else
    /// what the cache shows; and whether it is the former. `maybe_written`: false when
    /// nothing can have been written for it since its memo (then no uid is hashed; nor
    /// when nothing was written last cycle).
    fn stored(&self, w: &'a CachedWorker, maybe_written: bool) -> (Option<Stored<'a>>, bool) {
        let written = (maybe_written && !self.input.written.workers.is_empty())
            .then_some(w.metadata.uid.as_ref())
            .flatten()
            .and_then(|uid| self.input.written.workers.get(uid));
        match written {
            Some(s) if !w.status.as_ref().is_some_and(|cached| cached.is(s)) => {
                (Some(Stored::Written(s)), true)
            }
            _ => (w.status.as_ref().map(Stored::Cached), false),
        }
    }
}

/// The cycle as named steps: discovery, then for every AmpWorker (existing by name, then
/// new ones) garbage collection or judgement, then refresh scheduling, then fleets.
pub fn plan(input: &PlanInput, config: &PlanConfig) -> Plan {
    plan_with(input, config, &mut Judgements::default())
}

/// [`plan`], carrying the last judgements from one cycle to the next so an unchanged
/// worker costs a comparison (the result is the same as without them).
pub fn plan_with(input: &PlanInput, config: &PlanConfig, memos: &mut Judgements) -> Plan {
    plan_with_pods(input, &PodInput::default(), config, memos)
}

/// [`plan_with`], with the Pods fleets select (placement, `status.pods`) and the
/// remediation step.
pub fn plan_with_pods(
    input: &PlanInput,
    pod_input: &PodInput,
    config: &PlanConfig,
    memos: &mut Judgements,
) -> Plan {
    let c = Cycle::new(input, config, &mut memos.facts);
    let fleets = fleets::ordered(input.fleets);
    let new_workers = discovery::discover(&c);
    let pod_indexes = pods::fleet_indexes(
        &fleets,
        pod_input.pods,
        pod_input.namespace,
        &mut memos.pods,
    );
    let mut tally = CycleTally::new(&c, &fleets, &pod_indexes);
    let mut pending = Pending::new(input.refresh_allowance);
    let mut plan = Plan::default();
    memos.start_cycle();
    // Existing objects in the store's order: only what they produce is sorted (by
    // name, below), not the 10,000 that produce nothing.
    let candidates = input
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_ref(), Some((i, w))))
        .chain(new_workers.iter().map(|w| (w, None)));
    for (w, at) in candidates {
        let node = match at {
            Some((i, _)) => c.worker_node(i, w),
            None => c.node(&w.spec.node_id),
        };
        let object = at.map(|(_, o)| o);
        let maybe_written = object.is_none_or(|o| !memos.nothing_written_since(o));
        let (stored, from_written) = c.stored(w, maybe_written);
        if from_written && let Some(uid) = &w.metadata.uid {
            plan.written_ahead.push(uid.clone());
        }
        if object.is_some()
            && let Some(delete) = gc::collect(&c, w, node, stored)
        {
            plan.deletes.push(delete);
            continue;
        }
        let fleet = fleets::fleet_of(&fleets, w.metadata.labels.as_deref());
        let index = fleet.and_then(|i| tally.pods[i].index);
        let pod_at = match at {
            Some((place, _)) => memos.facts.pod_position(place, index),
            None => index.and_then(|ix| ix.position_of(&w.spec.node_id)),
        };
        let (subject, pod_linked) = subject_of(
            &c,
            &fleets,
            (fleet, pod_at),
            pod_input,
            &mut tally,
            (w, object),
            node.row,
        );
        let subject = Subject {
            stored,
            from_written,
            ..subject
        };
        let mut member =
            |m: &Member, conditions: &[ConditionStatus; 4], jobs: Option<&JobFacts>| {
                tally.add(fleet, pod_linked, m, conditions, jobs)
            };
        match judge::judge(&c, &subject, memos, &mut pending, &mut member) {
            Verdict::Create(obj, status, events) => plan.creates.push((obj, status, events)),
            Verdict::Write(write) => plan.worker_writes.push(write),
            Verdict::Due(due) => pending.push_due(due),
            Verdict::Unchanged => {}
        }
    }
    memos.end_cycle();
    memos.mark_written(pending.written_objects());
    plan.worker_writes
        .sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    plan.deletes.sort_by(|a, b| a.name.cmp(&b.name));
    (plan.refreshes, plan.refresh_stats) = refresh::schedule(pending, c.db_now, config);
    tally.finish(&c, &fleets, input, pod_input, &mut plan);
    plan
}

/// What `w` is judged with: its row, its fleet's version and heartbeat timeout, its
/// Pod (and whether its fleet links Pods at all); counts it in its fleet's Pod tally and
/// as a remediation candidate. `stored` is left for the caller.
fn subject_of<'a>(
    c: &Cycle<'a>,
    fleets: &[fleets::FleetSel<'a>],
    (fleet, pod_at): (Option<usize>, Option<usize>),
    pod_input: &PodInput<'a>,
    tally: &mut CycleTally<'a>,
    (w, object): (&'a CachedWorker, Option<&'a Arc<CachedWorker>>),
    row: Option<&'a SnapshotRow>,
) -> (Subject<'a>, Option<bool>) {
    let index = fleet.and_then(|i| tally.pods[i].index);
    let pod = index.zip(pod_at).map(|(ix, at)| &*ix.selected[at]);
    let timeout = heartbeat_timeout(
        &w.spec,
        fleet.and_then(|i| fleets[i].fleet.spec.heartbeat_timeout_seconds),
        c.config.heartbeat_timeout_secs,
    );
    if let Some(i) = fleet {
        let running = row.is_some_and(|r| r.lock != LockState::Free);
        tally.pods[i].add_worker(&w.spec.node_id, (row.is_some(), running), pod_at);
        if object.is_some() && remediation_on(fleets[i].fleet) {
            tally.hung[i].push(remediate::Candidate {
                worker: w,
                row,
                timeout,
            });
        }
    }
    let pod_linked = fleet.and_then(|i| tally.pods[i].index.as_ref().map(|_| pod.is_some()));
    let subject = Subject {
        worker: w,
        object,
        row,
        stored: None,
        from_written: false,
        fleet_version: fleet.map(|i| fleets[i].fleet.spec.version.as_str()),
        timeout,
        pod,
        restarts: restarts_of(&pod_input.history, w),
    };
    (subject, pod_linked)
}

fn remediation_on(fleet: &AmpWorkerFleet) -> bool {
    fleet
        .spec
        .remediation
        .as_ref()
        .is_some_and(|r| r.mode != super::crd::RemediationMode::Off)
}

/// The worker's Pod deletions this replica made (its status records them).
fn restarts_of(
    history: &RemediationHistory,
    w: &CachedWorker,
) -> Option<super::remediation::History> {
    history
        .workers
        .get(w.spec.node_id.as_str())
        .and_then(|h| h.restarts)
}

/// Jobs of node ids no AmpWorker claims that are down: no row at all (no worker can ever
/// resume them), or a row whose worker stopped (discovery skips those, and collects
/// their objects after `--gc-stopped-after`). They are nobody's, so every fleet counts
/// them as stranded. None when jobs are not known.
fn unclaimed_jobs(c: &Cycle, job_tallies: &mut [FleetJobsTally]) -> Option<i64> {
    let JobsView::Known(index) = c.input.jobs else {
        return None;
    };
    let mut total = 0i64;
    for jobs in &index.snapshot.nodes {
        let node = c.node(&jobs.node_id);
        let unregistered = match node.row {
            _ if node.claimed_by_user.is_some() => continue, // its AmpWorker counts them
            None => true,
            Some(row) if row.lock == LockState::Free => false,
            Some(_) => continue, // running: discovery creates its AmpWorker
        };
        total += i64::try_from(jobs.active() + jobs.retrying).unwrap_or(i64::MAX);
        for tally in job_tallies.iter_mut() {
            tally.add_unclaimed(&jobs.node_id, jobs, unregistered);
        }
    }
    Some(total)
}

const STATUSES: [ConditionStatus; 3] = [
    ConditionStatus::True,
    ConditionStatus::False,
    ConditionStatus::Unknown,
];

fn count_conditions(counts: &mut [[i64; 3]; 4], conditions: &[ConditionStatus; 4]) {
    for (row, status) in counts.iter_mut().zip(conditions) {
        let i = STATUSES.iter().position(|s| s == status).unwrap_or(2);
        row[i] += 1;
    }
}

fn condition_counts(counts: &[[i64; 3]; 4]) -> ConditionCounts {
    let mut out = ConditionCounts::new();
    for (type_, row) in CONDITION_TYPES.iter().zip(counts) {
        for (status, n) in STATUSES.iter().zip(row) {
            if *n > 0 {
                out.insert(((*type_).to_owned(), status.as_str().to_owned()), *n);
            }
        }
    }
    out
}

#[cfg(test)]
mod pod_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
