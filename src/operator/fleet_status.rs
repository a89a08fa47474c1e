//! Pure status logic for AmpWorkerFleet: (spec, selected workers' statuses, clock,
//! previous status) → status, with kstatus conditions `Ready`, `Reconciling`, `Stalled`.
//!
//! Like worker statuses, messages carry only counts and names, never ages, so a fleet
//! that is not changing produces an identical status and no write.

mod smallest;

use chrono::{DateTime, Utc};
use smallest::Smallest;

use super::crd::{AmpWorkerFleetSpec, AmpWorkerFleetStatus, AmpWorkerStatus, VersionCount};
use super::status::{
    Cond, ConditionStatus, HEALTHY, READY, REGISTERED, Reason, StatusEvent, cond, condition_status,
    to_condition,
};
use crate::timestamps::truncate;

pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const DEFAULT_PROGRESS_DEADLINE_SECS: i64 = 600;
pub const DEFAULT_MIN_READY: i64 = 1;
/// Node ids listed in a Stalled message; more are in `status.mismatched`.
const MESSAGE_NODE_IDS: usize = 5;
/// Bounds that keep the fleet object small at any fleet size (etcd refuses objects over
/// 1.5 MiB; a list that grows with the fleet would reach it). Node ids are at most 128
/// bytes by contract; versions are whatever workers report, so they are cut too.
pub const MAX_LISTED_MISMATCHED: usize = 50;
pub const MAX_LISTED_VERSIONS: usize = 20;
pub const MAX_VERSION_BYTES: usize = 128;

/// `v` cut to [`MAX_VERSION_BYTES`] on a character boundary, marked with `…` when cut.
fn bounded_version(v: &str) -> String {
    if v.len() <= MAX_VERSION_BYTES {
        return v.to_owned();
    }
    let mut end = MAX_VERSION_BYTES - '…'.len_utf8();
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end])
}

/// The most common versions (ties by name), at most [`MAX_LISTED_VERSIONS`], sorted by
/// version; and how many workers run a version left out.
fn version_distribution<'a>(
    counts: impl Iterator<Item = (&'a str, i64)>,
) -> (Vec<VersionCount>, i64) {
    let mut all: Vec<(&str, i64)> = counts.collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let unlisted = all.iter().skip(MAX_LISTED_VERSIONS).map(|(_, c)| c).sum();
    let mut listed: Vec<VersionCount> = all
        .into_iter()
        .take(MAX_LISTED_VERSIONS)
        .map(|(v, count)| VersionCount {
            version: bounded_version(v),
            count,
        })
        .collect();
    listed.sort_by(|a, b| a.version.cmp(&b.version));
    (listed, unlisted)
}

pub struct FleetInputs<'a> {
    pub spec: &'a AmpWorkerFleetSpec,
    pub generation: Option<i64>,
    pub previous: Option<&'a AmpWorkerFleetStatus>,
    /// Desired statuses of the selected AmpWorkers (this cycle's, not the stored ones).
    pub workers: &'a [&'a AmpWorkerStatus],
    /// Set when the fleet's selector cannot be parsed (it then selects nothing).
    pub selector_error: Option<&'a str>,
    /// Wall clock: progress deadline and `lastTransitionTime`.
    pub now: DateTime<Utc>,
    /// The metadata DB's clock when it was read this cycle: how long members have been up
    /// or stopped (their timestamps are on that clock).
    pub db_now: Option<DateTime<Utc>>,
    /// Why the metadata DB cannot be read when TLS to it failed (see `DbView`).
    pub db_failure: Option<&'a str>,
}

/// A stopped worker whose last run was shorter than this crashed (or was stopped right
/// after it started): a version that crash-loops is seen as such, not as a clean stop.
pub const CRASH_RUN_SECS: i64 = 60;
pub const DEFAULT_MIN_READY_SECS: i64 = 10;
pub const DEFAULT_RETIRE_STOPPED_AFTER_SECS: i64 = 900;

/// The few facts of a selected worker a fleet is judged by (no status is cloned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub node_id: &'a str,
    /// The reported version, if known.
    pub version: Option<&'a str>,
    pub stopped: bool,
    /// A process holds the node id but does not heartbeat.
    pub stale: bool,
    /// No row for the node id.
    pub not_registered: bool,
    /// Heartbeating, but leaves a job SCHEDULED past its pickup timeout.
    pub not_accepting_jobs: bool,
    pub ready: bool,
    /// Registered and Healthy.
    pub healthy: bool,
    /// Healthy is Unknown (the metadata DB cannot be read).
    pub health_unknown: bool,
    /// When its process last registered (DB clock).
    pub registered_at: Option<DateTime<Utc>>,
    /// When a stopped worker last heartbeat (DB clock); None while it runs.
    pub stopped_at: Option<DateTime<Utc>>,
}

impl<'a> Member<'a> {
    /// The facts of a worker's (desired) status.
    pub fn of(w: &'a AmpWorkerStatus) -> Self {
        let is = |t| condition_status(&w.conditions, t);
        let state = w.state.as_deref();
        let stopped = state == Some("Stopped");
        Self {
            node_id: w.node_id.as_deref().unwrap_or_default(),
            version: w.info.as_ref().and_then(|i| i.version.as_deref()),
            stopped,
            stale: state == Some("Stale"),
            not_registered: state == Some("NotRegistered"),
            not_accepting_jobs: state == Some(super::status::jobs::NOT_ACCEPTING_JOBS),
            ready: is(READY) == Some(ConditionStatus::True),
            healthy: is(REGISTERED) == Some(ConditionStatus::True)
                && is(HEALTHY) == Some(ConditionStatus::True),
            health_unknown: is(HEALTHY) == Some(ConditionStatus::Unknown),
            registered_at: w.registered_at,
            stopped_at: if stopped { w.heartbeat_at } else { None },
        }
    }

    /// Stopped within [`CRASH_RUN_SECS`] of its last start.
    fn crashed(&self) -> bool {
        match (self.stopped_at, self.registered_at) {
            (Some(stopped), Some(started)) => (stopped - started).num_seconds() < CRASH_RUN_SECS,
            _ => false,
        }
    }
}

/// Why a member is not available, in the order a message lists them (the most urgent
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Crashed,
    Stopped,
    NotRegistered,
    /// A selected Pod whose node id has no worker row (not started, or crashing before
    /// it registers).
    NoWorker,
    Stale,
    VersionMismatch,
    NotAcceptingJobs,
    /// Ready on the version, but up for less than minReadySeconds.
    Starting,
    NotReady,
}

impl Cause {
    const ALL: [Cause; 9] = [
        Cause::Crashed,
        Cause::Stopped,
        Cause::NotRegistered,
        Cause::NoWorker,
        Cause::Stale,
        Cause::VersionMismatch,
        Cause::NotAcceptingJobs,
        Cause::Starting,
        Cause::NotReady,
    ];

    fn label(self) -> &'static str {
        match self {
            Cause::Crashed => "crashed",
            Cause::Stopped => "stopped",
            Cause::NotRegistered => "not registered",
            Cause::NoWorker => "Pod without a worker",
            Cause::Stale => "stale",
            Cause::VersionMismatch => "version mismatch",
            Cause::NotAcceptingJobs => "not accepting jobs",
            Cause::Starting => "starting",
            Cause::NotReady => "unhealthy",
        }
    }
}

/// A fleet's selected workers, counted as they are met: what the status needs and
/// nothing more.
#[derive(Debug, Clone)]
pub struct FleetTally {
    expected: String,
    db_now: Option<DateTime<Utc>>,
    min_ready_secs: i64,
    retire_after_secs: i64,
    /// Members: selected workers that are not retired (a stopped worker is a member that
    /// is not ready until it has been stopped for the retirement delay).
    total: i64,
    ready: i64,
    /// Healthy members on the expected version.
    updated: i64,
    /// Updated members up for at least minReadySeconds.
    available: i64,
    crashed: i64,
    retired: i64,
    /// Any selected worker (retired or not) whose health is Unknown.
    db_unknown: bool,
    /// foldhash: one lookup per selected worker per cycle.
    versions: foldhash::HashMap<String, i64>,
    /// Not on the expected version: the first ids (what the status lists), and a count.
    mismatched: Smallest,
    /// Members that are not available, by cause (as [`Cause::ALL`]): the first ids (what
    /// a message names), and a count.
    causes: [Smallest; 9],
}

impl FleetTally {
    pub fn new(spec: &AmpWorkerFleetSpec, db_now: Option<DateTime<Utc>>) -> Self {
        Self {
            expected: spec.version.clone(),
            db_now,
            min_ready_secs: spec.min_ready_seconds.unwrap_or(DEFAULT_MIN_READY_SECS),
            retire_after_secs: spec
                .retire_stopped_after_seconds
                .unwrap_or(DEFAULT_RETIRE_STOPPED_AFTER_SECS),
            total: 0,
            ready: 0,
            updated: 0,
            available: 0,
            crashed: 0,
            retired: 0,
            db_unknown: false,
            versions: foldhash::HashMap::default(),
            mismatched: Smallest::new(MAX_LISTED_MISMATCHED),
            causes: std::array::from_fn(|_| Smallest::new(MESSAGE_NODE_IDS)),
        }
    }

    /// Counts a selected worker. `pod`: whether its Pod exists, when the fleet selects
    /// Pods (None: it does not).
    pub fn add(&mut self, m: &Member, pod: Option<bool>) {
        self.db_unknown |= m.health_unknown;
        if self.retired(m, pod) {
            self.retired += 1;
            return;
        }
        let version = m.version.unwrap_or("unknown");
        let on_expected = version == self.expected;
        let updated = m.healthy && on_expected;
        // Ready too: a worker that does not pick up its jobs (AcceptingJobs False) is
        // healthy and updated, but not available.
        let available = updated && m.ready && self.up_long_enough(m);
        self.total += 1;
        self.ready += i64::from(m.ready);
        self.updated += i64::from(updated);
        self.available += i64::from(available);
        self.crashed += i64::from(m.stopped && m.crashed());
        self.count_version(version);
        if !on_expected {
            self.mismatched.push(m.node_id);
        }
        if !available {
            let cause = self.cause(m, version);
            self.push_cause(cause, m.node_id);
        }
    }

    /// A selected Pod that runs no worker of the fleet: a member that is not ready, as a
    /// Deployment's replica that is not available.
    pub fn add_pod_without_worker(&mut self, pod: &str) {
        self.total += 1;
        self.push_cause(Cause::NoWorker, pod);
    }

    fn push_cause(&mut self, cause: Cause, id: &str) {
        if let Some(i) = Cause::ALL.iter().position(|c| *c == cause) {
            self.causes[i].push(id);
        }
    }

    fn count_version(&mut self, version: &str) {
        match self.versions.get_mut(version) {
            Some(count) => *count += 1,
            None => {
                self.versions.insert(version.to_owned(), 1);
            }
        }
    }

    /// No longer a member: with Pods, stopped and its Pod gone (scaled down; a stopped
    /// worker whose Pod exists should run); without, stopped longer than the retirement
    /// delay (by the DB clock).
    fn retired(&self, m: &Member, pod: Option<bool>) -> bool {
        match (pod, self.db_now, m.stopped_at) {
            (Some(has_pod), _, _) => m.stopped && !has_pod,
            (None, Some(now), Some(at)) => (now - at).num_seconds() > self.retire_after_secs,
            _ => false,
        }
    }

    /// Up since its last registration for minReadySeconds (by the DB clock; when either
    /// time is unknown, its health verdict alone decides).
    fn up_long_enough(&self, m: &Member) -> bool {
        match (self.db_now, m.registered_at) {
            (Some(now), Some(at)) => (now - at).num_seconds() >= self.min_ready_secs,
            _ => true,
        }
    }

    fn cause(&self, m: &Member, version: &str) -> Cause {
        if m.stopped {
            if m.crashed() {
                Cause::Crashed
            } else {
                Cause::Stopped
            }
        } else if m.not_registered {
            Cause::NotRegistered
        } else if m.stale {
            Cause::Stale
        } else if version != self.expected {
            Cause::VersionMismatch
        } else if m.not_accepting_jobs {
            Cause::NotAcceptingJobs
        } else if m.healthy && m.ready {
            Cause::Starting
        } else {
            Cause::NotReady
        }
    }
}

pub fn desired_fleet_status(i: &FleetInputs) -> AmpWorkerFleetStatus {
    let mut tally = FleetTally::new(i.spec, i.db_now);
    for w in i.workers {
        tally.add(&Member::of(w), None);
    }
    fleet_status_from(
        &FleetJudged {
            spec: i.spec,
            generation: i.generation,
            previous: i.previous,
            selector_error: i.selector_error,
            now: i.now,
            db_failure: i.db_failure,
        },
        tally,
    )
}

/// Everything but the workers, which come as a [`FleetTally`].
pub struct FleetJudged<'a> {
    pub spec: &'a AmpWorkerFleetSpec,
    pub generation: Option<i64>,
    pub previous: Option<&'a AmpWorkerFleetStatus>,
    pub selector_error: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub db_failure: Option<&'a str>,
}

/// Where a fleet stands, decided once; each condition and STATUS is read from it.
enum Phase {
    InvalidSelector(String),
    Complete(String),
    DbUnknown(String),
    Stalled(Reason, String),
    Progressing(Reason, String),
}

pub fn fleet_status_from(i: &FleetJudged, tally: FleetTally) -> AmpWorkerFleetStatus {
    let prev = i.previous.cloned().unwrap_or_default();
    let complete = i.selector_error.is_none()
        && !tally.db_unknown
        && tally.available == tally.total
        && tally.available >= min_ready(i.spec);
    let last_progress = last_progress(i, &prev, &tally, complete);
    let phase = phase(i, &tally, complete, last_progress);
    let deadline = deadline_secs(i.spec);
    let conditions = [
        ready_condition(&phase),
        reconciling_condition(&phase),
        stalled_condition(&phase, deadline),
    ];
    let (versions, unlisted_version_workers) =
        version_distribution(tally.versions.iter().map(|(v, c)| (v.as_str(), *c)));
    let mismatched_count = tally.mismatched.count() as i64;
    AmpWorkerFleetStatus {
        observed_generation: i.generation,
        state: Some(state_of(&phase).to_owned()),
        workers: tally.total,
        ready_workers: tally.ready,
        updated_workers: tally.updated,
        available_workers: tally.available,
        crashed_workers: tally.crashed,
        retired_workers: tally.retired,
        ready_summary: Some(format!("{}/{}", tally.ready, tally.total)),
        versions,
        unlisted_version_workers,
        mismatched: tally.mismatched.into_sorted(),
        mismatched_count,
        last_progress_time: Some(truncate(last_progress)),
        conditions: conditions
            .into_iter()
            .map(|c| to_condition(c, &prev.conditions, i.generation, i.now))
            .collect(),
        // status.pods and status.remediation: added by the planner (plan::fleets).
        ..AmpWorkerFleetStatus::default()
    }
}

fn min_ready(spec: &AmpWorkerFleetSpec) -> i64 {
    spec.min_ready.unwrap_or(DEFAULT_MIN_READY).max(0)
}

fn deadline_secs(spec: &AmpWorkerFleetSpec) -> i64 {
    spec.progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECS)
}

/// The deadline runs from the last progress: a new spec, more available workers, or the moment a complete fleet stopped being complete (a worker died, a new
/// one joined).
fn last_progress(
    i: &FleetJudged,
    prev: &AmpWorkerFleetStatus,
    tally: &FleetTally,
    complete: bool,
) -> DateTime<Utc> {
    let was_complete = condition_status(&prev.conditions, READY) == Some(ConditionStatus::True);
    let generation_changed = prev.observed_generation != i.generation;
    let fell_incomplete = was_complete && !complete;
    // Available, not updated: a crash-looping worker is updated again at each restart,
    // and that must not move the deadline.
    let progressed =
        generation_changed || tally.available > prev.available_workers || fell_incomplete;
    match prev.last_progress_time {
        Some(t) if !progressed => t,
        _ => i.now,
    }
}

fn phase(i: &FleetJudged, t: &FleetTally, complete: bool, last_progress: DateTime<Utc>) -> Phase {
    let (expected, total, min_ready, deadline) = (
        &t.expected,
        t.total,
        min_ready(i.spec),
        deadline_secs(i.spec),
    );
    if let Some(err) = i.selector_error {
        return Phase::InvalidSelector(format!("spec.selector is invalid: {err}"));
    }
    if complete {
        return Phase::Complete(format!(
            "all {total} workers run {expected} and are healthy"
        ));
    }
    if t.db_unknown {
        return Phase::DbUnknown(format!(
            "{}; worker health unknown",
            super::status::unreadable_message(i.db_failure)
        ));
    }
    let too_few = total < min_ready;
    let msg = if too_few {
        format!(
            "{total} workers selected, minReady is {min_ready}{}",
            not_ready(t)
        )
    } else {
        progress_message(t)
    };
    let within = (i.now - last_progress).num_seconds() <= deadline;
    let reason = if t.crashed > 0 || still_crashing(i, t) {
        Reason::WorkersCrashing
    } else if !t.mismatched.is_empty() {
        if within {
            Reason::RolloutInProgress
        } else {
            Reason::VersionMismatch
        }
    } else if too_few {
        if within {
            Reason::WaitingForWorkers
        } else {
            Reason::ProgressDeadlineExceeded
        }
    } else if within && rollout_continues(i) {
        Reason::RolloutInProgress
    } else if within {
        Reason::WorkersUnavailable
    } else {
        Reason::ProgressDeadlineExceeded
    };
    if within {
        Phase::Progressing(reason, msg)
    } else {
        Phase::Stalled(reason, format!("{msg}; no progress for {deadline}s"))
    }
}

/// Every member runs the new version but some are not yet available (up less than
/// minReadySeconds): still the rollout of a new spec (seen now, or rolling before), not
/// a steady fleet that lost a worker.
fn rollout_continues(i: &FleetJudged) -> bool {
    i.previous.is_some_and(|prev| {
        prev.observed_generation != i.generation
            || prev.conditions.iter().any(|c| {
                c.type_ == READY && Reason::parse(&c.reason) == Some(Reason::RolloutInProgress)
            })
    })
}

/// A crash-looping worker between two crashes: it was crashing, the spec is the same,
/// and a member is up but not yet for minReadySeconds. The reason (and the deadline's
/// verdict) stays WorkersCrashing until the restarted worker proves itself.
fn still_crashing(i: &FleetJudged, t: &FleetTally) -> bool {
    let Some(prev) = i.previous else {
        return false;
    };
    let was_crashing = prev
        .conditions
        .iter()
        .any(|c| c.type_ == READY && Reason::parse(&c.reason) == Some(Reason::WorkersCrashing));
    let starting = Cause::ALL.iter().position(|c| *c == Cause::Starting);
    was_crashing
        && prev.observed_generation == i.generation
        && starting.is_some_and(|ix| !t.causes[ix].is_empty())
}

/// `2 of 3 workers run v2 and are healthy`, then every member that is not available by
/// cause, then (when no member runs the fleet's version) what they run instead.
fn progress_message(t: &FleetTally) -> String {
    let mut msg = format!(
        "{} of {} workers run {} and are healthy{}",
        t.updated,
        t.total,
        t.expected,
        not_ready(t)
    );
    if t.total > 0 && !t.versions.contains_key(&t.expected) {
        msg.push_str(&format!(
            "; no worker runs {}; they run {}",
            t.expected,
            most_common_versions(t)
        ));
    }
    msg
}

/// `; not ready: w1, w2 (stale), w3 (version mismatch)`: each cause's first names.
fn not_ready(t: &FleetTally) -> String {
    let groups: Vec<String> = Cause::ALL
        .iter()
        .zip(&t.causes)
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(cause, ids)| format!("{} ({})", first_names(ids), cause.label()))
        .collect();
    if groups.is_empty() {
        String::new()
    } else {
        format!("; not ready: {}", groups.join(", "))
    }
}

/// Versions shown when no member runs the expected one (a typo in spec.version).
const MESSAGE_VERSIONS: usize = 3;

/// `v1 (3), v0 (1)`: the most common versions, then how many more.
fn most_common_versions(t: &FleetTally) -> String {
    let mut all: Vec<(&str, i64)> = t.versions.iter().map(|(v, c)| (v.as_str(), *c)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut listed = all
        .iter()
        .take(MESSAGE_VERSIONS)
        .map(|(v, c)| format!("{} ({c})", bounded_version(v)))
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > MESSAGE_VERSIONS {
        listed.push_str(&format!(" and {} more", all.len() - MESSAGE_VERSIONS));
    }
    listed
}

/// The first [`MESSAGE_NODE_IDS`] ids, then how many more: messages stay short at any size.
fn first_names(ids: &Smallest) -> String {
    let mut names = ids
        .sorted()
        .into_iter()
        .take(MESSAGE_NODE_IDS)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.count() > MESSAGE_NODE_IDS {
        names.push_str(&format!(" and {} more", ids.count() - MESSAGE_NODE_IDS));
    }
    names
}

/// kstatus `Ready`.
fn ready_condition(phase: &Phase) -> Cond {
    let (status, reason, msg) = match phase {
        Phase::InvalidSelector(m) => (ConditionStatus::False, Reason::InvalidSelector, m.as_str()),
        Phase::Complete(m) => (ConditionStatus::True, Reason::RolloutComplete, m.as_str()),
        Phase::DbUnknown(m) => (
            ConditionStatus::Unknown,
            Reason::MetadataDbUnavailable,
            m.as_str(),
        ),
        Phase::Stalled(r, m) | Phase::Progressing(r, m) => (ConditionStatus::False, *r, m.as_str()),
    };
    cond(READY, status, reason, msg)
}

/// kstatus `Reconciling`: True while the operator expects the fleet to move.
fn reconciling_condition(phase: &Phase) -> Cond {
    let (status, reason, msg) = match phase {
        Phase::InvalidSelector(m) => (ConditionStatus::False, Reason::InvalidSelector, m.as_str()),
        Phase::Complete(m) => (ConditionStatus::False, Reason::RolloutComplete, m.as_str()),
        Phase::DbUnknown(m) => (
            ConditionStatus::True,
            Reason::MetadataDbUnavailable,
            m.as_str(),
        ),
        Phase::Stalled(r, m) => (ConditionStatus::False, *r, m.as_str()),
        Phase::Progressing(r, m) => (ConditionStatus::True, *r, m.as_str()),
    };
    cond(RECONCILING, status, reason, msg)
}

/// kstatus `Stalled`: True when only a user can move the fleet on.
fn stalled_condition(phase: &Phase, deadline: i64) -> Cond {
    match phase {
        Phase::InvalidSelector(m) => cond(
            STALLED,
            ConditionStatus::True,
            Reason::InvalidSelector,
            m.as_str(),
        ),
        Phase::Complete(m) => cond(
            STALLED,
            ConditionStatus::False,
            Reason::RolloutComplete,
            m.as_str(),
        ),
        Phase::DbUnknown(m) => cond(
            STALLED,
            ConditionStatus::False,
            Reason::MetadataDbUnavailable,
            m.as_str(),
        ),
        Phase::Stalled(r, m) => cond(STALLED, ConditionStatus::True, *r, m.as_str()),
        Phase::Progressing(..) => cond(
            STALLED,
            ConditionStatus::False,
            Reason::Progressing,
            format!("within the {deadline}s progress deadline"),
        ),
    }
}

/// STATUS (the printer column).
fn state_of(phase: &Phase) -> &'static str {
    match phase {
        Phase::InvalidSelector(_) | Phase::Stalled(..) => "Stalled",
        Phase::Complete(_) => "Ready",
        Phase::DbUnknown(_) => "Unknown",
        Phase::Progressing(..) => "Progressing",
    }
}

fn message_of(s: &AmpWorkerFleetStatus, type_: &str) -> String {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// RolloutStarted / RolloutCompleted / RolloutStalled for what changed. A fleet seen for
/// the first time gets no events (there is no transition to report).
pub fn fleet_events(
    stored: Option<&AmpWorkerFleetStatus>,
    desired: &AmpWorkerFleetStatus,
    version: &str,
) -> Vec<StatusEvent> {
    let rolling = desired.conditions.iter().any(|c| {
        c.type_ == RECONCILING
            && ConditionStatus::parse(&c.status) == ConditionStatus::True
            && Reason::parse(&c.reason) == Some(Reason::RolloutInProgress)
    });
    let Some(stored) = stored.filter(|s| !s.conditions.is_empty()) else {
        // A fleet created in the middle of a rollout: the rollout starts for it now.
        return if rolling && desired.mismatched_count > 0 {
            vec![rollout_started(desired, version)]
        } else {
            Vec::new()
        };
    };
    let was = |t| condition_status(&stored.conditions, t);
    let is = |t| condition_status(&desired.conditions, t);
    let mut events = db_events(stored, desired);
    if rolling && was(RECONCILING) != Some(ConditionStatus::True) {
        events.push(rollout_started(desired, version));
    }
    if is(READY) == Some(ConditionStatus::True) && was(READY) != Some(ConditionStatus::True) {
        events.push(StatusEvent {
            reason: "RolloutCompleted",
            warning: false,
            note: message_of(desired, READY),
        });
    }
    if is(STALLED) == Some(ConditionStatus::True) && was(STALLED) != Some(ConditionStatus::True) {
        events.push(StatusEvent {
            reason: "RolloutStalled",
            warning: true,
            note: message_of(desired, STALLED),
        });
    }
    events.extend(degraded_events(stored, desired));
    events
}

/// One Warning when members start crashing, one when a complete fleet loses a worker
/// without a new rollout (a crash, a hang): what a person is paged for, once per change.
fn degraded_events(
    stored: &AmpWorkerFleetStatus,
    desired: &AmpWorkerFleetStatus,
) -> Vec<StatusEvent> {
    let mut events = Vec::new();
    let ready_reason = |s: &AmpWorkerFleetStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == READY)
            .and_then(|c| Reason::parse(&c.reason))
    };
    // Once per crash loop: the reason stays WorkersCrashing between crashes.
    if ready_reason(desired) == Some(Reason::WorkersCrashing)
        && ready_reason(stored) != Some(Reason::WorkersCrashing)
    {
        events.push(StatusEvent {
            reason: "WorkersCrashing",
            warning: true,
            note: format!(
                "{} worker(s) stopped within {CRASH_RUN_SECS}s of starting: {}",
                desired.crashed_workers,
                message_of(desired, READY)
            ),
        });
    }
    if ready_reason(stored) == Some(Reason::RolloutComplete)
        && ready_reason(desired) == Some(Reason::WorkersUnavailable)
    {
        events.push(StatusEvent {
            reason: "WorkersUnavailable",
            warning: true,
            note: message_of(desired, READY),
        });
    }
    events
}

fn rollout_started(desired: &AmpWorkerFleetStatus, version: &str) -> StatusEvent {
    StatusEvent {
        reason: "RolloutStarted",
        warning: false,
        note: format!(
            "rolling out {version}: {}",
            message_of(desired, RECONCILING)
        ),
    }
}

/// One Warning when the metadata DB becomes unreadable, one Normal when it returns: an
/// outage is otherwise visible only as `Unknown` conditions.
fn db_events(stored: &AmpWorkerFleetStatus, desired: &AmpWorkerFleetStatus) -> Vec<StatusEvent> {
    let db_down = |s: &AmpWorkerFleetStatus| {
        s.conditions.iter().any(|c| {
            c.type_ == READY && Reason::parse(&c.reason) == Some(Reason::MetadataDbUnavailable)
        })
    };
    match (db_down(stored), db_down(desired)) {
        (false, true) => vec![StatusEvent {
            reason: "MetadataDbUnavailable",
            warning: true,
            note: "the metadata DB cannot be read; worker health is Unknown until it returns"
                .into(),
        }],
        (true, false) => vec![StatusEvent {
            reason: "MetadataDbAvailable",
            warning: false,
            note: format!(
                "the metadata DB is readable again: {}",
                message_of(desired, READY)
            ),
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
