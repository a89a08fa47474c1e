//! Amp's jobs in the statuses: an AmpWorker's `status.jobs`, its `AcceptingJobs` and
//! `JobsStranded` conditions (and `Ready` False when a heartbeating worker does not pick
//! up its jobs), and a fleet's job totals with its own `JobsStranded` condition.
//!
//! Pure functions over the operator's latest jobs read: like every other status message,
//! these carry counts, ids and timestamps, never ages, so an unchanged situation writes
//! nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    Cond, ConditionStatus, DbView, HEALTHY, READY, Reason, StatusEvent, cond, condition_status,
    find, to_condition,
};
use crate::metadata_db::{JobsSnapshot, NodeJobs};
use crate::operator::crd::{
    AmpWorkerFleetStatus, AmpWorkerSpec, AmpWorkerStatus, FleetJobs, ScheduledJobRef, WorkerJobs,
};
use crate::timestamps::{format_timestamp, truncate};

pub const ACCEPTING_JOBS: &str = "AcceptingJobs";
pub const JOBS_STRANDED: &str = "JobsStranded";
/// Amp's worker picks up its jobs on a notification and in a reconcile loop every 60 s:
/// twice that is late by any measure.
pub const DEFAULT_JOB_PICKUP_TIMEOUT_SECS: i64 = 120;
/// STATUS of a healthy worker that does not pick up its jobs.
pub const NOT_ACCEPTING_JOBS: &str = "NotAcceptingJobs";
/// Stranded workers a fleet names (in `status.jobs.strandedWorkers`).
pub const MAX_LISTED_STRANDED: usize = 10;
/// Of those, how many the fleet's condition message names.
const MESSAGE_NODE_IDS: usize = 5;
/// STATUS values of a worker that cannot run its jobs.
const DOWN_STATES: [&str; 3] = ["Stale", "Stopped", "NotRegistered"];

/// What the operator knows of Amp's jobs, from its latest jobs read.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum JobsView {
    /// No job tables (or never read): no `status.jobs`, no job conditions.
    #[default]
    Absent,
    /// Job tables that cannot be read: why, in one sentence (the grant to give).
    Unknown(String),
    /// The latest read, indexed by node id.
    Known(Arc<JobsIndex>),
}

/// A jobs read, with each assignee found by node id.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsIndex {
    pub snapshot: JobsSnapshot,
    by_node: foldhash::HashMap<String, usize>,
}

impl JobsIndex {
    pub fn new(snapshot: JobsSnapshot) -> Self {
        let by_node = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node_id.clone(), i))
            .collect();
        Self { snapshot, by_node }
    }

    pub fn node(&self, node_id: &str) -> Option<&NodeJobs> {
        self.by_node.get(node_id).map(|i| &self.snapshot.nodes[*i])
    }
}

/// One worker's share of the jobs view: everything its job conditions are judged from
/// (compared from one cycle to the next, so it is small and owns nothing big).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerJobsInput<'a> {
    Absent,
    Unknown(&'a str),
    Known {
        jobs: Option<&'a NodeJobs>,
        /// Its oldest SCHEDULED job has waited longer than the pickup timeout (DB clock).
        overdue: bool,
    },
}

/// A worker's [`WorkerJobsInput`] as remembered from one cycle to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsMemo {
    Absent,
    Unknown(String),
    Known {
        jobs: Option<NodeJobs>,
        overdue: bool,
    },
}

impl JobsMemo {
    pub fn of(input: &WorkerJobsInput) -> Self {
        match input {
            WorkerJobsInput::Absent => Self::Absent,
            WorkerJobsInput::Unknown(why) => Self::Unknown((*why).to_owned()),
            WorkerJobsInput::Known { jobs, overdue } => Self::Known {
                jobs: jobs.cloned(),
                overdue: *overdue,
            },
        }
    }

    /// Whether its verdict moves with the clock alone: a job waits for pickup (it turns
    /// overdue once the pickup timeout passes).
    pub fn waiting_for_pickup(&self) -> bool {
        matches!(self, Self::Known { jobs: Some(j), .. } if j.oldest_scheduled.is_some())
    }

    /// Whether `input` would be judged as this was.
    pub fn matches(&self, input: &WorkerJobsInput) -> bool {
        match (self, input) {
            (Self::Absent, WorkerJobsInput::Absent) => true,
            (Self::Unknown(a), WorkerJobsInput::Unknown(b)) => a == b,
            (
                Self::Known { jobs, overdue },
                WorkerJobsInput::Known {
                    jobs: now,
                    overdue: now_overdue,
                },
            ) => overdue == now_overdue && jobs.as_ref() == *now,
            _ => false,
        }
    }
}

pub fn pickup_timeout_secs(spec: &AmpWorkerSpec) -> i64 {
    spec.job_pickup_timeout_seconds
        .unwrap_or(DEFAULT_JOB_PICKUP_TIMEOUT_SECS)
}

/// The worker's share of `view` at this cycle's DB clock.
pub fn worker_jobs_input<'a>(
    view: &'a JobsView,
    spec: &AmpWorkerSpec,
    db_now: Option<DateTime<Utc>>,
) -> WorkerJobsInput<'a> {
    match view {
        JobsView::Absent => WorkerJobsInput::Absent,
        JobsView::Unknown(why) => WorkerJobsInput::Unknown(why),
        JobsView::Known(index) => {
            let jobs = index.node(&spec.node_id);
            let timeout = chrono::Duration::seconds(pickup_timeout_secs(spec));
            let overdue = match (jobs.and_then(|j| j.oldest_scheduled), db_now) {
                (Some(oldest), Some(now)) => oldest.age(now) > timeout,
                _ => false,
            };
            WorkerJobsInput::Known { jobs, overdue }
        }
    }
}

/// `status.jobs` of one node's jobs (zeros without any).
pub fn worker_jobs(jobs: Option<&NodeJobs>) -> WorkerJobs {
    let Some(j) = jobs else {
        return WorkerJobs::default();
    };
    let c = j.counts();
    WorkerJobs {
        active: c.active,
        scheduled: c.scheduled,
        running: c.running,
        stopping: c.stopping,
        retrying: c.retrying,
        unknown: c.unknown,
        oldest_scheduled: j.oldest_scheduled.map(|o| ScheduledJobRef {
            id: o.id,
            since: truncate(o.since),
        }),
    }
}

/// Adds `status.jobs`, `AcceptingJobs` and `JobsStranded` to a status `desired_status`
/// built, and turns `Ready` False (STATUS NotAcceptingJobs) for a heartbeating worker
/// that does not pick up its jobs. `previous` is the stored status.
pub fn apply_worker_jobs(
    status: &mut AmpWorkerStatus,
    input: &WorkerJobsInput,
    db: &DbView,
    spec: &AmpWorkerSpec,
    previous: Option<&AmpWorkerStatus>,
    now: DateTime<Utc>,
) {
    let (accepting, stranded) = match (input, db) {
        (WorkerJobsInput::Absent, _) => {
            status.jobs = None;
            return;
        }
        // The last known jobs stay shown while the DB cannot be read.
        (_, DbView::Unavailable { .. }) => (
            cond(
                ACCEPTING_JOBS,
                ConditionStatus::Unknown,
                Reason::MetadataDbUnavailable,
                db.unreadable(),
            ),
            cond(
                JOBS_STRANDED,
                ConditionStatus::Unknown,
                Reason::MetadataDbUnavailable,
                db.unreadable(),
            ),
        ),
        (WorkerJobsInput::Unknown(why), _) => {
            status.jobs = None;
            (
                cond(
                    ACCEPTING_JOBS,
                    ConditionStatus::Unknown,
                    Reason::JobsUnknown,
                    *why,
                ),
                cond(
                    JOBS_STRANDED,
                    ConditionStatus::Unknown,
                    Reason::JobsUnknown,
                    *why,
                ),
            )
        }
        (WorkerJobsInput::Known { jobs, overdue }, DbView::Available { .. }) => {
            let shown = worker_jobs(*jobs);
            let healthy =
                condition_status(&status.conditions, HEALTHY) == Some(ConditionStatus::True);
            let accepting = accepting_condition(&shown, healthy && *overdue, spec);
            let stranded = stranded_condition(&shown, status.state.as_deref(), spec);
            status.jobs = Some(shown);
            (accepting, stranded)
        }
    };
    if accepting.status == ConditionStatus::False
        && condition_status(&status.conditions, READY) == Some(ConditionStatus::True)
    {
        not_ready(status, &accepting, previous, now);
    }
    let stored = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let generation = status.observed_generation;
    for c in [accepting, stranded] {
        status
            .conditions
            .push(to_condition(c, stored, generation, now));
    }
}

/// `AcceptingJobs`: False when a job has waited too long on a heartbeating worker.
fn accepting_condition(jobs: &WorkerJobs, late: bool, spec: &AmpWorkerSpec) -> Cond {
    let timeout = pickup_timeout_secs(spec);
    match jobs.oldest_scheduled.as_ref().filter(|_| late) {
        Some(oldest) => cond(
            ACCEPTING_JOBS,
            ConditionStatus::False,
            Reason::JobNotPickedUp,
            format!(
                "job {} has been SCHEDULED on this worker since {} (longer than the {timeout}s pickup timeout) while it heartbeats: it does not pick up its jobs (its job notifications may be broken); restarting it makes it pick them up",
                oldest.id,
                format_timestamp(&oldest.since)
            ),
        ),
        None => cond(
            ACCEPTING_JOBS,
            ConditionStatus::True,
            Reason::JobsPickedUp,
            format!(
                "no job has waited longer than the {timeout}s pickup timeout while the worker heartbeats"
            ),
        ),
    }
}

/// `JobsStranded`: True when unfinished jobs sit on a worker that cannot run them.
fn stranded_condition(jobs: &WorkerJobs, state: Option<&str>, spec: &AmpWorkerSpec) -> Cond {
    let waiting = jobs.active + jobs.retrying;
    match state.filter(|s| DOWN_STATES.contains(s)) {
        Some(state) if waiting > 0 => cond(
            JOBS_STRANDED,
            ConditionStatus::True,
            Reason::JobsStranded,
            format!(
                "{waiting} unfinished {} ({}) {} assigned to this worker, which is {state}; Amp does not move them to another worker. Start a worker with node id {:?} and it resumes them; otherwise stop them (ampctl job stop) and deploy their datasets again",
                if waiting == 1 { "job" } else { "jobs" },
                breakdown(jobs),
                if waiting == 1 { "is" } else { "are" },
                spec.node_id
            ),
        ),
        _ => cond(
            JOBS_STRANDED,
            ConditionStatus::False,
            Reason::NoStrandedJobs,
            "no unfinished job waits on this worker while it is down",
        ),
    }
}

/// `2 RUNNING, 1 SCHEDULED`: the non-zero counts, in Amp's words.
fn breakdown(jobs: &WorkerJobs) -> String {
    [
        (jobs.scheduled, "SCHEDULED"),
        (jobs.running, "RUNNING"),
        (jobs.stopping, "STOP_REQUESTED/STOPPING"),
        (jobs.retrying, "ERROR"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, s)| format!("{n} {s}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// `Ready` False with AcceptingJobs' reason and message; STATUS NotAcceptingJobs.
fn not_ready(
    status: &mut AmpWorkerStatus,
    accepting: &Cond,
    previous: Option<&AmpWorkerStatus>,
    now: DateTime<Utc>,
) {
    let stored = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let ready = cond(
        READY,
        ConditionStatus::False,
        Reason::JobNotPickedUp,
        accepting.message.clone(),
    );
    let ready = to_condition(ready, stored, status.observed_generation, now);
    if let Some(slot) = status.conditions.iter_mut().find(|c| c.type_ == READY) {
        *slot = ready;
    }
    status.state = Some(NOT_ACCEPTING_JOBS.to_owned());
}

/// JobsStranded (Warning) and StrandedJobsGone (Normal); JobNotPickedUp (Warning) and
/// JobsPickedUp (Normal). Transitions into or out of Unknown fire nothing (as for the
/// other conditions: the fleets carry the DB outage events).
pub fn job_events(stored: Option<&AmpWorkerStatus>, desired: &AmpWorkerStatus) -> Vec<StatusEvent> {
    let Some(stored) = stored else {
        return Vec::new();
    };
    let mut events = Vec::new();
    let was = |t| condition_status(&stored.conditions, t);
    let is = |t| condition_status(&desired.conditions, t);
    let message = |t| {
        find(&desired.conditions, t)
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    let node = desired.node_id.as_deref().unwrap_or("?");
    match (was(JOBS_STRANDED), is(JOBS_STRANDED)) {
        (None | Some(ConditionStatus::False), Some(ConditionStatus::True)) => {
            events.push(StatusEvent {
                reason: "JobsStranded",
                warning: true,
                note: message(JOBS_STRANDED),
            })
        }
        (Some(ConditionStatus::True), Some(ConditionStatus::False)) => events.push(StatusEvent {
            reason: "StrandedJobsGone",
            warning: false,
            note: format!("no unfinished job waits on worker {node} while it is down any more"),
        }),
        _ => {}
    }
    match (was(ACCEPTING_JOBS), is(ACCEPTING_JOBS)) {
        (None | Some(ConditionStatus::True), Some(ConditionStatus::False)) => {
            events.push(StatusEvent {
                reason: "JobNotPickedUp",
                warning: true,
                note: message(ACCEPTING_JOBS),
            })
        }
        (Some(ConditionStatus::False), Some(ConditionStatus::True)) => events.push(StatusEvent {
            reason: "JobsPickedUp",
            warning: false,
            note: format!("worker {node} picks up its jobs again"),
        }),
        _ => {}
    }
    events
}

/// A judged worker's part in its fleet's job totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFacts {
    pub active: i64,
    pub scheduled: i64,
    pub running: i64,
    /// Unfinished jobs (ERROR included) while the worker is down; 0 otherwise.
    pub stranded: i64,
    /// AcceptingJobs is False: a job waits too long on it while it heartbeats.
    pub not_accepting: bool,
}

impl JobFacts {
    /// From a (desired) worker status; None when it shows no jobs.
    pub fn of(status: &AmpWorkerStatus) -> Option<Self> {
        let jobs = status.jobs.as_ref()?;
        let stranded =
            condition_status(&status.conditions, JOBS_STRANDED) == Some(ConditionStatus::True);
        let not_accepting =
            condition_status(&status.conditions, ACCEPTING_JOBS) == Some(ConditionStatus::False);
        Some(Self {
            active: jobs.active,
            scheduled: jobs.scheduled,
            running: jobs.running,
            stranded: if stranded {
                jobs.active + jobs.retrying
            } else {
                0
            },
            not_accepting,
        })
    }
}

/// A fleet's job totals, counted as its selected workers are judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetJobsTally {
    jobs: FleetJobs,
    /// Every stranded worker's node id (only the first few are shown, in order).
    stranded_workers: Vec<String>,
}

impl FleetJobsTally {
    pub fn add(&mut self, node_id: &str, facts: &JobFacts) {
        self.jobs.active += facts.active;
        self.jobs.scheduled += facts.scheduled;
        self.jobs.running += facts.running;
        self.jobs.stranded += facts.stranded;
        if facts.stranded > 0 {
            self.stranded_workers.push(node_id.to_owned());
        }
    }

    /// Jobs of a node id that is down and has no AmpWorker: no row at all
    /// (`unregistered`), or a stopped worker's row.
    pub fn add_unclaimed(&mut self, node_id: &str, jobs: &NodeJobs, unregistered: bool) {
        let n = i64::try_from(jobs.active() + jobs.retrying).unwrap_or(i64::MAX);
        if n == 0 {
            return;
        }
        self.jobs.stranded += n;
        if unregistered {
            self.jobs.unregistered_assignees += n;
        }
        self.stranded_workers.push(node_id.to_owned());
    }
}

/// Sets a fleet's `status.jobs` and its `JobsStranded` condition (not part of Ready).
pub fn apply_fleet_jobs(
    status: &mut AmpWorkerFleetStatus,
    view: &JobsView,
    db: &DbView,
    tally: FleetJobsTally,
    previous: Option<&AmpWorkerFleetStatus>,
    now: DateTime<Utc>,
) {
    let stored = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let stranded = match (view, db) {
        (JobsView::Absent, _) => {
            status.jobs = None;
            return;
        }
        (_, DbView::Unavailable { .. }) => {
            status.jobs = previous.and_then(|p| p.jobs.clone());
            cond(
                JOBS_STRANDED,
                ConditionStatus::Unknown,
                Reason::MetadataDbUnavailable,
                db.unreadable(),
            )
        }
        (JobsView::Unknown(why), _) => {
            status.jobs = None;
            cond(
                JOBS_STRANDED,
                ConditionStatus::Unknown,
                Reason::JobsUnknown,
                why.clone(),
            )
        }
        (JobsView::Known(_), DbView::Available { .. }) => {
            let mut jobs = tally.jobs;
            let mut workers = tally.stranded_workers;
            workers.sort();
            workers.truncate(MAX_LISTED_STRANDED);
            jobs.stranded_workers = workers;
            let c = fleet_stranded_condition(&jobs);
            status.jobs = Some(jobs);
            c
        }
    };
    status.conditions.push(to_condition(
        stranded,
        stored,
        status.observed_generation,
        now,
    ));
}

fn fleet_stranded_condition(jobs: &FleetJobs) -> Cond {
    if jobs.stranded == 0 {
        return cond(
            JOBS_STRANDED,
            ConditionStatus::False,
            Reason::NoStrandedJobs,
            "no unfinished job waits on a worker that is down",
        );
    }
    let named: Vec<&str> = jobs
        .stranded_workers
        .iter()
        .take(MESSAGE_NODE_IDS)
        .map(String::as_str)
        .collect();
    let unregistered = if jobs.unregistered_assignees > 0 {
        format!(
            " ({} of them on node ids without a row in the metadata DB)",
            jobs.unregistered_assignees
        )
    } else {
        String::new()
    };
    cond(
        JOBS_STRANDED,
        ConditionStatus::True,
        Reason::JobsStranded,
        format!(
            "{} unfinished {} on workers that are Stale, Stopped or not registered{unregistered}, e.g. {}; start a worker with the same node id and it resumes them, otherwise stop them (ampctl job stop) and deploy their datasets again",
            jobs.stranded,
            if jobs.stranded == 1 {
                "job waits"
            } else {
                "jobs wait"
            },
            named.join(", ")
        ),
    )
}

/// JobsStranded (Warning) / StrandedJobsGone (Normal) on a fleet, once per transition.
pub fn fleet_job_events(
    stored: Option<&AmpWorkerFleetStatus>,
    desired: &AmpWorkerFleetStatus,
) -> Vec<StatusEvent> {
    let was = stored.and_then(|s| condition_status(&s.conditions, JOBS_STRANDED));
    match (was, condition_status(&desired.conditions, JOBS_STRANDED)) {
        (None | Some(ConditionStatus::False), Some(ConditionStatus::True)) => vec![StatusEvent {
            reason: "JobsStranded",
            warning: true,
            note: find(&desired.conditions, JOBS_STRANDED)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        }],
        (Some(ConditionStatus::True), Some(ConditionStatus::False)) => vec![StatusEvent {
            reason: "StrandedJobsGone",
            warning: false,
            note: "no unfinished job of the fleet waits on a worker that is down any more".into(),
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
