//! One poll cycle, decided without side effects: given the DB snapshot, the AmpWorkers
//! and fleets in the namespace and what was last written, which objects to create,
//! which statuses to apply, which events to publish and what to delete.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use crate::timestamps::format_timestamp;
use kube::core::{Selector, SelectorExt};

use super::crd::{
    AmpWorker, AmpWorkerFleet, AmpWorkerFleetStatus, AmpWorkerSpec, AmpWorkerStatus,
    DISCOVERED_LABEL, NODE_ID_ANNOTATION,
};
use super::fleet_status::{FleetInputs, desired_fleet_status, fleet_events};
use super::naming::object_name;
use super::status::{
    DbView, StatusEvent, WorkerInputs, WriteNeed, desired_status, info_cut_events, timeout_secs,
    transition_events, write_need,
};
use crate::metadata_db::{LockState, WorkerRow};

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
}

/// What the operator last wrote, by object uid: the reflector may lag behind our own
/// writes, and comparing against a stale copy would write (and fire events) twice.
#[derive(Debug, Default)]
pub struct Written {
    pub workers: HashMap<String, AmpWorkerStatus>,
    pub fleets: HashMap<String, AmpWorkerFleetStatus>,
}

impl Written {
    /// Forgets objects that no longer exist, and every status the cache already shows:
    /// from then on the cache's copy is the only one (this map is for the window in
    /// which the watch lags behind our writes; a second copy of every status for the
    /// whole fleet is memory for nothing).
    pub fn retain_uids(&mut self, workers: &[Arc<AmpWorker>], fleets: &[Arc<AmpWorkerFleet>]) {
        let cached: HashMap<&str, Option<&AmpWorkerStatus>> = workers
            .iter()
            .filter_map(|w| Some((w.metadata.uid.as_deref()?, w.status.as_ref())))
            .collect();
        self.workers
            .retain(|uid, status| cached.get(uid.as_str()).is_some_and(|c| *c != Some(status)));
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
    pub rows: &'a [WorkerRow],
    pub workers: &'a [Arc<AmpWorker>],
    pub fleets: &'a [Arc<AmpWorkerFleet>],
    pub written: &'a Written,
    /// DB clock of the last good read before the latest outage, while `db` carries a
    /// `recovered_at`: workers already stale before the outage get no recovery grace.
    pub recovery_from: Option<DateTime<Utc>>,
    /// Wall clock (condition transition times, fleet deadlines).
    pub now: DateTime<Utc>,
    /// Heartbeat-only refreshes this cycle may write (from [`RefreshBudget`]).
    pub refresh_allowance: usize,
}

/// A token bucket for heartbeat-only refreshes: `rate` per second, at most `burst`
/// saved up. Time is passed in, so the bucket is as pure as the planner.
#[derive(Debug, Clone)]
pub struct RefreshBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
}

impl RefreshBudget {
    /// A full bucket holding `burst_secs` of budget (at least one write).
    pub fn new(rate: f64, burst_secs: f64) -> Self {
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        let burst = (rate * burst_secs.max(0.0)).max(1.0);
        Self {
            rate,
            burst,
            tokens: rate.min(burst),
        }
    }

    /// Adds what `elapsed` earned and returns how many refreshes may be written now.
    pub fn refill(&mut self, elapsed: std::time::Duration) -> usize {
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.burst);
        // Truncation intended: whole writes only; tokens are never negative.
        self.tokens.max(0.0) as usize
    }

    /// Takes `n` refreshes out of the bucket (written or failed: both cost the server).
    pub fn spend(&mut self, n: usize) {
        self.tokens = (self.tokens - n as f64).max(0.0);
    }
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
    /// Heartbeat-only refreshes within this cycle's allowance, oldest heartbeat first.
    pub refreshes: Vec<Refresh>,
    pub refresh_stats: RefreshStats,
    pub fleet_writes: Vec<StatusWrite<AmpWorkerFleetStatus>>,
    pub deletes: Vec<Delete>,
    pub worker_conditions: ConditionCounts,
    /// (fleet name, condition, status) = 1 for every fleet condition.
    pub fleet_conditions: Vec<(String, String, String)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.worker_writes.is_empty()
            && self.refreshes.is_empty()
            && self.fleet_writes.is_empty()
            && self.deletes.is_empty()
    }
}

struct FleetSel<'a> {
    fleet: &'a AmpWorkerFleet,
    selector: Result<Selector, String>,
}

impl FleetSel<'_> {
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.selector {
            Ok(s) => s.matches(labels),
            Err(_) => false,
        }
    }
}

/// How often `heartbeatAt` alone is rewritten for this worker: `--status-refresh`, but
/// never more than half its heartbeat timeout, so a Ready worker's LAST HEARTBEAT stays
/// under the timeout that STATUS is judged by (while the refresh budget keeps up).
fn refresh_interval(config: &PlanConfig, spec: &AmpWorkerSpec) -> chrono::Duration {
    let half_timeout = chrono::Duration::milliseconds(timeout_secs(spec) * 500);
    config.status_refresh.min(half_timeout)
}

fn is_discovered(w: &AmpWorker) -> bool {
    w.labels().get(DISCOVERED_LABEL).map(String::as_str) == Some("true")
}

/// The AmpWorker the operator creates for a row nobody has claimed.
pub fn discovered_worker(node_id: &str) -> AmpWorker {
    let mut w = AmpWorker::new(
        &object_name(node_id),
        AmpWorkerSpec {
            node_id: node_id.to_owned(),
            expected_version: None,
            heartbeat_timeout_seconds: None,
        },
    );
    w.metadata.labels = Some(BTreeMap::from([(
        DISCOVERED_LABEL.to_owned(),
        "true".to_owned(),
    )]));
    w.metadata.annotations = Some(BTreeMap::from([(
        NODE_ID_ANNOTATION.to_owned(),
        node_id.to_owned(),
    )]));
    w
}

pub fn plan(input: &PlanInput, config: &PlanConfig) -> Plan {
    let mut plan = Plan::default();
    let rows: HashMap<&str, &WorkerRow> =
        input.rows.iter().map(|r| (r.node_id.as_str(), r)).collect();
    let db_now = match input.db {
        DbView::Available { db_now, .. } => Some(*db_now),
        DbView::Unavailable { .. } => None,
    };

    // Oldest fleet first: when several select a worker, the oldest one's version counts.
    let mut fleets: Vec<FleetSel> = input
        .fleets
        .iter()
        .map(|f| FleetSel {
            fleet: f,
            selector: match &f.spec.selector {
                None => Ok(Selector::default()),
                Some(s) => Selector::try_from(s.clone()).map_err(|e| e.to_string()),
            },
        })
        .collect();
    fleets.sort_by(|a, b| {
        (
            a.fleet.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.fleet.name_any(),
        )
            .cmp(&(
                b.fleet.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.fleet.name_any(),
            ))
    });

    let mut by_node: HashMap<&str, Vec<&AmpWorker>> = HashMap::new();
    for w in input.workers {
        by_node.entry(w.spec.node_id.as_str()).or_default().push(w);
    }

    let gone_since = |heartbeat: Option<DateTime<Utc>>| -> bool {
        match (config.gc_after, db_now, heartbeat) {
            (Some(after), Some(now), Some(hb)) => now - hb > after,
            _ => false,
        }
    };

    let stopped_since = |row: Option<&WorkerRow>| -> bool {
        match (config.gc_stopped_after, db_now, row) {
            (Some(after), Some(now), Some(r)) => {
                r.lock == LockState::Free && now - r.heartbeat_at > after
            }
            _ => false,
        }
    };

    // Discovery: a row nobody claims gets an AmpWorker, for workers that run, not for
    // history: never for a stopped one (so deleting a retired worker's object sticks),
    // nor for one long gone.
    let mut new_workers: Vec<AmpWorker> = Vec::new();
    if db_now.is_some() {
        let mut unclaimed: Vec<&WorkerRow> = input
            .rows
            .iter()
            .filter(|r| !by_node.contains_key(r.node_id.as_str()))
            .filter(|r| r.lock != LockState::Free)
            .filter(|r| !gone_since(Some(r.heartbeat_at)))
            .collect();
        unclaimed.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        new_workers = unclaimed
            .into_iter()
            .map(|r| discovered_worker(&r.node_id))
            .collect();
    }

    // (fleet index) → desired statuses of selected workers
    let mut selected: Vec<Vec<AmpWorkerStatus>> = vec![Vec::new(); fleets.len()];

    // Due refreshes with the stored heartbeat they replace (None: never shown one).
    let mut due: Vec<(Option<DateTime<Utc>>, Refresh)> = Vec::new();
    // Stored heartbeat of every heartbeating worker that is not refreshed or rewritten.
    let mut shown: Vec<DateTime<Utc>> = Vec::new();
    let mut heartbeating = 0usize;

    let mut existing: Vec<&AmpWorker> = input.workers.iter().map(|w| w.as_ref()).collect();
    existing.sort_by_key(|w| w.name_any());
    let candidates = existing
        .into_iter()
        .map(|w| (w, false))
        .chain(new_workers.iter().map(|w| (w, true)));
    for (w, is_new) in candidates {
        let empty = BTreeMap::new();
        let labels = w.metadata.labels.as_ref().unwrap_or(&empty);
        let fleet_idx = fleets.iter().position(|f| f.selects(labels));
        let fleet_version = fleet_idx.map(|i| fleets[i].fleet.spec.version.as_str());
        let row = rows.get(w.spec.node_id.as_str()).copied();
        let stored = w
            .metadata
            .uid
            .as_ref()
            .and_then(|uid| input.written.workers.get(uid))
            .or(w.status.as_ref());

        // Garbage collection: only what we discovered, only while the DB can be read.
        if !is_new && is_discovered(w) && db_now.is_some() {
            let user_owned = by_node
                .get(w.spec.node_id.as_str())
                .is_some_and(|ws| ws.iter().any(|o| !is_discovered(o)));
            let last_seen = row.map(|r| r.heartbeat_at).or_else(|| {
                stored.and_then(|s| s.heartbeat_at).or_else(|| {
                    w.metadata
                        .creation_timestamp
                        .as_ref()
                        .and_then(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0))
                })
            });
            let why = if user_owned {
                Some(format!(
                    "an AmpWorker created by a user already has nodeId {:?}",
                    w.spec.node_id
                ))
            } else if gone_since(last_seen) {
                Some(format!(
                    "worker {:?} gone longer than --gc-after",
                    w.spec.node_id
                ))
            } else if stopped_since(row) {
                Some(format!(
                    "worker {:?} stopped longer than --gc-stopped-after",
                    w.spec.node_id
                ))
            } else {
                None
            };
            if let Some(why) = why {
                plan.deletes.push(Delete {
                    name: w.name_any(),
                    uid: w.metadata.uid.clone(),
                    why,
                });
                continue;
            }
        }

        // Grace after an outage is for workers that were alive when the DB went away.
        let no_grace;
        let db = match (input.db, input.recovery_from, row) {
            (DbView::Available { db_now, .. }, Some(from), Some(r))
                if r.heartbeat_at + chrono::Duration::seconds(timeout_secs(&w.spec)) < from =>
            {
                no_grace = DbView::Available {
                    db_now: *db_now,
                    recovered_at: None,
                };
                &no_grace
            }
            _ => input.db,
        };
        let desired = desired_status(&WorkerInputs {
            row,
            db,
            spec: &w.spec,
            fleet_version,
            previous: stored,
            generation: w.metadata.generation,
            now: input.now,
        });
        for c in &desired.conditions {
            *plan
                .worker_conditions
                .entry((c.type_.clone(), c.status.clone()))
                .or_default() += 1;
        }
        if let Some(i) = fleet_idx {
            selected[i].push(desired.clone());
        }
        let is_healthy =
            super::status::condition_status(&desired.conditions, super::status::HEALTHY)
                == Some(super::status::ConditionStatus::True);
        heartbeating += usize::from(is_healthy);
        if is_new {
            let events = info_cut_events(row, None, &desired);
            plan.creates.push((w.clone(), desired, events));
            continue;
        }
        match write_need(stored, &desired, refresh_interval(config, &w.spec)) {
            WriteNeed::Transition => plan.worker_writes.push(StatusWrite {
                name: w.name_any(),
                uid: w.metadata.uid.clone(),
                events: [
                    transition_events(stored, &desired),
                    info_cut_events(row, stored, &desired),
                ]
                .concat(),
                status: desired,
            }),
            WriteNeed::Refresh => {
                let Some(heartbeat_at) = desired.heartbeat_at.as_ref().map(format_timestamp) else {
                    continue;
                };
                let old = stored.and_then(|s| s.heartbeat_at);
                due.push((
                    old,
                    Refresh {
                        name: w.name_any(),
                        uid: w.metadata.uid.clone(),
                        heartbeat_at,
                        status: desired,
                    },
                ));
            }
            WriteNeed::None => {
                if is_healthy && let Some(hb) = stored.and_then(|s| s.heartbeat_at) {
                    shown.push(hb);
                }
            }
        }
    }

    // Oldest shown heartbeat first (never shown before all), then by name: every worker
    // gets its turn, and LAST HEARTBEAT is never older than one trip round the fleet.
    due.sort_by(|(a, ra), (b, rb)| a.cmp(b).then_with(|| ra.name.cmp(&rb.name)));
    let allowed = due.len().min(input.refresh_allowance);
    plan.refresh_stats.due = due.len();
    plan.refresh_stats.deferred = due.len() - allowed;
    shown.extend(due[allowed..].iter().filter_map(|(old, _)| *old));
    plan.refreshes = due.into_iter().take(allowed).map(|(_, r)| r).collect();
    if let (Some(now), Some(oldest)) = (db_now, shown.iter().min()) {
        plan.refresh_stats.oldest_shown_age_secs =
            ((now - *oldest).num_milliseconds() as f64 / 1000.0).max(0.0);
    }
    // The floor for workers with the default timeout (most fleets).
    let default_spec = AmpWorkerSpec {
        node_id: String::new(),
        expected_version: None,
        heartbeat_timeout_seconds: None,
    };
    let floor = refresh_interval(config, &default_spec).num_milliseconds() as f64 / 1000.0;
    plan.refresh_stats.interval_secs = if config.refresh_budget > 0.0 {
        floor.max(heartbeating as f64 / config.refresh_budget)
    } else {
        f64::INFINITY
    };

    for (f, workers) in fleets.iter().zip(selected.iter()) {
        let stored = f
            .fleet
            .metadata
            .uid
            .as_ref()
            .and_then(|uid| input.written.fleets.get(uid))
            .or(f.fleet.status.as_ref());
        let refs: Vec<&AmpWorkerStatus> = workers.iter().collect();
        let desired = desired_fleet_status(&FleetInputs {
            spec: &f.fleet.spec,
            generation: f.fleet.metadata.generation,
            previous: stored,
            workers: &refs,
            selector_error: f.selector.as_ref().err().map(String::as_str),
            now: input.now,
            db_tls_failure: match input.db {
                DbView::Unavailable { tls_failure } => *tls_failure,
                DbView::Available { .. } => None,
            },
        });
        for c in &desired.conditions {
            plan.fleet_conditions
                .push((f.fleet.name_any(), c.type_.clone(), c.status.clone()));
        }
        if stored != Some(&desired) {
            plan.fleet_writes.push(StatusWrite {
                name: f.fleet.name_any(),
                uid: f.fleet.metadata.uid.clone(),
                events: fleet_events(stored, &desired, &f.fleet.spec.version),
                status: desired,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests;
