//! Refresh scheduling: due heartbeat-only refreshes and fills (a stored status lacking
//! only fields this operator adds), oldest shown heartbeat first (never shown before
//! all), then by name, as many as the budget allows; the rest wait. Every worker gets its
//! turn, and LAST HEARTBEAT is never older than one trip round the fleet.

use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};

use super::super::cache::CachedWorker;
use super::super::crd::AmpWorkerStatus;
use super::stored::Stored;
use super::{PlanConfig, Refresh, RefreshStats};
use crate::timestamps::format_timestamp;

/// How often `heartbeatAt` alone is rewritten for this worker: `--status-refresh`, but
/// never more than half its heartbeat timeout, so a Ready worker's LAST HEARTBEAT stays
/// under the timeout that STATUS is judged by (while the refresh budget keeps up).
pub(super) fn refresh_interval(config: &PlanConfig, timeout_secs: i64) -> chrono::Duration {
    let half_timeout = chrono::Duration::milliseconds(timeout_secs * 500);
    config.status_refresh.min(half_timeout)
}

/// The status a due refresh results in: built by the judgement already, or the stored
/// one with the new heartbeat (built only if the refresh is written this cycle). Boxed:
/// thousands of due refreshes may wait, most of them `Stored`.
pub(super) enum DueStatus<'a> {
    Built(Box<AmpWorkerStatus>),
    Stored(Stored<'a>, DateTime<Utc>),
}

/// A refresh that is due; `old` is the stored heartbeat it replaces (None: never shown).
pub(super) struct Due<'a> {
    pub(super) old: Option<DateTime<Utc>>,
    pub(super) worker: &'a CachedWorker,
    pub(super) status: DueStatus<'a>,
    /// A fill (`WriteNeed::Fill`): the whole status is written, not only `heartbeatAt`.
    pub(super) fill: bool,
}

impl Due<'_> {
    fn into_refresh(self) -> Option<Refresh> {
        let status = match self.status {
            DueStatus::Built(s) => *s,
            DueStatus::Stored(stored, heartbeat_at) => AmpWorkerStatus {
                heartbeat_at: Some(heartbeat_at),
                ..stored.whole().into_owned()
            },
        };
        // A fill of a worker never heartbeating (no row) writes no heartbeat.
        let heartbeat_at = match status.heartbeat_at.as_ref().map(format_timestamp) {
            Some(hb) => hb,
            None if self.fill => String::new(),
            None => return None,
        };
        Some(Refresh {
            name: self.worker.name_any(),
            uid: self.worker.metadata.uid.clone(),
            heartbeat_at,
            status,
            fill: self.fill,
        })
    }

    fn key(&self) -> (Option<DateTime<Utc>>, &str) {
        (
            self.old,
            self.worker.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

/// What the judgement step leaves for scheduling.
pub(super) struct Pending<'a> {
    /// The `allowance` oldest due refreshes met so far, the newest of them on top: the
    /// only ones written this cycle (a bounded heap, where all 9,700 due at 10,000
    /// workers used to be kept and then selected from, comparing names on equal
    /// heartbeats: 4-6% of a cycle).
    kept: BinaryHeap<Oldest<'a>>,
    allowance: usize,
    /// Refreshes due this cycle, written or not.
    due: usize,
    /// Due refreshes left for later cycles.
    deferred: usize,
    /// Stored heartbeat of every heartbeating worker that is not refreshed or rewritten.
    pub(super) shown: Option<DateTime<Utc>>,
    /// Workers whose Healthy is True.
    pub(super) heartbeating: usize,
}

/// A due refresh ordered by its key: oldest shown heartbeat first (never shown before
/// all), then by name.
struct Oldest<'a>(Due<'a>);

impl PartialEq for Oldest<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for Oldest<'_> {}

impl PartialOrd for Oldest<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Oldest<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.key().cmp(&other.0.key())
    }
}

impl<'a> Pending<'a> {
    /// Room for `allowance` refreshes this cycle.
    pub(super) fn new(allowance: usize) -> Self {
        Self {
            kept: BinaryHeap::with_capacity(allowance.min(1024)),
            allowance,
            due: 0,
            deferred: 0,
            shown: None,
            heartbeating: 0,
        }
    }

    /// The objects whose refreshes this cycle writes.
    pub(super) fn written_objects(&self) -> impl Iterator<Item = &'a CachedWorker> + '_ {
        self.kept.iter().map(|o| o.0.worker)
    }

    pub(super) fn show(&mut self, heartbeat: DateTime<Utc>) {
        self.shown = Some(self.shown.map_or(heartbeat, |s| s.min(heartbeat)));
    }

    /// A due refresh: kept if it is among the `allowance` oldest so far; the one it
    /// displaces (or itself) waits, and its stored heartbeat stays shown.
    pub(super) fn push_due(&mut self, due: Due<'a>) {
        self.due += 1;
        if self.kept.len() < self.allowance {
            self.kept.push(Oldest(due));
            return;
        }
        let waits = match self.kept.peek_mut() {
            Some(mut newest) if due.key() < newest.0.key() => std::mem::replace(&mut newest.0, due),
            _ => due,
        };
        self.deferred += 1;
        if let Some(old) = waits.old {
            self.show(old);
        }
    }
}

/// The refreshes written this cycle (the kept ones, oldest first) and the stats.
pub(super) fn schedule(
    p: Pending,
    db_now: Option<DateTime<Utc>>,
    config: &PlanConfig,
) -> (Vec<Refresh>, RefreshStats) {
    let mut stats = RefreshStats {
        due: p.due,
        deferred: p.deferred,
        interval_secs: interval_secs(config, p.heartbeating),
        ..RefreshStats::default()
    };
    if let (Some(now), Some(oldest)) = (db_now, p.shown) {
        stats.oldest_shown_age_secs = ((now - oldest).num_milliseconds() as f64 / 1000.0).max(0.0);
    }
    let refreshes = p
        .kept
        .into_sorted_vec()
        .into_iter()
        .filter_map(|o| o.0.into_refresh())
        .collect();
    (refreshes, stats)
}

/// `--status-refresh` (for the default timeout, most fleets), or the time the budget
/// needs to go round every heartbeating worker once, whichever is longer.
fn interval_secs(config: &PlanConfig, heartbeating: usize) -> f64 {
    let floor =
        refresh_interval(config, config.heartbeat_timeout_secs).num_milliseconds() as f64 / 1000.0;
    if config.refresh_budget > 0.0 {
        floor.max(heartbeating as f64 / config.refresh_budget)
    } else {
        f64::INFINITY
    }
}
