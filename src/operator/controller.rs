//! The side-effecting half of a cycle: read the DB once, plan, then write to Kubernetes
//! (creates, server-side-apply status patches, events, deletes).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use sqlx::PgPool;

use super::crd::{AmpWorker, AmpWorkerFleet, AmpWorkerFleetStatus, AmpWorkerStatus, FIELD_MANAGER};
use super::metrics::OperatorMetrics;
use super::plan::{Plan, PlanConfig, PlanInput, Refresh, RefreshBudget, Written, plan};
use super::status::{DbView, StatusEvent};
use crate::backoff::Backoff;
use crate::metadata_db::{self, FleetSnapshot};

/// Objects created this process whose creation the reflector has not shown yet are
/// kept this long, so a lagging store does not trigger a second create.
const PENDING_CREATE_TTL: Duration = Duration::from_secs(60);
const FIRST_WRITE_RETRY: Duration = Duration::from_secs(1);
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(60);
/// Refresh budget saved up while cycles are slow or nothing is due; small, so a pause
/// never turns into a burst the API server would feel.
const REFRESH_BURST_SECS: f64 = 2.0;
/// A name held by another object does not free itself within seconds: a user has to
/// act, so the create is re-attempted (and the Warning repeated) rarely.
const FIRST_COLLISION_RETRY: Duration = Duration::from_secs(30);
const MAX_COLLISION_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// events.k8s.io/v1 refuses notes longer than 1 kB.
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;
/// Reason of the Warning event on an object whose name a discovered worker needs.
pub const NAME_COLLISION_REASON: &str = "NameCollision";

type Job<'a> = futures::future::BoxFuture<'a, Outcome>;

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub namespace: String,
    pub plan: PlanConfig,
    /// Concurrent Kubernetes writes within one cycle.
    pub write_concurrency: usize,
    /// Reported as the events' reporting instance.
    pub identity: String,
}

/// What one cycle did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub db_available: bool,
    pub created: usize,
    /// Status writes: creates' first status and transitions.
    pub status_writes: usize,
    /// Heartbeat-only refreshes (patches of `heartbeatAt`).
    pub refreshes: usize,
    pub fleet_writes: usize,
    pub deleted: usize,
    pub events: usize,
    pub errors: usize,
    /// Creates refused because another object of another nodeId holds the name.
    pub collisions: usize,
}

impl CycleReport {
    pub fn wrote_anything(&self) -> bool {
        self.created
            + self.status_writes
            + self.refreshes
            + self.fleet_writes
            + self.deleted
            + self.events
            + self.collisions
            > 0
    }
}

/// Retry state of one object's failed write.
struct Retry {
    backoff: Backoff,
    until: Instant,
}

pub struct Reconciler {
    workers_api: Api<AmpWorker>,
    fleets_api: Api<AmpWorkerFleet>,
    recorder: Recorder,
    pool: PgPool,
    config: ReconcilerConfig,
    metrics: Arc<OperatorMetrics>,
    written: Written,
    /// DB clock of the last good read; set while the DB is down.
    outage_since: Option<DateTime<Utc>>,
    last_ok_db_now: Option<DateTime<Utc>>,
    recovery: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pending: HashMap<String, (Instant, Arc<AmpWorker>)>,
    backoff: HashMap<RetryKey, Retry>,
    refresh_budget: RefreshBudget,
    last_cycle: Option<Instant>,
    /// Bound of the snapshot read: a DB that does not answer is `Unknown` after
    /// poll interval + this, not after the kernel's TCP retransmission timeout.
    db_timeout: Duration,
}

enum Outcome {
    Created {
        node_id: String,
        obj: Box<AmpWorker>,
        status: Option<AmpWorkerStatus>,
    },
    WorkerStatus {
        uid: Option<String>,
        status: AmpWorkerStatus,
        events: usize,
    },
    Refreshed {
        uid: Option<String>,
        status: AmpWorkerStatus,
    },
    FleetStatus {
        uid: Option<String>,
        status: AmpWorkerFleetStatus,
        events: usize,
    },
    Deleted,
    /// The name belongs to an object of another nodeId (the Warning is already published).
    Collision {
        key: RetryKey,
    },
    Failed {
        key: RetryKey,
        uid: Option<String>,
    },
}

/// What a failed write backs off: one object's create, status, fleet status or delete.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RetryKey {
    Create(String),
    Status(String),
    FleetStatus(String),
    Delete(String),
}

impl Reconciler {
    pub fn new(
        client: Client,
        pool: PgPool,
        config: ReconcilerConfig,
        metrics: Arc<OperatorMetrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(config.identity.clone()),
        };
        Self {
            workers_api: Api::namespaced(client.clone(), &config.namespace),
            fleets_api: Api::namespaced(client.clone(), &config.namespace),
            recorder: Recorder::new(client, reporter),
            pool,
            refresh_budget: RefreshBudget::new(config.plan.refresh_budget, REFRESH_BURST_SECS),
            last_cycle: None,
            config,
            metrics,
            written: Written::default(),
            outage_since: None,
            last_ok_db_now: None,
            recovery: None,
            pending: HashMap::new(),
            backoff: HashMap::new(),
            db_timeout: metadata_db::DEFAULT_DB_TIMEOUT,
        }
    }

    /// Sets the bound of each snapshot read (default [`metadata_db::DEFAULT_DB_TIMEOUT`]).
    pub fn with_db_timeout(mut self, timeout: Duration) -> Self {
        self.db_timeout = timeout;
        self
    }

    /// Forgets what this replica wrote (after losing leadership another replica may
    /// have written since).
    pub fn forget(&mut self) {
        self.written = Written::default();
        self.pending.clear();
        self.backoff.clear();
    }

    async fn read_db(&mut self) -> (DbView, Vec<metadata_db::WorkerRow>) {
        let started = Instant::now();
        let result = metadata_db::fleet_snapshot_within(&self.pool, self.db_timeout).await;
        self.metrics
            .poll_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(FleetSnapshot { db_now, workers }) => {
                self.metrics.metadata_db_up.set(1);
                if let Some(since) = self.outage_since.take() {
                    tracing::info!(down_since = %since, "metadata DB readable again");
                    self.recovery = Some((since, db_now));
                }
                // The grace only matters for one heartbeat timeout (at most an hour).
                if self
                    .recovery
                    .is_some_and(|(_, back)| db_now - back > chrono::Duration::hours(1))
                {
                    self.recovery = None;
                }
                self.last_ok_db_now = Some(db_now);
                (
                    DbView::Available {
                        db_now,
                        recovered_at: self.recovery.map(|(_, back)| back),
                    },
                    workers,
                )
            }
            Err(err) => {
                self.metrics.metadata_db_up.set(0);
                if self.outage_since.is_none() {
                    self.outage_since = Some(self.last_ok_db_now.unwrap_or_else(Utc::now));
                    tracing::warn!(error = %err, "metadata DB unavailable; worker health is Unknown until it returns");
                }
                (
                    DbView::Unavailable {
                        tls_failure: err.tls_summary(),
                    },
                    Vec::new(),
                )
            }
        }
    }

    /// One cycle over the given objects (from the reflector stores in production, from
    /// the test in tests).
    pub async fn cycle(
        &mut self,
        workers: Vec<Arc<AmpWorker>>,
        fleets: Vec<Arc<AmpWorkerFleet>>,
    ) -> CycleReport {
        let started = Instant::now();
        let (db, rows) = self.read_db().await;
        let workers = self.with_pending(workers);
        self.written.retain_uids(&workers, &fleets);
        let now = Utc::now();
        let since_last = self.last_cycle.map_or(Duration::ZERO, |t| t.elapsed());
        self.last_cycle = Some(Instant::now());
        let refresh_allowance = self.refresh_budget.refill(since_last);
        let mut plan = plan(
            &PlanInput {
                db: &db,
                rows: &rows,
                workers: &workers,
                fleets: &fleets,
                written: &self.written,
                recovery_from: self.recovery.map(|(since, _)| since),
                now,
                refresh_allowance,
            },
            &self.config.plan,
        );
        self.metrics.set_worker_conditions(&plan.worker_conditions);
        self.metrics.set_fleet_conditions(&plan.fleet_conditions);
        self.metrics.set_refresh_stats(&plan.refresh_stats);
        self.drop_backed_off(&mut plan);
        self.refresh_budget.spend(plan.refreshes.len());
        let mut report = CycleReport {
            db_available: matches!(db, DbView::Available { .. }),
            ..Default::default()
        };
        if !plan.is_empty() {
            self.execute(plan, &mut report).await;
        }
        if report.errors > 0 {
            self.metrics.cycle_errors.inc();
        }
        self.metrics.observe_cycle(started.elapsed());
        report
    }

    fn with_pending(&mut self, mut workers: Vec<Arc<AmpWorker>>) -> Vec<Arc<AmpWorker>> {
        let seen: std::collections::HashSet<&str> = workers
            .iter()
            .filter_map(|w| w.metadata.uid.as_deref())
            .collect();
        self.pending.retain(|_, (at, obj)| {
            at.elapsed() < PENDING_CREATE_TTL
                && !obj
                    .metadata
                    .uid
                    .as_deref()
                    .is_some_and(|uid| seen.contains(uid))
        });
        workers.extend(self.pending.values().map(|(_, obj)| obj.clone()));
        workers
    }

    fn backed_off(&self, key: &RetryKey) -> bool {
        self.backoff
            .get(key)
            .is_some_and(|b| Instant::now() < b.until)
    }

    fn drop_backed_off(&self, plan: &mut Plan) {
        plan.creates
            .retain(|(w, _, _)| !self.backed_off(&RetryKey::Create(w.name_any())));
        plan.worker_writes
            .retain(|w| !self.backed_off(&RetryKey::Status(w.name.clone())));
        plan.refreshes
            .retain(|r| !self.backed_off(&RetryKey::Status(r.name.clone())));
        plan.fleet_writes
            .retain(|w| !self.backed_off(&RetryKey::FleetStatus(w.name.clone())));
        plan.deletes
            .retain(|d| !self.backed_off(&RetryKey::Delete(d.name.clone())));
    }

    fn failed(&mut self, key: RetryKey) {
        self.back_off(key, FIRST_WRITE_RETRY, MAX_WRITE_BACKOFF);
    }

    fn back_off(&mut self, key: RetryKey, first: Duration, max: Duration) {
        let retry = self.backoff.entry(key).or_insert_with(|| Retry {
            backoff: Backoff::new(first, max),
            until: Instant::now(),
        });
        retry.until = Instant::now() + retry.backoff.next_delay();
    }

    /// The plan's writes as jobs, transitions first and refreshes last.
    fn jobs<'a>(&'a self, plan: Plan) -> impl Iterator<Item = Job<'a>> + Send + 'a {
        // Jobs are made (and their futures allocated) only when buffer_unordered pulls
        // them: a discovery of 10,000 workers must not hold 10,000 request futures
        // (~7.5 KB each) at once.
        let creates = plan
            .creates
            .into_iter()
            .map(move |(obj, status, events)| -> Job<'a> {
                Box::pin(self.create(obj, status, events))
            });
        let worker_writes = plan.worker_writes.into_iter().map(move |w| -> Job<'a> {
            Box::pin(async move {
                let written = self
                    .write_status(&self.workers_api, "status", &w.name, w.uid.as_deref(), &w.status, &w.events)
                    .await;
                match written {
                    Ok(events) => Outcome::WorkerStatus {
                        uid: w.uid,
                        status: w.status,
                        events,
                    },
                    Err(err) => {
                        tracing::warn!(ampworker = %w.name, error = %err, "status write failed; will retry");
                        Outcome::Failed {
                            key: RetryKey::Status(w.name.clone()),
                            uid: w.uid,
                        }
                    }
                }
            })
        });
        let fleet_writes = plan.fleet_writes.into_iter().map(move |f| -> Job<'a> {
            Box::pin(async move {
                let written = self
                    .write_status(&self.fleets_api, "fleet_status", &f.name, f.uid.as_deref(), &f.status, &f.events)
                    .await;
                match written {
                    Ok(events) => Outcome::FleetStatus {
                        uid: f.uid,
                        status: f.status,
                        events,
                    },
                    Err(err) => {
                        tracing::warn!(ampworkerfleet = %f.name, error = %err, "fleet status write failed; will retry");
                        Outcome::Failed {
                            key: RetryKey::FleetStatus(f.name.clone()),
                            uid: f.uid,
                        }
                    }
                }
            })
        });
        let deletes = plan.deletes.into_iter().map(move |d| -> Job<'a> {
            Box::pin(async move {
                let params = DeleteParams {
                    preconditions: d.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match self.workers_api.delete(&d.name, &params).await {
                    Ok(_) => {
                        self.metrics.count_write("delete", true);
                        tracing::info!(ampworker = %d.name, why = %d.why, "deleted discovered AmpWorker");
                        Outcome::Deleted
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => Outcome::Deleted,
                    Err(err) => {
                        self.metrics.count_write("delete", false);
                        tracing::warn!(ampworker = %d.name, error = %err, "delete failed; will retry");
                        Outcome::Failed {
                            key: RetryKey::Delete(d.name.clone()),
                            uid: None,
                        }
                    }
                }
            })
        });
        // Last: buffer_unordered starts jobs in order, so refreshes never delay a transition.
        let refreshes = plan
            .refreshes
            .into_iter()
            .map(move |r| -> Job<'a> { Box::pin(self.refresh(r)) });
        creates
            .chain(worker_writes)
            .chain(fleet_writes)
            .chain(deletes)
            .chain(refreshes)
    }

    async fn execute(&mut self, plan: Plan, report: &mut CycleReport) {
        let jobs = self.jobs(plan);
        let outcomes: Vec<Outcome> = futures::stream::iter(jobs)
            .buffer_unordered(self.config.write_concurrency.max(1))
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                Outcome::Created {
                    node_id,
                    obj,
                    status,
                } => {
                    report.created += 1;
                    // Kept until the watch shows it; the planner reads neither of these.
                    let mut obj = *obj;
                    obj.metadata.managed_fields = None;
                    obj.metadata.annotations = None;
                    let obj = Arc::new(obj);
                    if let (Some(uid), Some(status)) = (obj.metadata.uid.clone(), status) {
                        report.status_writes += 1;
                        self.written.workers.insert(uid, status);
                    }
                    self.pending.insert(node_id, (Instant::now(), obj));
                }
                Outcome::WorkerStatus {
                    uid,
                    status,
                    events,
                } => {
                    report.status_writes += 1;
                    report.events += events;
                    if let Some(uid) = uid {
                        self.written.workers.insert(uid, status);
                    }
                }
                Outcome::Refreshed { uid, status } => {
                    report.refreshes += 1;
                    if let Some(uid) = uid {
                        self.written.workers.insert(uid, status);
                    }
                }
                Outcome::FleetStatus {
                    uid,
                    status,
                    events,
                } => {
                    report.fleet_writes += 1;
                    report.events += events;
                    if let Some(uid) = uid {
                        self.written.fleets.insert(uid, status);
                    }
                }
                Outcome::Deleted => report.deleted += 1,
                Outcome::Collision { key } => {
                    report.collisions += 1;
                    self.back_off(key, FIRST_COLLISION_RETRY, MAX_COLLISION_BACKOFF);
                }
                Outcome::Failed { key, uid } => {
                    report.errors += 1;
                    if let Some(uid) = uid {
                        // Unknown what the server holds now: compare with the store next time.
                        self.written.workers.remove(&uid);
                        self.written.fleets.remove(&uid);
                    }
                    self.failed(key);
                }
            }
        }
        self.backoff
            .retain(|_, b| Instant::now() < b.until + MAX_WRITE_BACKOFF + b.backoff.max());
    }

    async fn create(
        &self,
        obj: AmpWorker,
        status: AmpWorkerStatus,
        events: Vec<StatusEvent>,
    ) -> Outcome {
        let name = obj.name_any();
        let node_id = obj.spec.node_id.clone();
        let created = match self.workers_api.create(&PostParams::default(), &obj).await {
            Ok(created) => {
                self.metrics.count_write("create", true);
                tracing::info!(ampworker = %name, node_id = %node_id, "discovered worker; created AmpWorker");
                created
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.metrics.count_write("create", false);
                return self.on_conflict(&name, &node_id).await;
            }
            Err(err) => {
                self.metrics.count_write("create", false);
                tracing::warn!(ampworker = %name, error = %err, "create failed; will retry");
                return Outcome::Failed {
                    key: RetryKey::Create(name.clone()),
                    uid: None,
                };
            }
        };
        // Planned before the object existed: stamp the generation the server gave it.
        let mut status = status;
        status.observed_generation = created.metadata.generation;
        for c in &mut status.conditions {
            c.observed_generation = created.metadata.generation;
        }
        let written = self
            .write_status(
                &self.workers_api,
                "status",
                &name,
                created.metadata.uid.as_deref(),
                &status,
                &events,
            )
            .await;
        let status = match written {
            Ok(_) => Some(status),
            Err(err) => {
                tracing::warn!(ampworker = %name, error = %err, "status write after create failed; will retry");
                None
            }
        };
        Outcome::Created {
            node_id,
            obj: Box::new(created),
            status,
        }
    }

    /// A merge patch of `status.heartbeatAt` alone: the rest of the status is unchanged
    /// by construction, and a one-field patch costs the API server less than applying the
    /// whole status (docs/benchmarks.md). The operator is the only status writer, so the
    /// field is owned by `amp-operator` either way.
    async fn refresh(&self, r: Refresh) -> Outcome {
        let body = serde_json::json!({"status": {"heartbeatAt": r.heartbeat_at}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let result = self
            .workers_api
            .patch_status(&r.name, &params, &Patch::Merge(&body))
            .await;
        self.metrics.count_write("status_refresh", result.is_ok());
        match result {
            Ok(_) => Outcome::Refreshed {
                uid: r.uid,
                status: r.status,
            },
            Err(err) => {
                tracing::warn!(ampworker = %r.name, error = %err, "heartbeatAt refresh failed; will retry");
                Outcome::Failed {
                    key: RetryKey::Status(r.name.clone()),
                    uid: r.uid,
                }
            }
        }
    }

    /// A create answered 409: either the store has not caught up with an earlier create
    /// (same nodeId: wait for the watch) or another object (a user's) holds the name with
    /// another nodeId, which only a user can resolve: say so on that object, count it,
    /// and retry rarely.
    async fn on_conflict(&self, name: &str, node_id: &str) -> Outcome {
        let key = RetryKey::Create(name.to_owned());
        let holder = match self.workers_api.get_opt(name).await {
            Ok(Some(holder)) => holder,
            Ok(None) => {
                tracing::warn!(ampworker = %name, node_id, "create conflicted but the object is gone; will retry");
                return Outcome::Failed { key, uid: None };
            }
            Err(err) => {
                tracing::warn!(ampworker = %name, node_id, error = %err, "create conflicted and the holder cannot be read; will retry");
                return Outcome::Failed { key, uid: None };
            }
        };
        if holder.spec.node_id == node_id {
            tracing::debug!(ampworker = %name, node_id, "AmpWorker already exists; waiting for the watch to show it");
            return Outcome::Failed { key, uid: None };
        }
        self.metrics.name_collisions.inc();
        tracing::warn!(
            ampworker = %name,
            node_id,
            holder_node_id = %holder.spec.node_id,
            "name collision: another AmpWorker holds the name this worker needs"
        );
        let event = StatusEvent {
            reason: NAME_COLLISION_REASON,
            warning: true,
            note: format!(
                "worker {node_id:?} needs the AmpWorker name {name:?}, held by this object with nodeId {:?}; \
                 rename or delete this object, or create an AmpWorker with nodeId {node_id:?} under another name",
                holder.spec.node_id
            ),
        };
        let reference =
            object_ref::<AmpWorker>(name, &self.config.namespace, holder.metadata.uid.as_deref());
        self.publish(&event, &reference).await;
        Outcome::Collision { key }
    }

    /// Applies `status`, then publishes `events` about it; returns how many were published.
    async fn write_status<K, S>(
        &self,
        api: &Api<K>,
        metric: &str,
        name: &str,
        uid: Option<&str>,
        status: &S,
        events: &[StatusEvent],
    ) -> Result<usize, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: serde::Serialize,
    {
        let result = apply_status(api, name, status).await;
        self.metrics.count_write(metric, result.is_ok());
        result?;
        let reference = object_ref::<K>(name, &self.config.namespace, uid);
        let mut published = 0;
        for ev in events {
            published += usize::from(self.publish(ev, &reference).await);
        }
        Ok(published)
    }

    /// Events are best effort: a failure is logged and counted, never retried (the
    /// status, which is retried, is the source of truth).
    async fn publish(&self, event: &StatusEvent, reference: &ObjectReference) -> bool {
        let reason = event.reason;
        let ev = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(truncate_note(&event.note, MAX_EVENT_NOTE_BYTES).to_owned()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        match self.recorder.publish(&ev, reference).await {
            Ok(()) => {
                self.metrics.count_event(reason);
                self.metrics.count_write("event", true);
                true
            }
            Err(err) => {
                self.metrics.count_write("event", false);
                tracing::warn!(reason, object = ?reference.name, error = %err, "event not published");
                false
            }
        }
    }
}

/// `note` cut to at most `max_bytes` bytes, on a character boundary (the API server
/// counts bytes; cutting inside a multi-byte character would make invalid UTF-8).
pub fn truncate_note(note: &str, max_bytes: usize) -> &str {
    if note.len() <= max_bytes {
        return note;
    }
    let mut end = max_bytes;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    &note[..end]
}

/// Server-side apply of the whole status, owned by [`FIELD_MANAGER`] (forced: the
/// operator is the only writer of status).
async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}

/// The reference events point at, from kube's own `ObjectRef` (kind, apiVersion, name,
/// namespace) plus the uid, so an event never attaches to a re-created namesake.
fn object_ref<K: Resource<DynamicType = ()>>(
    name: &str,
    namespace: &str,
    uid: Option<&str>,
) -> ObjectReference {
    let mut reference: ObjectReference = ObjectRef::<K>::new(name).within(namespace).into();
    reference.uid = uid.map(str::to_owned);
    reference
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_1024_bytes_on_a_char_boundary() {
        assert_eq!(truncate_note("short", MAX_EVENT_NOTE_BYTES), "short");
        let exact = "a".repeat(1024);
        assert_eq!(truncate_note(&exact, MAX_EVENT_NOTE_BYTES), exact);
        // 2-, 3- and 4-byte characters, offset so the limit falls inside one of each.
        for (pad, ch) in [
            (1, 'é'),
            (1, '€'),
            (2, '€'),
            (1, '😀'),
            (2, '😀'),
            (3, '😀'),
        ] {
            let note = format!("{}{}", "a".repeat(pad), ch.to_string().repeat(600));
            let cut = truncate_note(&note, MAX_EVENT_NOTE_BYTES);
            assert!(cut.len() <= MAX_EVENT_NOTE_BYTES, "{ch}: {}", cut.len());
            assert!(
                cut.len() > MAX_EVENT_NOTE_BYTES - ch.len_utf8(),
                "{ch}: no more cut than needed ({})",
                cut.len()
            );
            assert!(note.starts_with(cut));
            assert!(cut.ends_with(ch), "whole characters only");
        }
    }
}
