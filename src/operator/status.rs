//! Pure status logic for AmpWorker: (DB row, DB clock, spec, previous status) → status.
//!
//! Messages never contain ages or other values that move by themselves, so an unchanged
//! situation produces an identical status and therefore no write.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use super::conditions::{ConditionStatus, Reason};
use super::crd::{AmpWorkerSpec, AmpWorkerStatus, WorkerBuildInfo, WorkerPlacement};
use crate::metadata_db::{LockState, SnapshotRow, WorkerInfo};
use crate::timestamps::{format_timestamp, truncate};

mod fill;
pub use fill::only_fills;

pub const DEFAULT_HEARTBEAT_TIMEOUT_SECS: i64 = 30;
/// `status.placement.source` of a placement the worker reported in its row.
pub const PLACEMENT_FROM_WORKER: &str = "Worker";

pub const REGISTERED: &str = "Registered";
pub const HEALTHY: &str = "Healthy";
pub const VERSION_MATCHED: &str = "VersionMatched";
pub const READY: &str = "Ready";

/// What the operator knows about the metadata DB this cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum DbView {
    /// Read succeeded. `recovered_at` is the DB clock of the first successful read after
    /// an outage: heartbeats are not judged older than that, since workers could not
    /// write while the DB was down (no false fleet-wide alarm after an outage).
    Available {
        db_now: DateTime<Utc>,
        recovered_at: Option<DateTime<Utc>>,
    },
    /// Read failed. `cause` is a stable summary of why (connection refused, TLS failed:
    /// ..., no workers table: run `ampd migrate`), so the conditions say what to fix
    /// without changing text on every attempt.
    Unavailable { cause: Option<&'static str> },
}

impl DbView {
    /// The Unknown conditions' message: what cannot be read, and why.
    pub fn unreadable(&self) -> String {
        unreadable_message(match self {
            DbView::Unavailable { cause } => *cause,
            DbView::Available { .. } => None,
        })
    }
}

/// `the metadata DB cannot be read`, with `(connection refused)` or another cause.
pub fn unreadable_message(cause: Option<&str>) -> String {
    match cause {
        Some(why) => format!("the metadata DB cannot be read ({why})"),
        None => "the metadata DB cannot be read".to_owned(),
    }
}

pub struct WorkerInputs<'a> {
    pub row: Option<&'a SnapshotRow>,
    pub db: &'a DbView,
    pub spec: &'a AmpWorkerSpec,
    /// Version of the fleet selecting this worker, if any.
    pub fleet_version: Option<&'a str>,
    /// Seconds without a heartbeat after which it is Stale ([`heartbeat_timeout`]).
    pub timeout: i64,
    pub previous: Option<&'a AmpWorkerStatus>,
    pub generation: Option<i64>,
    /// Wall clock, only for `lastTransitionTime`.
    pub now: DateTime<Utc>,
}

pub(crate) struct Cond {
    pub(crate) type_: &'static str,
    status: ConditionStatus,
    reason: Reason,
    message: String,
}

pub(crate) fn cond(
    type_: &'static str,
    status: ConditionStatus,
    reason: Reason,
    message: impl Into<String>,
) -> Cond {
    Cond {
        type_,
        status,
        reason,
        message: message.into(),
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The status of the condition of this type, if present.
pub(crate) fn condition_status(conditions: &[Condition], type_: &str) -> Option<ConditionStatus> {
    find(conditions, type_).map(|c| ConditionStatus::parse(&c.status))
}

/// The worker's heartbeat timeout: its own, else its fleet's, else the operator's default.
pub fn heartbeat_timeout(spec: &AmpWorkerSpec, fleet: Option<i64>, default: i64) -> i64 {
    spec.heartbeat_timeout_seconds.or(fleet).unwrap_or(default)
}

/// The expected version: the worker's own spec wins over its fleet.
pub fn expected_version<'a>(
    spec: &'a AmpWorkerSpec,
    fleet_version: Option<&'a str>,
) -> Option<&'a str> {
    spec.expected_version.as_deref().or(fleet_version)
}

/// The status a worker should show: the row mirrored, then one condition at a time
/// (each from its own function below), then STATUS from `Ready`.
pub fn desired_status(i: &WorkerInputs) -> AmpWorkerStatus {
    let prev = i.previous.cloned().unwrap_or_default();
    let mut status = mirror_row(i, prev);
    status.short_commit = status.info.as_ref().and_then(WorkerBuildInfo::short_commit);
    let registered = registered_condition(i, &status.conditions);
    let healthy = healthy_condition(i);
    let version_matched = version_condition(i, status.info.as_ref());
    let ready = ready_condition(i.db, &registered, &healthy, &version_matched);
    status.state = Some(state_of(&ready).to_owned());
    let previous = std::mem::take(&mut status.conditions);
    status.conditions = [registered, healthy, version_matched, ready]
        .into_iter()
        .map(|c| to_condition(c, &previous, i.generation, i.now))
        .collect();
    status
}

/// `prev` with the spec's identity and, when the DB was read, the row's registration,
/// `info`, placement and heartbeat; a newer registration counts a restart.
fn mirror_row(i: &WorkerInputs, prev: AmpWorkerStatus) -> AmpWorkerStatus {
    let mut status = AmpWorkerStatus {
        observed_generation: i.generation,
        node_id: Some(i.spec.node_id.clone()),
        expected_version: expected_version(i.spec, i.fleet_version).map(str::to_owned),
        ..prev
    };
    let (Some(row), DbView::Available { .. }) = (i.row, i.db) else {
        return status;
    };
    let registered_at = truncate(row.registered_at);
    if status
        .registered_at
        .is_some_and(|prev| registered_at > prev)
    {
        status.restart_count += 1;
    }
    status.info = Some(build_info(&row.info));
    status.placement = row.info.placement.as_ref().map(|p| WorkerPlacement {
        pod: p.pod.clone(),
        namespace: p.namespace.clone(),
        node: p.node.clone(),
        pod_ip: p.pod_ip.clone(),
        source: Some(PLACEMENT_FROM_WORKER.to_owned()),
    });
    status.created_at = Some(truncate(row.created_at));
    status.registered_at = Some(registered_at);
    status.heartbeat_at = Some(truncate(row.heartbeat_at));
    status
}

fn build_info(info: &WorkerInfo) -> WorkerBuildInfo {
    WorkerBuildInfo {
        version: info.version.clone(),
        commit_sha: info.commit_sha.clone(),
        // Already in the whole-second `Z` form, like every other timestamp in the
        // status: the row decoder normalises it (`metadata_db::WorkerInfo::from_json`).
        commit_timestamp: info.commit_timestamp.clone(),
        build_date: info.build_date.clone(),
    }
}

/// `Registered`: whether the node id has a row; while the DB cannot be read, what was
/// known before.
fn registered_condition(i: &WorkerInputs, previous: &[Condition]) -> Cond {
    match (i.db, i.row) {
        (DbView::Unavailable { .. }, _) => match find(previous, REGISTERED) {
            // What was known before the outage; an Unknown of an earlier outage (or an
            // earlier cause) says this one's cause, like every other condition.
            Some(c) if Reason::parse(&c.reason) != Some(Reason::MetadataDbUnavailable) => Cond {
                type_: REGISTERED,
                status: ConditionStatus::parse(&c.status),
                // A reason that is not ours (someone edited the status) says only
                // what is known now.
                reason: Reason::parse(&c.reason).unwrap_or(Reason::MetadataDbUnavailable),
                message: c.message.clone(),
            },
            _ => cond(
                REGISTERED,
                ConditionStatus::Unknown,
                Reason::MetadataDbUnavailable,
                i.db.unreadable(),
            ),
        },
        (DbView::Available { .. }, None) => cond(
            REGISTERED,
            ConditionStatus::False,
            Reason::NotRegistered,
            format!("no row for node id {:?} in the metadata DB", i.spec.node_id),
        ),
        (DbView::Available { .. }, Some(_)) => cond(
            REGISTERED,
            ConditionStatus::True,
            Reason::WorkerRegistered,
            "the node id has a row in the metadata DB",
        ),
    }
}

/// `Healthy`: Unknown while the DB cannot be read, False without a row, else the
/// row's [`Health`].
fn healthy_condition(i: &WorkerInputs) -> Cond {
    match (i.db, i.row) {
        (DbView::Unavailable { .. }, _) => cond(
            HEALTHY,
            ConditionStatus::Unknown,
            Reason::MetadataDbUnavailable,
            format!("{}; heartbeat unknown", i.db.unreadable()),
        ),
        (DbView::Available { .. }, None) => cond(
            HEALTHY,
            ConditionStatus::False,
            Reason::NotRegistered,
            "the worker is not registered",
        ),
        (
            DbView::Available {
                db_now,
                recovered_at,
            },
            Some(row),
        ) => {
            let health = judge_health(row, *db_now, *recovered_at, i.timeout);
            health_condition(health, row, i.timeout)
        }
    }
}

/// `VersionMatched`: the reported version against the expected one (the worker's own,
/// else its fleet's).
fn version_condition(i: &WorkerInputs, info: Option<&WorkerBuildInfo>) -> Cond {
    let version = info.and_then(|info| info.version.as_deref());
    match (expected_version(i.spec, i.fleet_version), version) {
        (None, _) => cond(
            VERSION_MATCHED,
            ConditionStatus::Unknown,
            Reason::NoExpectedVersion,
            "no expectedVersion set and no fleet selects this worker",
        ),
        (Some(expected), _) if info.is_none() => cond(
            VERSION_MATCHED,
            ConditionStatus::Unknown,
            Reason::NotRegistered,
            format!("expected {expected}; the worker's version is not known yet"),
        ),
        (Some(expected), Some(v)) if v == expected => cond(
            VERSION_MATCHED,
            ConditionStatus::True,
            Reason::VersionMatches,
            format!("running the expected version {v}"),
        ),
        (Some(expected), v) => cond(
            VERSION_MATCHED,
            ConditionStatus::False,
            Reason::VersionMismatch,
            format!(
                "running {}, expected {expected}",
                v.unwrap_or("an unknown version")
            ),
        ),
    }
}

/// `Ready`: the first condition that is not fine decides, in the order a user fixes
/// them (DB, registration, heartbeat, version).
fn ready_condition(db: &DbView, registered: &Cond, healthy: &Cond, version_matched: &Cond) -> Cond {
    if healthy.status == ConditionStatus::Unknown {
        cond(
            READY,
            ConditionStatus::Unknown,
            Reason::MetadataDbUnavailable,
            db.unreadable(),
        )
    } else if registered.status != ConditionStatus::True {
        let message = registered.message.clone();
        cond(
            READY,
            ConditionStatus::False,
            Reason::NotRegistered,
            message,
        )
    } else if healthy.status != ConditionStatus::True {
        let message = healthy.message.clone();
        cond(READY, ConditionStatus::False, healthy.reason, message)
    } else if version_matched.status == ConditionStatus::False {
        let message = version_matched.message.clone();
        cond(
            READY,
            ConditionStatus::False,
            Reason::VersionMismatch,
            message,
        )
    } else {
        cond(
            READY,
            ConditionStatus::True,
            Reason::WorkerReady,
            "registered, heartbeating and on the expected version",
        )
    }
}

/// STATUS (the printer column) from `Ready`.
fn state_of(ready: &Cond) -> &'static str {
    match (ready.status, ready.reason) {
        (ConditionStatus::True, _) => "Ready",
        (ConditionStatus::Unknown, _) => "Unknown",
        (_, Reason::NotRegistered) => "NotRegistered",
        (_, Reason::HeartbeatStale) => "Stale",
        (_, Reason::WorkerStopped) => "Stopped",
        (_, Reason::VersionMismatch) => "VersionMismatch",
        _ => "Unknown",
    }
}

/// What a row's lock and heartbeat say, before any message is written: the planner
/// compares this from one cycle to the next and builds a status only when it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Fresh,
    Stale,
    /// No session holds the node id lock: the worker stopped (cleanly, or its session
    /// is gone).
    Stopped,
}

/// A worker whose node id lock no session holds has stopped, at once; one holding it is
/// judged by heartbeat age (from the DB's return, right after an outage).
pub fn judge_health(
    row: &SnapshotRow,
    db_now: DateTime<Utc>,
    recovered_at: Option<DateTime<Utc>>,
    timeout: i64,
) -> Health {
    // Right after a DB outage workers are still reconnecting: their locks come back with
    // their first heartbeat, so a free lock says nothing until then.
    let reconnecting = recovered_at.is_some_and(|r| row.heartbeat_at < r);
    if row.lock == LockState::Free && !reconnecting {
        return Health::Stopped;
    }
    let judged_from = recovered_at.map_or(row.heartbeat_at, |r| r.max(row.heartbeat_at));
    if (db_now - judged_from).num_milliseconds() <= timeout * 1000 {
        Health::Fresh
    } else {
        Health::Stale
    }
}

fn health_condition(health: Health, row: &SnapshotRow, timeout: i64) -> Cond {
    match health {
        Health::Stopped => cond(
            HEALTHY,
            ConditionStatus::False,
            Reason::WorkerStopped,
            format!(
                "no process holds the node id (its lock is free): the worker stopped; last heartbeat at {}",
                format_timestamp(&row.heartbeat_at)
            ),
        ),
        Health::Fresh => cond(
            HEALTHY,
            ConditionStatus::True,
            Reason::HeartbeatFresh,
            format!("heartbeat within the {timeout}s timeout"),
        ),
        Health::Stale => cond(
            HEALTHY,
            ConditionStatus::False,
            Reason::HeartbeatStale,
            format!(
                "no heartbeat for more than {timeout}s (last at {})",
                format_timestamp(&row.heartbeat_at)
            ),
        ),
    }
}

/// `lastTransitionTime` moves only when the condition's status changes.
pub(crate) fn to_condition(
    c: Cond,
    previous: &[Condition],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Condition {
    let last_transition_time = match find(previous, c.type_) {
        Some(p) if p.status == c.status.as_str() => p.last_transition_time.clone(),
        _ => Time(truncate_to_k8s(now)),
    };
    Condition {
        type_: c.type_.to_owned(),
        status: c.status.as_str().to_owned(),
        reason: c.reason.as_str().to_owned(),
        message: c.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// metav1.Time has whole-second precision on the wire; keep it so comparisons are stable.
fn truncate_to_k8s(t: DateTime<Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).expect("a chrono timestamp fits jiff")
}

/// Why a desired status differs from the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteNeed {
    /// Nothing to write.
    None,
    /// Something a user can see changed (condition, state, version, restart, a first
    /// status): written at once, never held back by the refresh budget.
    Transition,
    /// Only `heartbeatAt` moved, by at least the refresh interval: written when the
    /// refresh budget allows.
    Refresh,
    /// The stored status only lacks what this operator adds ([`only_fills`]; e.g. after
    /// an upgrade): the whole status is written when the refresh budget allows.
    Fill,
}

/// Classifies `desired` against `stored`: any user-visible change is a transition; only
/// absent parts filled in is a fill; a `heartbeatAt` alone at least `refresh` newer than
/// the stored one is a refresh.
pub fn write_need(
    stored: Option<&AmpWorkerStatus>,
    desired: &AmpWorkerStatus,
    refresh: chrono::Duration,
) -> WriteNeed {
    let Some(stored) = stored else {
        return WriteNeed::Transition;
    };
    let mut without_heartbeat = stored.clone();
    without_heartbeat.heartbeat_at = desired.heartbeat_at;
    if without_heartbeat != *desired {
        return if only_fills(stored, desired) {
            WriteNeed::Fill
        } else {
            WriteNeed::Transition
        };
    }
    let due = match (stored.heartbeat_at, desired.heartbeat_at) {
        (Some(old), Some(new)) => new - old >= refresh,
        (None, Some(_)) => true,
        _ => false,
    };
    if due {
        WriteNeed::Refresh
    } else {
        WriteNeed::None
    }
}

/// Whether `desired` must be written over `stored` at all (transition or due refresh).
pub fn needs_write(
    stored: Option<&AmpWorkerStatus>,
    desired: &AmpWorkerStatus,
    refresh: chrono::Duration,
) -> bool {
    write_need(stored, desired, refresh) != WriteNeed::None
}

/// An event to publish for a transition (of an AmpWorker or a fleet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    pub reason: &'static str,
    pub warning: bool,
    pub note: String,
}

/// One Warning when the row's `info` had to be cut to fit a Kubernetes object, published
/// with the write that first shows the cut value (a status that already shows it is
/// stored, so later cycles stay quiet).
pub fn info_cut_events(
    row: Option<&SnapshotRow>,
    stored: Option<&AmpWorkerStatus>,
    desired: &AmpWorkerStatus,
) -> Vec<StatusEvent> {
    let Some(row) = row.filter(|r| !r.info.oversized.is_empty()) else {
        return Vec::new();
    };
    if stored.is_some_and(|s| s.info == desired.info) {
        return Vec::new();
    }
    let fields: Vec<String> = row
        .info
        .oversized
        .iter()
        .map(|(key, len)| format!("info.{key} ({len} bytes)"))
        .collect();
    vec![StatusEvent {
        reason: "InfoTruncated",
        warning: true,
        note: format!(
            "the metadata DB row of worker {} has {}; the status shows the first {} bytes",
            row.node_id,
            fields.join(", "),
            crate::metadata_db::MAX_INFO_FIELD_BYTES
        ),
    }]
}

/// Where a worker's expected version comes from: a fleet's rollout is reported by the
/// fleet (one event per rollout), a worker's own expectedVersion by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedFrom {
    Worker,
    Fleet,
}

/// Events for what changed between the stored and the desired status.
pub fn transition_events(
    stored: Option<&AmpWorkerStatus>,
    desired: &AmpWorkerStatus,
    expected_from: ExpectedFrom,
) -> Vec<StatusEvent> {
    let Some(stored) = stored else {
        return Vec::new();
    };
    let mut events = health_events(stored, desired);
    events.extend(registration_events(stored, desired));
    if expected_from == ExpectedFrom::Worker {
        events.extend(version_events(stored, desired));
    }
    events
}

fn healthy_note(desired: &AmpWorkerStatus) -> String {
    find(&desired.conditions, HEALTHY)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn is_stopped(s: &AmpWorkerStatus) -> bool {
    s.state.as_deref() == Some("Stopped")
}

/// WorkerStopped (Normal), WorkerStale (Warning), WorkerRecovered.
fn health_events(stored: &AmpWorkerStatus, desired: &AmpWorkerStatus) -> Vec<StatusEvent> {
    let node = desired.node_id.as_deref().unwrap_or("?");
    let mut events = Vec::new();
    if is_stopped(desired) && !is_stopped(stored) {
        // A clean stop (or a lost session) is an operation, not an alarm.
        events.push(StatusEvent {
            reason: "WorkerStopped",
            warning: false,
            note: healthy_note(desired),
        });
    }
    match (
        condition_status(&stored.conditions, HEALTHY),
        condition_status(&desired.conditions, HEALTHY),
    ) {
        (Some(ConditionStatus::True), Some(ConditionStatus::False)) if !is_stopped(desired) => {
            events.push(StatusEvent {
                reason: "WorkerStale",
                warning: true,
                note: healthy_note(desired),
            })
        }
        (Some(ConditionStatus::False), Some(ConditionStatus::True)) => events.push(StatusEvent {
            reason: "WorkerRecovered",
            warning: false,
            note: format!("worker {node} is heartbeating again"),
        }),
        _ => {}
    }
    events
}

/// WorkerRestarted, VersionChanged.
fn registration_events(stored: &AmpWorkerStatus, desired: &AmpWorkerStatus) -> Vec<StatusEvent> {
    let node = desired.node_id.as_deref().unwrap_or("?");
    let mut events = Vec::new();
    if desired.restart_count > stored.restart_count {
        events.push(StatusEvent {
            reason: "WorkerRestarted",
            warning: false,
            note: format!(
                "worker {node} re-registered at {}",
                desired
                    .registered_at
                    .map_or_else(|| "?".to_owned(), |t| format_timestamp(&t))
            ),
        });
    }
    let version = |s: &AmpWorkerStatus| s.info.as_ref().and_then(|i| i.version.clone());
    if let (Some(old), Some(new)) = (version(stored), version(desired))
        && old != new
    {
        events.push(StatusEvent {
            reason: "VersionChanged",
            warning: false,
            note: format!("version changed from {old} to {new}"),
        });
    }
    events
}

/// VersionMismatch (Warning), for a worker whose own spec names the version: a fleet's
/// rollout mismatches every worker for a while, and says so once, on the fleet.
fn version_events(stored: &AmpWorkerStatus, desired: &AmpWorkerStatus) -> Vec<StatusEvent> {
    if condition_status(&desired.conditions, VERSION_MATCHED) == Some(ConditionStatus::False)
        && condition_status(&stored.conditions, VERSION_MATCHED) != Some(ConditionStatus::False)
    {
        return vec![StatusEvent {
            reason: "VersionMismatch",
            warning: true,
            note: find(&desired.conditions, VERSION_MATCHED)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        }];
    }
    Vec::new()
}

pub mod jobs;

#[cfg(test)]
mod tests;
