//! The remediation step: for each fleet with `spec.remediation` on, which hung workers'
//! Pods to delete this cycle (oldest hang first, one at a time per the fleet's rate
//! limit), which due workers are skipped and why, and the fleet's RemediationAllowed
//! condition. Each decision is [`remediation::decide`]'s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use super::super::cache::CachedWorker;
use super::super::crd::{AmpWorkerFleetStatus, FleetRemediation, RemediationMode, RemediationSpec};
use super::super::pods::{PodLink, WorkerPod, controller_of};
use super::super::remediation::{
    self, Decision, History, Inputs, PodFacts, SkipReason, WorkerHealth,
};
use super::super::status::{ConditionStatus, DbView, Health, StatusEvent, judge_health};
use super::fleets::FleetSel;
use super::judge::effective_db_for;
use super::pods::FleetPodTally;
use super::{Cycle, Plan};
use crate::metadata_db::{LockState, SnapshotRow};
use crate::timestamps::format_timestamp;

/// The fleet condition saying whether hung workers may be restarted now.
pub const REMEDIATION_ALLOWED: &str = "RemediationAllowed";
/// The Warning event when remediation pauses (published once, with the transition).
pub const REMEDIATION_PAUSED_REASON: &str = "RemediationPaused";
/// RemediationAllowed's reason while too many members are Stale.
pub const TOO_MANY_UNHEALTHY: &str = "TooManyUnhealthy";
/// Reasons of the Warning events on a restarted worker and its Pod.
pub const RESTARTED_REASON: &str = "HungWorkerRestarted";
pub const DRY_RUN_REASON: &str = "HungWorkerRestartDryRun";

/// What the operator remembers of past remediations (restarts and dry runs), by node
/// id and by fleet name: the back-off and the rate limit. Restarts are also in each
/// AmpWorker's status, which seeds this after a restart of the operator.
#[derive(Debug, Default, Clone)]
pub struct RemediationHistory {
    pub workers: HashMap<String, WorkerRemediations>,
    pub fleets: HashMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerRemediations {
    /// Every attempt, dry runs included: the back-off.
    pub attempts: History,
    /// Pod deletions only: what the AmpWorker's status records.
    pub restarts: Option<History>,
}

/// Delete a hung worker's Pod (or, in a dry run, only say so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemediationAction {
    pub fleet: String,
    pub worker: String,
    pub worker_uid: Option<String>,
    pub node_id: String,
    pub pod: String,
    pub pod_uid: Option<String>,
    pub dry_run: bool,
    /// The restarts the AmpWorker's status records (counting goes on from there).
    pub recorded: Option<History>,
    /// Why, for the events: the hang, the delay, the Pod's controller.
    pub note: String,
}

/// A worker of a fleet with remediation on, as met by the judgement loop.
pub(super) struct Candidate<'a> {
    pub(super) worker: &'a CachedWorker,
    pub(super) row: Option<&'a SnapshotRow>,
    /// Its heartbeat timeout (its own, its fleet's or the operator's default).
    pub(super) timeout: i64,
}

/// The fleet-level outcome: `status.remediation` and RemediationAllowed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FleetOutcome {
    pub(super) summary: FleetRemediation,
    status: ConditionStatus,
    reason: &'static str,
    message: String,
}

/// Decides for every candidate of every fleet with remediation on.
pub(super) fn plan_remediation<'a>(
    c: &Cycle<'a>,
    fleets: &[FleetSel],
    pods: &[FleetPodTally<'a>],
    candidates: Vec<Vec<Candidate<'a>>>,
    history: &RemediationHistory,
    plan: &mut Plan,
) -> Vec<Option<FleetOutcome>> {
    fleets
        .iter()
        .zip(pods)
        .zip(candidates)
        .map(|((f, pods), candidates)| {
            let spec = f.fleet.spec.remediation.as_ref()?;
            (spec.mode != RemediationMode::Off)
                .then(|| plan_fleet(c, f, spec, pods, candidates, history, plan))
        })
        .collect()
}

fn plan_fleet<'a>(
    c: &Cycle<'a>,
    f: &FleetSel,
    spec: &RemediationSpec,
    pods: &FleetPodTally<'a>,
    candidates: Vec<Candidate<'a>>,
    history: &RemediationHistory,
    plan: &mut Plan,
) -> FleetOutcome {
    let fleet = f.fleet.name_any();
    let mut judged: Vec<(Candidate, WorkerHealth)> = candidates
        .into_iter()
        .map(|cand| {
            let health = health_of(c, &cand);
            (cand, health)
        })
        .collect();
    let members = judged
        .iter()
        .filter(|(_, h)| matches!(h, WorkerHealth::Fresh | WorkerHealth::Stale { .. }))
        .count() as i64;
    let unhealthy = judged
        .iter()
        .filter(|(_, h)| matches!(h, WorkerHealth::Stale { .. }))
        .count() as i64;
    let max_unhealthy = remediation::resolve_max_unhealthy(spec.max_unhealthy.as_ref(), members);
    // Oldest hang first: the rate limit lets the longest-stuck worker go first.
    judged.sort_by_key(|(cand, h)| (stale_since(h), cand.worker.spec.node_id.clone()));
    let mut fleet_last = history.fleets.get(&fleet).copied();
    for (cand, health) in judged {
        let node_id = cand.worker.spec.node_id.as_str();
        let link = pods.index.as_ref().and_then(|ix| ix.link(node_id));
        let inputs = Inputs {
            mode: spec.mode,
            leader: true,
            health,
            db_now: c.db_now,
            recovered_at: match c.input.db {
                DbView::Available { recovered_at, .. } => *recovered_at,
                DbView::Unavailable { .. } => None,
            },
            stale_after: remediation::stale_after(spec),
            unhealthy,
            max_unhealthy: max_unhealthy.clone(),
            pod: pod_facts(link, pods),
            history: history
                .workers
                .get(node_id)
                .map(|h| h.attempts)
                .or_else(|| recorded(cand.worker)),
            fleet_last,
            min_interval: remediation::min_interval(spec),
            now: c.input.now,
        };
        match remediation::decide(&inputs) {
            Decision::Act { dry_run } => {
                let Some(PodLink::One(pod)) = link else {
                    continue;
                };
                fleet_last = Some(c.input.now);
                plan.remediations
                    .push(action(&fleet, cand.worker, pod, dry_run, &inputs));
            }
            Decision::Skip(reason) if reason.is_due() => {
                plan.remediation_skips
                    .push((cand.worker.spec.node_id.clone(), reason));
            }
            Decision::Skip(_) => {}
        }
    }
    outcome(c, spec, pods, unhealthy, max_unhealthy)
}

/// The restarts the AmpWorker's status records (what a new leader starts from).
fn recorded(w: &CachedWorker) -> Option<History> {
    let (last, count) = w.status.as_ref()?.remediation();
    Some(History {
        last: last?,
        count: count.unwrap_or(1),
    })
}

fn stale_since(h: &WorkerHealth) -> Option<DateTime<Utc>> {
    match h {
        WorkerHealth::Stale { since } => Some(*since),
        _ => None,
    }
}

/// The worker's health by the DB clock, and since when it is Stale (its last
/// heartbeat, or the DB's return after an outage, plus its timeout).
fn health_of(c: &Cycle, cand: &Candidate) -> WorkerHealth {
    let Some(row) = cand.row else {
        return match c.input.db {
            DbView::Available { .. } => WorkerHealth::NotRegistered,
            DbView::Unavailable { .. } => WorkerHealth::Unknown,
        };
    };
    let DbView::Available {
        db_now,
        recovered_at,
    } = effective_db_for(c, Some(row), cand.timeout)
    else {
        return WorkerHealth::Unknown;
    };
    let timeout = cand.timeout;
    match judge_health(row, db_now, recovered_at, timeout) {
        Health::Fresh => WorkerHealth::Fresh,
        Health::Stopped => WorkerHealth::Stopped,
        // Judged Stale while reconnecting after an outage, but no session holds the
        // lock: nothing hangs there; only a held lock is a hung process.
        Health::Stale if row.lock == LockState::Free => WorkerHealth::Stopped,
        Health::Stale => {
            let from = recovered_at.map_or(row.heartbeat_at, |r| r.max(row.heartbeat_at));
            WorkerHealth::Stale {
                since: from + chrono::Duration::seconds(timeout),
            }
        }
    }
}

fn pod_facts(link: Option<PodLink>, pods: &FleetPodTally) -> PodFacts {
    match link {
        None => PodFacts::Missing,
        Some(PodLink::Ambiguous) => PodFacts::Ambiguous,
        Some(PodLink::One(pod)) => PodFacts::Found {
            // The index holds only selected Pods of the fleet's namespace; asked again so
            // the rule does not rest on how the index was built.
            in_scope: pods.index.is_some()
                && pod.metadata.namespace.as_deref() == Some(pods.namespace.as_str()),
            controlled: controller_of(pod).is_some(),
            terminating: pod.deletion_timestamp.is_some(),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0)),
        },
    }
}

fn action(
    fleet: &str,
    w: &CachedWorker,
    pod: &WorkerPod,
    dry_run: bool,
    i: &Inputs,
) -> RemediationAction {
    let since = stale_since(&i.health).map_or_else(String::new, |s| format_timestamp(&s));
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let owner = controller_of(pod).unwrap_or_default();
    let verb = if dry_run {
        "dry run: would delete"
    } else {
        "deleting"
    };
    RemediationAction {
        fleet: fleet.to_owned(),
        worker: w.name_any(),
        worker_uid: w.metadata.uid.clone(),
        node_id: w.spec.node_id.clone(),
        pod_uid: pod.metadata.uid.clone(),
        dry_run,
        recorded: recorded(w),
        note: format!(
            "worker {:?} has been Stale (process holds the node id, no heartbeat) since {since} \
             by the metadata DB's clock, longer than restartStaleAfterSeconds ({}s); {verb} \
             Pod {pod_name:?} so that {owner} recreates it under the same name (fleet {fleet})",
            w.spec.node_id,
            i.stale_after.num_seconds(),
        ),
        pod: pod_name,
    }
}

fn outcome(
    c: &Cycle,
    spec: &RemediationSpec,
    pods: &FleetPodTally,
    unhealthy: i64,
    max: Result<i64, String>,
) -> FleetOutcome {
    let summary = FleetRemediation {
        unhealthy,
        max_unhealthy: *max.as_ref().unwrap_or(&0),
    };
    let (status, reason, message) = if c.db_now.is_none() {
        (
            ConditionStatus::Unknown,
            "MetadataDbUnavailable",
            "the metadata DB cannot be read: no worker is restarted".to_owned(),
        )
    } else if pods.index.is_none() {
        (
            ConditionStatus::False,
            "NoPodSelector",
            "spec.remediation needs a valid spec.podSelector to find the workers' Pods".to_owned(),
        )
    } else if let Err(e) = &max {
        (ConditionStatus::False, "InvalidMaxUnhealthy", e.clone())
    } else if unhealthy > summary.max_unhealthy {
        (
            ConditionStatus::False,
            TOO_MANY_UNHEALTHY,
            format!(
                "{unhealthy} members are Stale, more than maxUnhealthy ({}): something systemic is wrong, no worker is restarted until fewer are",
                summary.max_unhealthy
            ),
        )
    } else {
        let mode = match spec.mode {
            RemediationMode::DryRun => "dry run: hung workers are reported, not restarted",
            _ => "hung workers are restarted",
        };
        (ConditionStatus::True, "RemediationAllowed", mode.to_owned())
    };
    FleetOutcome {
        summary,
        status,
        reason,
        message,
    }
}

/// Adds `status.remediation` and RemediationAllowed (or removes them when remediation
/// is off); the Warning when remediation pauses, once, with the transition.
pub(super) fn apply_fleet_outcome(
    desired: &mut AmpWorkerFleetStatus,
    stored: Option<&AmpWorkerFleetStatus>,
    outcome: Option<FleetOutcome>,
    now: DateTime<Utc>,
    generation: Option<i64>,
) -> Vec<StatusEvent> {
    desired
        .conditions
        .retain(|c| c.type_ != REMEDIATION_ALLOWED);
    let Some(o) = outcome else {
        desired.remediation = None;
        return Vec::new();
    };
    let before = stored.and_then(|s| s.conditions.iter().find(|c| c.type_ == REMEDIATION_ALLOWED));
    let last_transition_time = match before {
        Some(b) if b.status == o.status.as_str() => b.last_transition_time.clone(),
        _ => k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(now.timestamp())
                .expect("a chrono timestamp fits jiff"),
        ),
    };
    let paused = o.status == ConditionStatus::False && o.reason == TOO_MANY_UNHEALTHY;
    let was_paused = before.is_some_and(|b| b.status == "False" && b.reason == TOO_MANY_UNHEALTHY);
    let events = if paused && !was_paused {
        vec![StatusEvent {
            reason: REMEDIATION_PAUSED_REASON,
            warning: true,
            note: o.message.clone(),
        }]
    } else {
        Vec::new()
    };
    desired.conditions.push(Condition {
        type_: REMEDIATION_ALLOWED.to_owned(),
        status: o.status.as_str().to_owned(),
        reason: o.reason.to_owned(),
        message: o.message,
        observed_generation: generation,
        last_transition_time,
    });
    desired.remediation = Some(o.summary);
    events
}

/// A skip counted for the metrics: `(node id, reason)`.
pub type RemediationSkip = (String, SkipReason);
