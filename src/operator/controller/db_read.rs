//! The DB read of a cycle: one bounded snapshot, and what an outage leaves behind (the
//! grace for workers that could not heartbeat while the DB was down).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::super::metrics::OperatorMetrics;
use super::super::status::DbView;
use super::super::status::jobs::{JobsIndex, JobsView};
use crate::metadata_db::{self, InfoCache, JobsRead, JobsSnapshot, OperatorSnapshot, SnapshotRow};

pub(super) struct DbReader {
    pool: PgPool,
    /// Bound of the snapshot read: a DB that does not answer is `Unknown` after
    /// poll interval + this, not after the kernel's TCP retransmission timeout.
    pub(super) timeout: Duration,
    /// Each row's `info`, read again only when its registration changes.
    info: InfoCache,
    /// DB clock of the last good read; set while the DB is down.
    outage_since: Option<DateTime<Utc>>,
    last_ok_db_now: Option<DateTime<Utc>>,
    /// Why the DB could not be read, while it cannot.
    outage_cause: Option<&'static str>,
    /// (last good read before the outage, first read after it).
    recovery: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Amp's jobs, read every `jobs_interval` (not every poll).
    pub(super) jobs: JobsReader,
}

/// The jobs read at its own cadence, and what it last found.
pub(super) struct JobsReader {
    pub(super) interval: Duration,
    last: Option<Instant>,
    pub(super) view: JobsView,
    /// What was last logged about the job tables, so each problem is logged once.
    logged: Option<String>,
}

impl JobsReader {
    fn new() -> Self {
        Self {
            interval: Duration::from_secs(10),
            last: None,
            view: JobsView::Absent,
            logged: None,
        }
    }

    /// Reads the jobs when due (and only while the snapshot read works); a failed read
    /// keeps the last view.
    pub(super) async fn refresh(
        &mut self,
        pool: &PgPool,
        timeout: Duration,
        db_ok: bool,
        metrics: &OperatorMetrics,
    ) {
        if !db_ok || self.last.is_some_and(|t| t.elapsed() < self.interval) {
            return;
        }
        self.last = Some(Instant::now());
        match metadata_db::jobs_within(pool, timeout).await {
            Ok(JobsRead::NoJobTables) => {
                self.view = JobsView::Absent;
                self.logged = None;
            }
            Ok(JobsRead::Unknown(why)) => {
                if self.logged.as_deref() != Some(why.as_str()) {
                    tracing::warn!(problem = %why, "Amp's jobs cannot be read; workers are still mirrored");
                    self.logged = Some(why.clone());
                }
                metrics.set_jobs(None);
                self.view = JobsView::Unknown(why);
            }
            Ok(JobsRead::Read(snapshot)) => {
                if self.logged.take().is_some() {
                    tracing::info!("Amp's jobs can be read again");
                }
                metrics.set_jobs(Some(totals(&snapshot)));
                self.view = JobsView::Known(Arc::new(JobsIndex::new(snapshot)));
            }
            Err(err) => {
                let why = err.to_string();
                if self.logged.as_deref() != Some(why.as_str()) {
                    tracing::warn!(error = %err, op = err.op(), "jobs read failed; the last jobs read stays shown");
                    self.logged = Some(why);
                }
            }
        }
    }
}

/// Counts by status over all assignees, in `metrics::JOB_STATUS_LABELS` order.
fn totals(snapshot: &JobsSnapshot) -> [i64; 6] {
    let mut t = [0u64; 6];
    for n in &snapshot.nodes {
        for (slot, v) in t.iter_mut().zip([
            n.scheduled,
            n.running,
            n.stop_requested,
            n.stopping,
            n.retrying,
            n.unknown,
        ]) {
            *slot += v;
        }
    }
    t.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl DbReader {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            timeout: metadata_db::DEFAULT_DB_TIMEOUT,
            info: InfoCache::default(),
            outage_since: None,
            outage_cause: None,
            last_ok_db_now: None,
            recovery: None,
            jobs: JobsReader::new(),
        }
    }

    /// Reads Amp's jobs when due; the view every cycle judges with.
    pub(super) async fn read_jobs(&mut self, db_ok: bool, metrics: &OperatorMetrics) -> JobsView {
        self.jobs
            .refresh(&self.pool, self.timeout, db_ok, metrics)
            .await;
        self.jobs.view.clone()
    }

    /// DB clock of the last good read before the latest outage, while recovering.
    pub(super) fn recovery_from(&self) -> Option<DateTime<Utc>> {
        self.recovery.map(|(since, _)| since)
    }

    pub(super) async fn read(&mut self, metrics: &OperatorMetrics) -> (DbView, Vec<SnapshotRow>) {
        let started = Instant::now();
        let result =
            metadata_db::operator_snapshot_within(&self.pool, self.timeout, &mut self.info).await;
        metrics
            .poll_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(OperatorSnapshot { db_now, rows }) => {
                metrics.record_metadata_db_read(None);
                self.outage_cause = None;
                if let Some(since) = self.outage_since.take() {
                    tracing::info!(down_since = %crate::timestamps::format_timestamp(&since), "metadata DB readable again");
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
                    rows,
                )
            }
            Err(err) => {
                metrics.record_metadata_db_read(Some(err.summary().unwrap_or("unknown cause")));
                let cause = err.summary();
                if self.outage_since.is_none() {
                    self.outage_since = Some(self.last_ok_db_now.unwrap_or_else(Utc::now));
                    tracing::warn!(error = %err, op = err.op(), "metadata DB unavailable; worker health is Unknown until it returns");
                } else if cause != self.outage_cause {
                    // One line per change of cause, not one per cycle.
                    tracing::warn!(error = %err, op = err.op(), "metadata DB still unavailable, for another reason");
                }
                self.outage_cause = cause;
                (
                    DbView::Unavailable {
                        cause: err.summary(),
                    },
                    Vec::new(),
                )
            }
        }
    }
}
