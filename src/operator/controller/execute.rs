//! Write execution: the plan's creates, status writes, refreshes and deletes as jobs,
//! run a few at a time; what landed is remembered, what failed backs off.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Resource, ResourceExt};

use super::super::cache::CachedWorker;
use super::super::crd::{AmpWorker, AmpWorkerFleetStatus, AmpWorkerStatus, FIELD_MANAGER};
use super::super::plan::{Delete, Plan, Refresh, StatusWrite};
use super::super::status::StatusEvent;
use super::events::{NAME_COLLISION_REASON, object_ref};
use super::retry::RetryKey;
use super::{CycleReport, Reconciler};

type Job<'a> = futures::future::BoxFuture<'a, Outcome>;

pub(super) enum Outcome {
    Created {
        node_id: String,
        obj: Box<CachedWorker>,
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

impl Reconciler {
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
        let worker_writes = plan
            .worker_writes
            .into_iter()
            .map(move |w| -> Job<'a> { Box::pin(self.worker_write(w)) });
        let fleet_writes = plan
            .fleet_writes
            .into_iter()
            .map(move |f| -> Job<'a> { Box::pin(self.fleet_write(f)) });
        let deletes = plan
            .deletes
            .into_iter()
            .map(move |d| -> Job<'a> { Box::pin(self.delete(d)) });
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

    async fn worker_write(&self, w: StatusWrite<AmpWorkerStatus>) -> Outcome {
        let written = self
            .write_status(
                &self.workers_api,
                "status",
                &w.name,
                w.uid.as_deref(),
                &w.status,
                &w.events,
            )
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
    }

    async fn fleet_write(&self, f: StatusWrite<AmpWorkerFleetStatus>) -> Outcome {
        let written = self
            .write_status(
                &self.fleets_api,
                "fleet_status",
                &f.name,
                f.uid.as_deref(),
                &f.status,
                &f.events,
            )
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
    }

    async fn delete(&self, d: Delete) -> Outcome {
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
    }

    pub(super) async fn execute(&mut self, plan: Plan, report: &mut CycleReport) {
        let jobs = self.jobs(plan);
        let outcomes: Vec<Outcome> = futures::stream::iter(jobs)
            .buffer_unordered(self.config.write_concurrency.max(1))
            .collect()
            .await;
        for outcome in outcomes {
            self.record(outcome, report);
        }
        self.retries.prune();
    }

    /// Remembers what landed (the watch may lag behind it) and backs off what failed.
    // One piece on purpose: one exhaustive match over the outcomes, a few lines of
    // bookkeeping per arm; split, a new outcome could be recorded in one place and
    // forgotten in another.
    fn record(&mut self, outcome: Outcome, report: &mut CycleReport) {
        {
            match outcome {
                Outcome::Created {
                    node_id,
                    obj,
                    status,
                } => {
                    report.created += 1;
                    // Kept (as cached) until the watch shows it.
                    let obj = Arc::new(*obj);
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
                    self.retries.collided(key);
                }
                Outcome::Failed { key, uid } => {
                    report.errors += 1;
                    if let Some(uid) = uid {
                        // Unknown what the server holds now: compare with the store next time.
                        self.written.workers.remove(&uid);
                        self.written.fleets.remove(&uid);
                    }
                    self.retries.failed(key);
                }
            }
        }
    }

    async fn create(
        &self,
        obj: AmpWorker,
        status: AmpWorkerStatus,
        events: Vec<StatusEvent>,
    ) -> Outcome {
        let name = obj.name_any();
        let node_id = obj.spec.node_id.clone();
        // Named, so `managedFields` says who made the object (the server says "unknown").
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let created = match self.workers_api.create(&params, &obj).await {
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
        // Cached at once: a cycle's outcomes are all alive until the last write ends,
        // and the server's answer carries managedFields.
        Outcome::Created {
            node_id,
            obj: Box::new(CachedWorker::from(created)),
            status,
        }
    }

    /// A budgeted write: a heartbeat refresh, or a fill of fields the stored status lacks.
    async fn refresh(&self, r: Refresh) -> Outcome {
        let result = if r.fill {
            // Fields this operator adds to a stored status (after an upgrade): the whole
            // status is applied, as a transition's is, but within the refresh budget.
            self.write_status(
                &self.workers_api,
                "status_fill",
                &r.name,
                r.uid.as_deref(),
                &r.status,
                &[],
            )
            .await
            .map(drop)
        } else {
            self.patch_heartbeat(&r).await
        };
        match result {
            Ok(_) => Outcome::Refreshed {
                uid: r.uid,
                status: r.status,
            },
            Err(err) => {
                tracing::warn!(ampworker = %r.name, fill = r.fill, error = %err, "budgeted status write failed; will retry");
                Outcome::Failed {
                    key: RetryKey::Status(r.name.clone()),
                    uid: r.uid,
                }
            }
        }
    }

    /// A merge patch of `status.heartbeatAt` alone: the rest of the status is unchanged
    /// by construction, and a one-field patch costs the API server less than applying the
    /// whole status (docs/benchmarks.md). The operator is the only status writer, so the
    /// field is owned by `amp-operator` either way.
    async fn patch_heartbeat(&self, r: &Refresh) -> Result<(), kube::Error> {
        let body = serde_json::json!({"status": {"heartbeatAt": r.heartbeat_at}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let result =
            patch_status_unread(&self.workers_api, &r.name, &params, &Patch::Merge(&body)).await;
        self.metrics.count_write("status_refresh", result.is_ok());
        result
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
        self.events.publish(&event, &reference).await;
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
            published += usize::from(self.events.publish(ev, &reference).await);
        }
        Ok(published)
    }
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
    patch_status_unread(
        api,
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
}

/// [`Api::patch_status`] without decoding the object it answers: the operator never
/// reads it (the watch brings the new version), and decoding a whole AmpWorker per
/// status write was a visible share of the operator's CPU (docs/benchmarks.md). Errors
/// are kube's own, from the same request and the same status handling.
async fn patch_status_unread<K, P>(
    api: &Api<K>,
    name: &str,
    params: &PatchParams,
    patch: &Patch<P>,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone,
    P: serde::Serialize,
{
    let mut req = kube::core::Request::new(api.resource_url())
        .patch_subresource("status", name, params, patch)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("patch_status");
    api.clone().into_client().request_text(req).await.map(drop)
}
