//! The `jobs` summary of `GET /workers/{id}` and of each `GET /workers` entry: Amp's
//! unfinished jobs on the worker, from Amp's job tables (omitted where the metadata DB
//! has none, or they cannot be read).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::wire::Worker;
use crate::metadata_db::{self, JobsRead, JobsSnapshot, NodeJobs};
use crate::timestamps::{truncate, whole_seconds};

/// A worker with its jobs: the fields of [`Worker`], plus `jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerDetail {
    #[serde(flatten)]
    pub worker: Worker,
    /// Amp's unfinished jobs assigned to this worker. Absent when the metadata DB has no
    /// job tables (not an Amp-managed DB), the Admin API's role may not read them, or
    /// the jobs read failed (the worker is still served): unknown, never zeros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<WorkerJobs>,
}

/// Amp's unfinished jobs on one worker, by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerJobs {
    /// SCHEDULED, RUNNING, STOP_REQUESTED or STOPPING.
    pub active: i64,
    /// Assigned, not picked up yet.
    pub scheduled: i64,
    pub running: i64,
    /// STOP_REQUESTED or STOPPING.
    pub stopping: i64,
    /// ERROR: Amp retries them on this same worker.
    pub retrying: i64,
    /// Status strings this version does not know (never counted as finished).
    pub unknown: i64,
    /// The job SCHEDULED on this worker the longest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_scheduled: Option<OldestScheduled>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OldestScheduled {
    /// Amp's job id.
    pub id: i64,
    /// When it was scheduled on this worker.
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T10:00:00Z")]
    pub since: DateTime<Utc>,
    /// How long it has waited, by the metadata DB's clock.
    pub age_seconds: i64,
}

/// The summary of one node's jobs at `db_now` (zeros without any).
pub fn summary(jobs: Option<&NodeJobs>, db_now: DateTime<Utc>) -> WorkerJobs {
    let Some(j) = jobs else {
        return WorkerJobs::default();
    };
    let c = j.counts();
    WorkerJobs {
        active: c.active,
        scheduled: c.scheduled,
        running: c.running,
        stopping: c.stopping,
        retrying: c.retrying,
        unknown: c.unknown,
        oldest_scheduled: j.oldest_scheduled.map(|o| OldestScheduled {
            id: o.id,
            since: truncate(o.since),
            age_seconds: o.age(db_now).num_seconds(),
        }),
    }
}

/// The `jobs` of `node_id`, or None (no job tables, no grant, or the read failed: the
/// worker itself is still served).
pub async fn read(
    pool: &sqlx::PgPool,
    timeout: std::time::Duration,
    node_id: &str,
) -> Option<WorkerJobs> {
    let read = metadata_db::node_jobs_within(pool, timeout, node_id).await;
    let snapshot = snapshot_of(read)?;
    Some(summary(snapshot.node(node_id), snapshot.db_now))
}

/// The jobs of every worker of one list answer, from ONE read: the whole fleet's for the
/// streamed list (`node_ids` None), a page's node ids for `?limit=N`. `of` is None for
/// every worker where the jobs are unknown (as [`read`]).
pub async fn read_list(
    pool: &sqlx::PgPool,
    timeout: std::time::Duration,
    node_ids: Option<Vec<String>>,
) -> ListJobs {
    let read = match node_ids {
        None => metadata_db::jobs_within(pool, timeout).await,
        Some(ids) if ids.is_empty() => return ListJobs(None),
        Some(ids) => metadata_db::nodes_jobs_within(pool, timeout, ids).await,
    };
    ListJobs(snapshot_of(read).map(|s| {
        let db_now = s.db_now;
        let nodes = s.nodes.into_iter().map(|n| (n.node_id.clone(), n));
        (db_now, nodes.collect())
    }))
}

/// One list answer's jobs by node id, at the DB clock they were read (None: unknown).
pub struct ListJobs(Option<(DateTime<Utc>, std::collections::HashMap<String, NodeJobs>)>);

impl ListJobs {
    /// A listed worker's `jobs`: zeros when it has none, None when unknown.
    pub fn of(&self, node_id: &str) -> Option<WorkerJobs> {
        let (db_now, nodes) = self.0.as_ref()?;
        Some(summary(nodes.get(node_id), *db_now))
    }
}

/// The snapshot of a read that worked; otherwise why not, logged (the workers are still
/// served, without `jobs`).
fn snapshot_of(read: Result<JobsRead, metadata_db::DbError>) -> Option<JobsSnapshot> {
    match read {
        Ok(JobsRead::Read(snapshot)) => Some(snapshot),
        Ok(JobsRead::NoJobTables) => None,
        Ok(JobsRead::Unknown(why)) => {
            tracing::debug!(problem = %why, "workers served without jobs");
            None
        }
        Err(err) => {
            tracing::warn!(error = %err, op = err.op(), "jobs read failed; workers served without jobs");
            None
        }
    }
}
