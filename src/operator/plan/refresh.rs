//! Refresh scheduling: due heartbeat-only refreshes, oldest shown heartbeat first (never
//! shown before all), then by name, as many as the budget allows; the rest wait. Every
//! worker gets its turn, and LAST HEARTBEAT is never older than one trip round the fleet.

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::super::crd::{AmpWorker, AmpWorkerSpec, AmpWorkerStatus};
use super::super::status::timeout_secs;
use super::{PlanConfig, Refresh, RefreshStats};
use crate::timestamps::format_timestamp;

/// How often `heartbeatAt` alone is rewritten for this worker: `--status-refresh`, but
/// never more than half its heartbeat timeout, so a Ready worker's LAST HEARTBEAT stays
/// under the timeout that STATUS is judged by (while the refresh budget keeps up).
pub(super) fn refresh_interval(config: &PlanConfig, spec: &AmpWorkerSpec) -> chrono::Duration {
    let half_timeout = chrono::Duration::milliseconds(timeout_secs(spec) * 500);
    config.status_refresh.min(half_timeout)
}

/// The status a due refresh results in: built by the judgement already, or the stored
/// one with the new heartbeat (built only if the refresh is written this cycle). Boxed:
/// thousands of due refreshes may wait, most of them `Stored`.
pub(super) enum DueStatus<'a> {
    Built(Box<AmpWorkerStatus>),
    Stored(&'a AmpWorkerStatus, DateTime<Utc>),
}

/// A refresh that is due; `old` is the stored heartbeat it replaces (None: never shown).
pub(super) struct Due<'a> {
    pub(super) old: Option<DateTime<Utc>>,
    pub(super) worker: &'a AmpWorker,
    pub(super) status: DueStatus<'a>,
}

impl Due<'_> {
    fn into_refresh(self) -> Option<Refresh> {
        let status = match self.status {
            DueStatus::Built(s) => *s,
            DueStatus::Stored(stored, heartbeat_at) => AmpWorkerStatus {
                heartbeat_at: Some(heartbeat_at),
                ..stored.clone()
            },
        };
        Some(Refresh {
            name: self.worker.name_any(),
            uid: self.worker.metadata.uid.clone(),
            heartbeat_at: status.heartbeat_at.as_ref().map(format_timestamp)?,
            status,
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
#[derive(Default)]
pub(super) struct Pending<'a> {
    pub(super) due: Vec<Due<'a>>,
    /// Stored heartbeat of every heartbeating worker that is not refreshed or rewritten.
    pub(super) shown: Option<DateTime<Utc>>,
    /// Workers whose Healthy is True.
    pub(super) heartbeating: usize,
}

impl Pending<'_> {
    pub(super) fn show(&mut self, heartbeat: DateTime<Utc>) {
        self.shown = Some(self.shown.map_or(heartbeat, |s| s.min(heartbeat)));
    }
}

/// The refreshes written this cycle (at most `allowance`, oldest first) and the stats.
pub(super) fn schedule(
    mut p: Pending,
    allowance: usize,
    db_now: Option<DateTime<Utc>>,
    config: &PlanConfig,
) -> (Vec<Refresh>, RefreshStats) {
    let allowed = p.due.len().min(allowance);
    // Only the first `allowed` need their order: select them, then sort those.
    if allowed > 0 && allowed < p.due.len() {
        p.due
            .select_nth_unstable_by(allowed - 1, |a, b| a.key().cmp(&b.key()));
    }
    let mut deferred = p.due.split_off(allowed);
    p.due.sort_by(|a, b| a.key().cmp(&b.key()));
    for d in &mut deferred {
        if let Some(old) = d.old {
            p.show(old);
        }
    }
    let mut stats = RefreshStats {
        due: p.due.len() + deferred.len(),
        deferred: deferred.len(),
        interval_secs: interval_secs(config, p.heartbeating),
        ..RefreshStats::default()
    };
    if let (Some(now), Some(oldest)) = (db_now, p.shown) {
        stats.oldest_shown_age_secs = ((now - oldest).num_milliseconds() as f64 / 1000.0).max(0.0);
    }
    let refreshes = p.due.into_iter().filter_map(Due::into_refresh).collect();
    (refreshes, stats)
}

/// `--status-refresh` (for the default timeout, most fleets), or the time the budget
/// needs to go round every heartbeating worker once, whichever is longer.
fn interval_secs(config: &PlanConfig, heartbeating: usize) -> f64 {
    let default_spec = AmpWorkerSpec {
        node_id: String::new(),
        expected_version: None,
        heartbeat_timeout_seconds: None,
    };
    let floor = refresh_interval(config, &default_spec).num_milliseconds() as f64 / 1000.0;
    if config.refresh_budget > 0.0 {
        floor.max(heartbeating as f64 / config.refresh_budget)
    } else {
        f64::INFINITY
    }
}
