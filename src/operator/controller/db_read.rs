//! The DB read of a cycle: one bounded snapshot, and what an outage leaves behind (the
//! grace for workers that could not heartbeat while the DB was down).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::super::metrics::OperatorMetrics;
use super::super::status::DbView;
use crate::metadata_db::{self, InfoCache, OperatorSnapshot, SnapshotRow};

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
        }
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
