//! A worker's stored status as the planner reads it: what this replica wrote and the
//! watch does not show yet (whole), or what the cache holds (its conditions kept apart,
//! [`CachedStatus`]). The fields read every cycle are read in place; the whole status
//! is built only for a worker judged afresh or refreshed.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::super::cache::CachedStatus;
use super::super::crd::{AmpWorkerStatus, WorkerPlacement};

#[derive(Clone, Copy, Debug)]
pub(super) enum Stored<'a> {
    Written(&'a AmpWorkerStatus),
    Cached(&'a CachedStatus),
}

impl<'a> Stored<'a> {
    /// `heartbeatAt` as shown.
    pub(super) fn heartbeat_at(self) -> Option<DateTime<Utc>> {
        match self {
            Stored::Written(s) => s.heartbeat_at,
            Stored::Cached(s) => s.heartbeat_at(),
        }
    }

    /// `placement` as shown.
    pub(super) fn placement(self) -> Option<&'a WorkerPlacement> {
        match self {
            Stored::Written(s) => s.placement.as_ref(),
            Stored::Cached(s) => s.placement(),
        }
    }

    /// `lastRemediationTime` and `remediationCount` as shown.
    pub(super) fn remediation(self) -> (Option<DateTime<Utc>>, Option<i64>) {
        match self {
            Stored::Written(s) => (s.last_remediation_time, s.remediation_count),
            Stored::Cached(s) => s.remediation(),
        }
    }

    /// The whole status (built for a cached one).
    pub(super) fn whole(self) -> Cow<'a, AmpWorkerStatus> {
        match self {
            Stored::Written(s) => Cow::Borrowed(s),
            Stored::Cached(s) => Cow::Owned(s.whole()),
        }
    }
}
