//! Pure status logic for AmpWorkerFleet: (spec, selected workers' statuses, clock,
//! previous status) → status, with kstatus conditions `Ready`, `Reconciling`, `Stalled`.
//!
//! Like worker statuses, messages carry only counts and names, never ages, so a fleet
//! that is not changing produces an identical status and no write.

use chrono::{DateTime, Utc};

use super::crd::{AmpWorkerFleetSpec, AmpWorkerFleetStatus, AmpWorkerStatus, VersionCount};
use super::status::{
    ConditionStatus, HEALTHY, READY, REGISTERED, Reason, StatusEvent, cond, condition_status,
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
fn version_distribution<'a>(versions: impl Iterator<Item = &'a str>) -> (Vec<VersionCount>, i64) {
    let mut counts: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for v in versions {
        *counts.entry(v).or_default() += 1;
    }
    let mut all: Vec<(&str, i64)> = counts.into_iter().collect();
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
    /// Why the metadata DB cannot be read when TLS to it failed (see `DbView`).
    pub db_tls_failure: Option<&'a str>,
}

fn is_healthy(w: &AmpWorkerStatus) -> bool {
    condition_status(&w.conditions, REGISTERED) == Some(ConditionStatus::True)
        && condition_status(&w.conditions, HEALTHY) == Some(ConditionStatus::True)
}

fn is_ready(w: &AmpWorkerStatus) -> bool {
    condition_status(&w.conditions, READY) == Some(ConditionStatus::True)
}

fn is_stopped(w: &AmpWorkerStatus) -> bool {
    w.state.as_deref() == Some("Stopped")
}

/// Sorted node ids of `workers`.
fn node_ids<'a>(workers: impl Iterator<Item = &'a &'a AmpWorkerStatus>) -> Vec<String> {
    let mut ids: Vec<String> = workers
        .map(|w| w.node_id.clone().unwrap_or_default())
        .collect();
    ids.sort();
    ids
}

/// The first [`MESSAGE_NODE_IDS`] ids, then how many more: messages stay short at any size.
fn first_names(ids: &[String]) -> String {
    let mut names = ids
        .iter()
        .take(MESSAGE_NODE_IDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > MESSAGE_NODE_IDS {
        names.push_str(&format!(" and {} more", ids.len() - MESSAGE_NODE_IDS));
    }
    names
}

fn version_of(w: &AmpWorkerStatus) -> &str {
    w.info
        .as_ref()
        .and_then(|i| i.version.as_deref())
        .unwrap_or("unknown")
}

pub fn desired_fleet_status(i: &FleetInputs) -> AmpWorkerFleetStatus {
    let prev = i.previous.cloned().unwrap_or_default();
    let expected = i.spec.version.as_str();
    let min_ready = i.spec.min_ready.unwrap_or(DEFAULT_MIN_READY).max(0);
    let deadline = i
        .spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECS);

    // A stopped worker (no process holds its node id) is retired or between runs: the
    // fleet judges the workers that run, and minReady still guards the rollout.
    let members: Vec<&AmpWorkerStatus> = i
        .workers
        .iter()
        .copied()
        .filter(|w| !is_stopped(w))
        .collect();
    let total = members.len() as i64;
    let ready = members.iter().filter(|w| is_ready(w)).count() as i64;
    let updated = members
        .iter()
        .filter(|w| is_healthy(w) && version_of(w) == expected)
        .count() as i64;
    let db_unknown = i
        .workers
        .iter()
        .any(|w| condition_status(&w.conditions, HEALTHY) == Some(ConditionStatus::Unknown));

    let (versions, unlisted_version_workers) =
        version_distribution(members.iter().map(|w| version_of(w)));
    let mut mismatched = node_ids(members.iter().filter(|w| version_of(w) != expected));
    let not_ready = node_ids(members.iter().filter(|w| !is_ready(w)));

    let complete =
        i.selector_error.is_none() && !db_unknown && updated == total && updated >= min_ready;
    let was_complete = condition_status(&prev.conditions, READY) == Some(ConditionStatus::True);
    let generation_changed = prev.observed_generation != i.generation;
    // The deadline runs from the last progress: a new spec, more updated workers, or the
    // moment a complete fleet stopped being complete (a worker died, a new one joined).
    let fell_incomplete = was_complete && !complete;
    let progressed = generation_changed || updated > prev.updated_workers || fell_incomplete;
    let last_progress = match prev.last_progress_time {
        Some(t) if !progressed => t,
        _ => i.now,
    };
    let past_deadline = (i.now - last_progress).num_seconds() > deadline;

    let mut progress_msg = format!("{updated} of {total} workers run {expected} and are healthy");
    if !not_ready.is_empty() {
        progress_msg.push_str(&format!("; not ready: {}", first_names(&not_ready)));
    }
    let (state, ready_c, reconciling_c, stalled_c) = if let Some(err) = i.selector_error {
        let msg = format!("spec.selector is invalid: {err}");
        (
            "Stalled",
            cond(
                READY,
                ConditionStatus::False,
                Reason::InvalidSelector,
                msg.clone(),
            ),
            cond(
                RECONCILING,
                ConditionStatus::False,
                Reason::InvalidSelector,
                msg.clone(),
            ),
            cond(STALLED, ConditionStatus::True, Reason::InvalidSelector, msg),
        )
    } else if complete {
        let msg = format!("all {total} workers run {expected} and are healthy");
        (
            "Ready",
            cond(
                READY,
                ConditionStatus::True,
                Reason::RolloutComplete,
                msg.clone(),
            ),
            cond(
                RECONCILING,
                ConditionStatus::False,
                Reason::RolloutComplete,
                msg.clone(),
            ),
            cond(
                STALLED,
                ConditionStatus::False,
                Reason::RolloutComplete,
                msg,
            ),
        )
    } else if db_unknown {
        let msg = format!(
            "{}; worker health unknown",
            super::status::unreadable_message(i.db_tls_failure)
        );
        (
            "Unknown",
            cond(
                READY,
                ConditionStatus::Unknown,
                Reason::MetadataDbUnavailable,
                msg.clone(),
            ),
            cond(
                RECONCILING,
                ConditionStatus::True,
                Reason::MetadataDbUnavailable,
                msg.clone(),
            ),
            cond(
                STALLED,
                ConditionStatus::False,
                Reason::MetadataDbUnavailable,
                msg,
            ),
        )
    } else if past_deadline {
        let (reason, msg) = if mismatched.is_empty() {
            let msg = if total < min_ready {
                format!(
                    "{total} workers selected, minReady is {min_ready}; no progress for {deadline}s"
                )
            } else {
                format!("{progress_msg}; no progress for {deadline}s")
            };
            (Reason::ProgressDeadlineExceeded, msg)
        } else {
            (
                Reason::VersionMismatch,
                format!(
                    "{} of {total} workers not on {expected} after {deadline}s: {}",
                    mismatched.len(),
                    first_names(&mismatched)
                ),
            )
        };
        (
            "Stalled",
            cond(READY, ConditionStatus::False, reason, msg.clone()),
            cond(RECONCILING, ConditionStatus::False, reason, msg.clone()),
            cond(STALLED, ConditionStatus::True, reason, msg),
        )
    } else {
        let (reason, msg) = if total < min_ready {
            (
                Reason::WaitingForWorkers,
                format!("{total} workers selected, minReady is {min_ready}"),
            )
        } else {
            (Reason::RolloutInProgress, progress_msg)
        };
        (
            "Progressing",
            cond(READY, ConditionStatus::False, reason, msg.clone()),
            cond(RECONCILING, ConditionStatus::True, reason, msg),
            cond(
                STALLED,
                ConditionStatus::False,
                Reason::Progressing,
                format!("within the {deadline}s progress deadline"),
            ),
        )
    };

    let mismatched_count = mismatched.len() as i64;
    mismatched.truncate(MAX_LISTED_MISMATCHED);
    AmpWorkerFleetStatus {
        observed_generation: i.generation,
        state: Some(state.to_owned()),
        workers: total,
        ready_workers: ready,
        updated_workers: updated,
        ready_summary: Some(format!("{ready}/{total}")),
        versions,
        unlisted_version_workers,
        mismatched,
        mismatched_count,
        last_progress_time: Some(truncate(last_progress)),
        conditions: [ready_c, reconciling_c, stalled_c]
            .into_iter()
            .map(|c| to_condition(c, &prev.conditions, i.generation, i.now))
            .collect(),
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
