//! Amp's extraction jobs per assignee: what each worker has on its plate, jobs a worker
//! never picked up, and jobs whose assignee has no `workers` row at all.
//!
//! Read-only, one bounded statement on whichever job schema the DB has (see
//! [`super::schema::JobSchema`]); never a write, never a `NOTIFY` (Amp's worker panics on
//! a `job_actions` payload it does not expect).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, PgPool, Row};

use super::schema::{self, JobSchema};
use super::{DbError, within};

/// Statuses of a job that is assigned and not finished, as Amp writes them.
pub const SCHEDULED: &str = "SCHEDULED";
pub const RUNNING: &str = "RUNNING";
pub const STOP_REQUESTED: &str = "STOP_REQUESTED";
pub const STOPPING: &str = "STOPPING";
/// Nightly: a recoverable failure, retried by Amp's controller on the SAME node.
pub const ERROR: &str = "ERROR";

/// Unknown status strings kept for messages.
const MAX_UNKNOWN_STATUSES: usize = 3;

/// The read of one state table: `$1` is the terminal statuses. A macro so each schema's
/// statement is a `'static` string, audited here, not assembled at run time.
macro_rules! jobs_read {
    ($table:literal, $id:literal) => {
        concat!(
            "WITH RECURSIVE seen(status) AS (
                (SELECT status::text FROM ", $table, " WHERE status IS NOT NULL ORDER BY status LIMIT 1)
              UNION ALL
                SELECT (SELECT j.status::text FROM ", $table, " j
                         WHERE j.status > seen.status ORDER BY j.status LIMIT 1)
                  FROM seen WHERE seen.status IS NOT NULL),
             per_node AS (
                SELECT j.node_id, j.status, count(*) AS jobs,
                       min(j.updated_at::timestamptz) FILTER (WHERE j.status = 'SCHEDULED') AS since,
                       (array_agg(j.", $id, "::bigint ORDER BY j.updated_at, j.", $id, ")
                          FILTER (WHERE j.status = 'SCHEDULED'))[1] AS oldest
                  FROM ", $table, " j
                 WHERE j.status IN (SELECT status FROM seen
                                     WHERE status IS NOT NULL AND status <> ALL($1::text[]))
                 GROUP BY j.node_id, j.status)
             SELECT COALESCE(p.node_id::text, '') AS node_id, left(p.status::text, 64) AS status,
                    p.jobs, p.oldest, p.since,
                    EXISTS (SELECT 1 FROM workers w WHERE w.node_id = p.node_id) AS registered
               FROM per_node p"
        )
    };
}

/// Some node ids' share of [`jobs_read!`], by Amp's `(node_id, status)` index: `$1` the
/// terminal statuses, `$2` the node ids (one worker's, or one page of the worker list's).
macro_rules! node_jobs_read {
    ($table:literal, $id:literal) => {
        concat!(
            "SELECT COALESCE(j.node_id::text, '') AS node_id, left(j.status::text, 64) AS status,
                    count(*) AS jobs,
                    (array_agg(j.", $id, "::bigint ORDER BY j.updated_at, j.", $id, ")
                       FILTER (WHERE j.status = 'SCHEDULED'))[1] AS oldest,
                    min(j.updated_at::timestamptz) FILTER (WHERE j.status = 'SCHEDULED') AS since,
                    EXISTS (SELECT 1 FROM workers w WHERE w.node_id = j.node_id) AS registered
               FROM ", $table, " j
              WHERE j.node_id = ANY($2::text[]) AND j.status <> ALL($1::text[])
              GROUP BY j.node_id, j.status"
        )
    };
}

fn node_jobs_read_sql(schema: &JobSchema) -> Option<&'static str> {
    match schema {
        JobSchema::Nightly => Some(node_jobs_read!("jobs_status", "job_id")),
        JobSchema::Release0035 => Some(node_jobs_read!("jobs", "id")),
        JobSchema::None | JobSchema::Unexpected(_) => None,
    }
}

/// The read for a schema's state table (`None` without one; public so the benchmark can
/// `EXPLAIN` it). Amp's indexes are all there is (we cannot add any to its DB): the
/// distinct statuses come from a skip scan of the `(status)` index (a handful of index
/// probes, however many finished jobs there are), then only the rows of the statuses
/// that are not terminal are read, by the same index. `$1`: the terminal statuses.
pub fn jobs_read_sql(schema: &JobSchema) -> Option<&'static str> {
    match schema {
        JobSchema::Nightly => Some(jobs_read!("jobs_status", "job_id")),
        JobSchema::Release0035 => Some(jobs_read!("jobs", "id")),
        JobSchema::None | JobSchema::Unexpected(_) => None,
    }
}

/// The oldest job still `SCHEDULED` on a worker: assigned, not picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledJob {
    pub id: i64,
    /// When it was assigned (its status row's `updated_at`).
    pub since: DateTime<Utc>,
}

impl ScheduledJob {
    /// How long it has waited, by the DB clock.
    pub fn age(&self, db_now: DateTime<Utc>) -> chrono::Duration {
        (db_now - self.since).max(chrono::Duration::zero())
    }
}

/// One assignee's jobs that are not finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeJobs {
    pub node_id: String,
    /// The node id has a `workers` row (jobs of one without are nobody's).
    pub registered: bool,
    pub scheduled: u64,
    pub running: u64,
    pub stop_requested: u64,
    pub stopping: u64,
    /// Status strings we do not know (neither terminal nor one of the above).
    pub unknown: u64,
    /// Recoverable failures (`ERROR`, nightly): Amp retries them on this node.
    pub retrying: u64,
    pub oldest_scheduled: Option<ScheduledJob>,
}

/// A node's job counts as every reader shows them: `stopping` folds `STOP_REQUESTED` in,
/// and counts saturate at `i64::MAX` (what a Kubernetes or JSON integer holds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub active: i64,
    pub scheduled: i64,
    pub running: i64,
    pub stopping: i64,
    pub retrying: i64,
    pub unknown: i64,
}

impl NodeJobs {
    /// Jobs in one of the four non-terminal states.
    pub fn active(&self) -> u64 {
        self.scheduled + self.running + self.stop_requested + self.stopping
    }

    /// The counts a status or an API answer shows.
    pub fn counts(&self) -> JobCounts {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        JobCounts {
            active: count(self.active()),
            scheduled: count(self.scheduled),
            running: count(self.running),
            stopping: count(self.stop_requested + self.stopping),
            retrying: count(self.retrying),
            unknown: count(self.unknown),
        }
    }

    /// Adds one `(status, count)` group of this node; false when the status is unknown.
    fn add(&mut self, status: &str, jobs: u64) -> bool {
        let slot = match status {
            SCHEDULED => &mut self.scheduled,
            RUNNING => &mut self.running,
            STOP_REQUESTED => &mut self.stop_requested,
            STOPPING => &mut self.stopping,
            ERROR => &mut self.retrying,
            _ => {
                self.unknown += jobs;
                return false;
            }
        };
        *slot += jobs;
        true
    }
}

/// What one read found, with the DB clock it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsSnapshot {
    pub db_now: DateTime<Utc>,
    pub schema: JobSchema,
    /// Every assignee with a job that is not finished, by node id.
    pub nodes: Vec<NodeJobs>,
    /// A few of the unknown status strings seen (cut to 64 characters), for messages.
    pub unknown_statuses: Vec<String>,
}

impl JobsSnapshot {
    pub fn node(&self, node_id: &str) -> Option<&NodeJobs> {
        self.nodes.iter().find(|n| n.node_id == node_id)
    }

    /// Assignees without a `workers` row: their jobs can never resume.
    pub fn unregistered(&self) -> impl Iterator<Item = &NodeJobs> {
        self.nodes.iter().filter(|n| !n.registered)
    }
}

/// The outcome of a jobs read that reached the DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsRead {
    /// No job tables (our own DB): nothing to show.
    NoJobTables,
    /// Job tables we may not or cannot read: jobs unknown (never zero), and why in one
    /// sentence that names the missing grant or the unexpected columns.
    Unknown(String),
    Read(JobsSnapshot),
}

/// One jobs read, bounded by `timeout` on both ends (see [`within`]).
pub async fn jobs_within(pool: &PgPool, timeout: Duration) -> Result<JobsRead, DbError> {
    within(pool, "jobs read", timeout, move |conn| {
        Box::pin(jobs_on(conn, timeout, None))
    })
    .await
}

/// [`jobs_within`] for one node id (the Admin API's `GET /workers/{id}`): its snapshot
/// holds that node's entry, or none when it has no unfinished job.
pub async fn node_jobs_within(
    pool: &PgPool,
    timeout: Duration,
    node_id: &str,
) -> Result<JobsRead, DbError> {
    nodes_jobs_within(pool, timeout, vec![node_id.to_owned()]).await
}

/// [`jobs_within`] for some node ids (a page of `GET /workers?limit=N`), in one statement:
/// the snapshot holds an entry for each of them that has an unfinished job.
pub async fn nodes_jobs_within(
    pool: &PgPool,
    timeout: Duration,
    node_ids: Vec<String>,
) -> Result<JobsRead, DbError> {
    within(pool, "jobs read", timeout, move |conn| {
        Box::pin(jobs_on(conn, timeout, Some(node_ids)))
    })
    .await
}

/// Catalog, grants and the read in one READ ONLY transaction at one DB clock.
async fn jobs_on(
    conn: &mut PgConnection,
    timeout: Duration,
    node: Option<Vec<String>>,
) -> Result<JobsRead, DbError> {
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(DbError::query("begin jobs read"))?;
    let (db_now, _, _): (DateTime<Utc>, String, String) =
        sqlx::query_as(super::snapshot::SNAPSHOT_SETUP_SQL)
            .bind(format!("{}ms", timeout.as_millis().max(1)))
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::query("read database clock"))?;
    let tables = schema::job_tables(&mut tx).await?;
    let statement = match node {
        None => jobs_read_sql(&tables.schema),
        Some(_) => node_jobs_read_sql(&tables.schema),
    };
    let sql = match (&tables.schema, statement) {
        (JobSchema::None, _) => return Ok(JobsRead::NoJobTables),
        (JobSchema::Unexpected(what), _) => {
            return Ok(JobsRead::Unknown(format!(
                "jobs unknown: Amp's job tables have an unexpected shape: {what}"
            )));
        }
        _ if !tables.missing_select.is_empty() => {
            return Ok(JobsRead::Unknown(missing_grant(&tables.missing_select)));
        }
        (_, Some(sql)) => sql,
        (_, None) => return Ok(JobsRead::NoJobTables),
    };
    let mut query = sqlx::query(sql).bind(tables.schema.terminal_statuses());
    if let Some(node) = node {
        query = query.bind(node);
    }
    let rows = query.fetch_all(&mut *tx).await;
    let rows = match rows {
        Ok(rows) => rows,
        // Revoked between the grant check and the read: the same answer.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            let (table, _) = tables.schema.state_table().unwrap_or(("jobs", "id"));
            return Ok(JobsRead::Unknown(missing_grant(&[table.to_owned()])));
        }
        Err(e) => return Err(DbError::query("read jobs")(e)),
    };
    tx.commit()
        .await
        .map_err(DbError::query("commit jobs read"))?;
    let groups = rows
        .iter()
        .map(group_of)
        .collect::<Result<Vec<_>, _>>()
        .map_err(DbError::query("read jobs"))?;
    Ok(JobsRead::Read(snapshot_of(db_now, tables.schema, groups)))
}

/// The one sentence a reader without grants gets (the grant to give, named once).
fn missing_grant(tables: &[String]) -> String {
    let list = tables.join(", ");
    format!(
        "jobs unknown: the metadata DB role may not read {list} (GRANT SELECT ON {list} TO <the reader role>)"
    )
}

/// One `(node, status)` group of the read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    node_id: String,
    status: String,
    jobs: u64,
    oldest: Option<ScheduledJob>,
    registered: bool,
}

fn group_of(row: &PgRow) -> Result<Group, sqlx::Error> {
    let oldest: Option<i64> = row.try_get(3)?;
    let since: Option<DateTime<Utc>> = row.try_get(4)?;
    Ok(Group {
        node_id: row.try_get(0)?,
        status: row.try_get(1)?,
        jobs: u64::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
        oldest: oldest
            .zip(since)
            .map(|(id, since)| ScheduledJob { id, since }),
        registered: row.try_get(5)?,
    })
}

/// Groups folded per node id (sorted, so equal reads compare equal).
fn snapshot_of(db_now: DateTime<Utc>, schema: JobSchema, mut groups: Vec<Group>) -> JobsSnapshot {
    groups.sort_by(|a, b| a.node_id.cmp(&b.node_id).then(a.status.cmp(&b.status)));
    let mut nodes: Vec<NodeJobs> = Vec::new();
    let mut unknown_statuses: Vec<String> = Vec::new();
    for g in groups {
        if nodes.last().is_none_or(|n| n.node_id != g.node_id) {
            nodes.push(NodeJobs {
                node_id: g.node_id.clone(),
                registered: g.registered,
                ..NodeJobs::default()
            });
        }
        let node = nodes.last_mut().expect("pushed above");
        if !node.add(&g.status, g.jobs)
            && unknown_statuses.len() < MAX_UNKNOWN_STATUSES
            && !unknown_statuses.contains(&g.status)
        {
            unknown_statuses.push(g.status.clone());
        }
        if g.oldest.is_some() {
            node.oldest_scheduled = g.oldest;
        }
    }
    JobsSnapshot {
        db_now,
        schema,
        nodes,
        unknown_statuses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(node: &str, status: &str, jobs: u64, registered: bool) -> Group {
        Group {
            node_id: node.into(),
            status: status.into(),
            jobs,
            oldest: None,
            registered,
        }
    }

    #[test]
    fn groups_fold_into_one_entry_per_node() {
        let now = Utc::now();
        let oldest = ScheduledJob {
            id: 42,
            since: now - chrono::Duration::seconds(300),
        };
        let groups = vec![
            group("b", RUNNING, 3, true),
            Group {
                oldest: Some(oldest),
                ..group("a", SCHEDULED, 2, true)
            },
            group("a", "PAUSED", 1, true),
            group("a", ERROR, 4, true),
            group("ghost", STOPPING, 1, false),
            group("b", STOP_REQUESTED, 1, true),
        ];
        let s = snapshot_of(now, JobSchema::Nightly, groups);
        assert_eq!(
            s.nodes,
            vec![
                NodeJobs {
                    node_id: "a".into(),
                    registered: true,
                    scheduled: 2,
                    unknown: 1,
                    retrying: 4,
                    oldest_scheduled: Some(oldest),
                    ..NodeJobs::default()
                },
                NodeJobs {
                    node_id: "b".into(),
                    registered: true,
                    running: 3,
                    stop_requested: 1,
                    ..NodeJobs::default()
                },
                NodeJobs {
                    node_id: "ghost".into(),
                    stopping: 1,
                    ..NodeJobs::default()
                },
            ]
        );
        assert_eq!(s.unknown_statuses, ["PAUSED"]);
        assert_eq!(s.node("a").map(NodeJobs::active), Some(2));
        assert_eq!(
            s.unregistered()
                .map(|n| n.node_id.as_str())
                .collect::<Vec<_>>(),
            ["ghost"]
        );
        assert_eq!(oldest.age(now).num_seconds(), 300);
        assert_eq!(
            oldest.age(oldest.since - chrono::Duration::seconds(5)),
            chrono::Duration::zero()
        );
    }

    #[test]
    fn unknown_statuses_kept_for_messages_are_few() {
        let groups = (0..10)
            .map(|i| group("a", &format!("ODD{i}"), 1, true))
            .collect();
        let s = snapshot_of(Utc::now(), JobSchema::Nightly, groups);
        assert_eq!(s.nodes[0].unknown, 10);
        assert_eq!(s.unknown_statuses, ["ODD0", "ODD1", "ODD2"]);
    }

    #[test]
    fn no_state_table_no_statement() {
        assert_eq!(jobs_read_sql(&JobSchema::None), None);
        assert_eq!(jobs_read_sql(&JobSchema::Unexpected("x".into())), None);
        let nightly = jobs_read_sql(&JobSchema::Nightly).unwrap();
        assert!(nightly.contains("FROM jobs_status j") && !nightly.contains("FROM jobs j"));
        let release = jobs_read_sql(&JobSchema::Release0035).unwrap();
        assert!(release.contains("FROM jobs j") && release.contains("j.id::bigint"));
    }

    #[test]
    fn the_missing_grant_is_named() {
        assert_eq!(
            missing_grant(&["jobs_status".into()]),
            "jobs unknown: the metadata DB role may not read jobs_status (GRANT SELECT ON jobs_status TO <the reader role>)"
        );
    }
}
