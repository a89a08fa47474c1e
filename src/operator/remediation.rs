//! Whether to restart a hung worker (delete its Pod), decided without side effects.
//!
//! The rules follow Cluster API's MachineHealthCheck and the node lifecycle controller:
//! act only on a worker that has been Stale (process alive, lock held, no heartbeat by
//! the metadata DB's clock) for `restartStaleAfterSeconds`; never while the DB cannot
//! be read or just after it came back; never when more of the fleet than
//! `maxUnhealthy` is Stale (something systemic is wrong); never a Pod that would not
//! come back (no controller owner) or that the fleet does not select; at most one
//! restart per worker per back-off (doubling) and per fleet per `minIntervalSeconds`.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::crd::{RemediationMode, RemediationSpec};

pub const DEFAULT_RESTART_STALE_AFTER_SECS: i64 = 300;
pub const DEFAULT_MIN_INTERVAL_SECS: i64 = 60;
pub const DEFAULT_MAX_UNHEALTHY: i64 = 1;
/// The per-worker back-off doubles at most this many times.
const MAX_BACKOFF_DOUBLINGS: u32 = 6;

/// A worker's health as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerHealth {
    /// The metadata DB cannot be read.
    Unknown,
    NotRegistered,
    Stopped,
    Fresh,
    /// Stale since this instant of the DB clock (last heartbeat, or the DB's return
    /// after an outage, plus the heartbeat timeout).
    Stale {
        since: DateTime<Utc>,
    },
}

/// What is known of the worker's Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFacts {
    /// No selected Pod runs the node id.
    Missing,
    /// Several selected Pods claim the node id.
    Ambiguous,
    Found {
        /// In the fleet's namespace and selected by its podSelector (checked again).
        in_scope: bool,
        /// Has a controller ownerReference (a StatefulSet, ReplicaSet...).
        controlled: bool,
        /// Already being deleted.
        terminating: bool,
        /// When the Pod was created (wall clock); None when unknown.
        created: Option<DateTime<Utc>>,
    },
}

/// The worker's last remediations (restarts and dry runs): its back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub last: DateTime<Utc>,
    /// Remediations so far (at least 1).
    pub count: i64,
}

/// Everything one decision reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub mode: RemediationMode,
    pub leader: bool,
    pub health: WorkerHealth,
    /// The DB clock of this cycle's read (None: unreadable).
    pub db_now: Option<DateTime<Utc>>,
    /// The DB clock of the first read after the latest outage, while it matters.
    pub recovered_at: Option<DateTime<Utc>>,
    pub stale_after: Duration,
    /// Stale members of the fleet, and the resolved maxUnhealthy (Err: invalid).
    pub unhealthy: i64,
    pub max_unhealthy: Result<i64, String>,
    pub pod: PodFacts,
    pub history: Option<History>,
    /// The fleet's last remediation (wall clock), for its rate limit.
    pub fleet_last: Option<DateTime<Utc>>,
    pub min_interval: Duration,
    /// Wall clock (back-off, rate limit, Pod age).
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delete the Pod (or, in DryRun, say it would be).
    Act {
        dry_run: bool,
    },
    Skip(SkipReason),
}

/// Why a worker is not restarted; the bounded `reason` label of
/// `amp_worker_remediations_total{result="skipped"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    Off,
    NotLeader,
    DbUnavailable,
    DbRecovering,
    NotRegistered,
    Stopped,
    Healthy,
    NotStaleLongEnough,
    NoPod,
    AmbiguousPod,
    OutsideSelector,
    NoController,
    PodTerminating,
    PodTooYoung,
    InvalidMaxUnhealthy,
    TooManyUnhealthy,
    BackOff,
    FleetRateLimit,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::NotLeader => "not_leader",
            Self::DbUnavailable => "db_unavailable",
            Self::DbRecovering => "db_recovering",
            Self::NotRegistered => "not_registered",
            Self::Stopped => "stopped",
            Self::Healthy => "healthy",
            Self::NotStaleLongEnough => "not_stale_long_enough",
            Self::NoPod => "no_pod",
            Self::AmbiguousPod => "ambiguous_pod",
            Self::OutsideSelector => "outside_selector",
            Self::NoController => "no_controller",
            Self::PodTerminating => "pod_terminating",
            Self::PodTooYoung => "pod_too_young",
            Self::InvalidMaxUnhealthy => "invalid_max_unhealthy",
            Self::TooManyUnhealthy => "too_many_unhealthy",
            Self::BackOff => "back_off",
            Self::FleetRateLimit => "fleet_rate_limit",
        }
    }

    /// A skip of a worker that is due (Stale for long enough): counted and said;
    /// the others are the normal state of a worker and are not.
    pub fn is_due(self) -> bool {
        self > Self::NotStaleLongEnough
    }
}

/// Whether to act on one worker: the rules in the order they guard.
pub fn decide(i: &Inputs) -> Decision {
    match skip_reason(i) {
        Some(reason) => Decision::Skip(reason),
        None => Decision::Act {
            dry_run: i.mode == RemediationMode::DryRun,
        },
    }
}

fn skip_reason(i: &Inputs) -> Option<SkipReason> {
    if i.mode == RemediationMode::Off {
        return Some(SkipReason::Off);
    }
    if !i.leader {
        return Some(SkipReason::NotLeader);
    }
    let Some(db_now) = i.db_now else {
        return Some(SkipReason::DbUnavailable);
    };
    if i.recovered_at
        .is_some_and(|back| db_now - back < i.stale_after)
    {
        return Some(SkipReason::DbRecovering);
    }
    health_skip(i.health, db_now, i.stale_after)
        .or_else(|| pod_skip(i))
        .or_else(|| fleet_skip(i))
        .or_else(|| backoff_skip(i))
}

fn health_skip(health: WorkerHealth, db_now: DateTime<Utc>, after: Duration) -> Option<SkipReason> {
    match health {
        WorkerHealth::Unknown => Some(SkipReason::DbUnavailable),
        WorkerHealth::NotRegistered => Some(SkipReason::NotRegistered),
        WorkerHealth::Stopped => Some(SkipReason::Stopped),
        WorkerHealth::Fresh => Some(SkipReason::Healthy),
        WorkerHealth::Stale { since } if db_now - since < after => {
            Some(SkipReason::NotStaleLongEnough)
        }
        WorkerHealth::Stale { .. } => None,
    }
}

fn pod_skip(i: &Inputs) -> Option<SkipReason> {
    match i.pod {
        PodFacts::Missing => Some(SkipReason::NoPod),
        PodFacts::Ambiguous => Some(SkipReason::AmbiguousPod),
        PodFacts::Found {
            in_scope: false, ..
        } => Some(SkipReason::OutsideSelector),
        PodFacts::Found {
            controlled: false, ..
        } => Some(SkipReason::NoController),
        PodFacts::Found {
            terminating: true, ..
        } => Some(SkipReason::PodTerminating),
        // A Pod (re)created less than the delay ago: the worker in it has had no time.
        PodFacts::Found {
            created: Some(created),
            ..
        } if i.now - created < i.stale_after => Some(SkipReason::PodTooYoung),
        PodFacts::Found { .. } => None,
    }
}

fn fleet_skip(i: &Inputs) -> Option<SkipReason> {
    match &i.max_unhealthy {
        Err(_) => Some(SkipReason::InvalidMaxUnhealthy),
        Ok(max) if i.unhealthy > *max => Some(SkipReason::TooManyUnhealthy),
        Ok(_) => None,
    }
}

fn backoff_skip(i: &Inputs) -> Option<SkipReason> {
    if let Some(h) = i.history
        && i.now - h.last < backoff(i.stale_after, h.count)
    {
        return Some(SkipReason::BackOff);
    }
    if i.fleet_last
        .is_some_and(|last| i.now - last < i.min_interval)
    {
        return Some(SkipReason::FleetRateLimit);
    }
    None
}

/// The wait after a worker's `count`-th remediation: the delay, doubled per earlier
/// remediation (capped at 2^6 times the delay).
pub fn backoff(stale_after: Duration, count: i64) -> Duration {
    let doublings = u32::try_from(count.saturating_sub(1))
        .unwrap_or(0)
        .min(MAX_BACKOFF_DOUBLINGS);
    stale_after * 2i32.pow(doublings)
}

/// `maxUnhealthy` against `members`: a count, or a percentage rounded down (as Cluster
/// API does).
pub fn resolve_max_unhealthy(value: Option<&IntOrString>, members: i64) -> Result<i64, String> {
    match value {
        None => Ok(DEFAULT_MAX_UNHEALTHY),
        Some(IntOrString::Int(n)) if *n >= 0 => Ok(i64::from(*n)),
        Some(IntOrString::String(s)) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .filter(|p| (0..=100).contains(p))
                .ok_or_else(|| {
                    format!(
                        "maxUnhealthy {s:?} is neither a count nor a percentage such as \"20%\""
                    )
                })?;
            Ok(members * pct / 100)
        }
        Some(IntOrString::Int(n)) => Err(format!("maxUnhealthy {n} is negative")),
    }
}

/// The spec's values with their defaults.
pub fn stale_after(spec: &RemediationSpec) -> Duration {
    Duration::seconds(
        spec.restart_stale_after_seconds
            .unwrap_or(DEFAULT_RESTART_STALE_AFTER_SECS),
    )
}

pub fn min_interval(spec: &RemediationSpec) -> Duration {
    Duration::seconds(
        spec.min_interval_seconds
            .unwrap_or(DEFAULT_MIN_INTERVAL_SECS),
    )
}

#[cfg(test)]
mod tests;
