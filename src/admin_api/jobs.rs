//! The `jobs` summary of `GET /workers/{id}`: Amp's unfinished jobs on the worker, from
//! Amp's job tables (omitted where the metadata DB has none, or they cannot be read).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::wire::Worker;
use crate::metadata_db::{self, JobsRead, NodeJobs};
use crate::timestamps::{truncate, whole_seconds};

/// A worker with its jobs: the fields of [`Worker`], plus `jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerDetail {
    #[serde(flatten)]
    pub worker: Worker,
    /// Amp's unfinished jobs assigned to this worker. Absent when the metadata DB has no
    /// job tables (not an Amp-managed DB) or the Admin API's role may not read them.
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
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    WorkerJobs {
        active: count(j.active()),
        scheduled: count(j.scheduled),
        running: count(j.running),
        stopping: count(j.stop_requested + j.stopping),
        retrying: count(j.retrying),
        unknown: count(j.unknown),
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
    match metadata_db::node_jobs_within(pool, timeout, node_id).await {
        Ok(JobsRead::Read(snapshot)) => Some(summary(snapshot.node(node_id), snapshot.db_now)),
        Ok(JobsRead::NoJobTables) => None,
        Ok(JobsRead::Unknown(why)) => {
            tracing::debug!(problem = %why, "worker served without jobs");
            None
        }
        Err(err) => {
            tracing::warn!(error = %err, op = err.op(), "jobs read failed; worker served without jobs");
            None
        }
    }
}
