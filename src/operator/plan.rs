//! One poll cycle, decided without side effects: given the DB snapshot, the AmpWorkers
//! and fleets in the namespace and what was last written, which objects to create,
//! which statuses to apply, which events to publish and what to delete.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::crd::{
    AmpWorker, AmpWorkerFleet, AmpWorkerFleetStatus, AmpWorkerSpec, AmpWorkerStatus,
    DISCOVERED_LABEL, NODE_ID_ANNOTATION,
};
use super::fleet_status::{FleetInputs, desired_fleet_status, fleet_events};
use super::naming::object_name;
use super::status::{
    DbView, StatusEvent, WorkerInputs, desired_status, needs_write, parse_ts, timeout_secs,
    transition_events,
};
use crate::metadata_db::WorkerRow;

#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// `heartbeatAt` alone is rewritten at most this often.
    pub status_refresh: chrono::Duration,
    /// Discovered AmpWorkers whose worker is gone longer than this are deleted.
    pub gc_after: Option<chrono::Duration>,
}

/// What the operator last wrote, by object uid: the reflector may lag behind our own
/// writes, and comparing against a stale copy would write (and fire events) twice.
#[derive(Debug, Default)]
pub struct Written {
    pub workers: HashMap<String, AmpWorkerStatus>,
    pub fleets: HashMap<String, AmpWorkerFleetStatus>,
}

impl Written {
    /// Forgets objects that no longer exist.
    pub fn retain_uids(&mut self, workers: &[Arc<AmpWorker>], fleets: &[Arc<AmpWorkerFleet>]) {
        let live: std::collections::HashSet<&str> = workers
            .iter()
            .filter_map(|w| w.metadata.uid.as_deref())
            .chain(fleets.iter().filter_map(|f| f.metadata.uid.as_deref()))
            .collect();
        self.workers.retain(|uid, _| live.contains(uid.as_str()));
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
    pub creates: Vec<(AmpWorker, AmpWorkerStatus)>,
    pub worker_writes: Vec<StatusWrite<AmpWorkerStatus>>,
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
        DbView::Unavailable => None,
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

    // Discovery: a row nobody claims gets an AmpWorker (unless it is long gone).
    let mut new_workers: Vec<AmpWorker> = Vec::new();
    if db_now.is_some() {
        let mut unclaimed: Vec<&WorkerRow> = input
            .rows
            .iter()
            .filter(|r| !by_node.contains_key(r.node_id.as_str()))
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
                parse_ts(stored.and_then(|s| s.heartbeat_at.as_deref())).or_else(|| {
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
        if is_new {
            plan.creates.push((w.clone(), desired));
        } else if needs_write(stored, &desired, config.status_refresh) {
            plan.worker_writes.push(StatusWrite {
                name: w.name_any(),
                uid: w.metadata.uid.clone(),
                events: transition_events(stored, &desired),
                status: desired,
            });
        }
    }

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
