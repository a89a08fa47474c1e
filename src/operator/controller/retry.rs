//! Retry bookkeeping: a failed write of an object backs off (per object and kind of
//! write), so one broken object neither hammers the API server nor delays the others.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::super::plan::Plan;
use crate::backoff::Backoff;

const FIRST_WRITE_RETRY: Duration = Duration::from_secs(1);
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(60);
/// A name held by another object does not free itself within seconds: a user has to
/// act, so the create is re-attempted (and the Warning repeated) rarely.
const FIRST_COLLISION_RETRY: Duration = Duration::from_secs(30);
const MAX_COLLISION_BACKOFF: Duration = Duration::from_secs(30 * 60);

/// What a failed write backs off: one object's create, status, fleet status or delete.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum RetryKey {
    Create(String),
    Status(String),
    FleetStatus(String),
    Delete(String),
}

/// Retry state of one object's failed write.
struct Retry {
    backoff: Backoff,
    until: Instant,
}

#[derive(Default)]
pub(super) struct Retries {
    by_key: HashMap<RetryKey, Retry>,
}

impl Retries {
    fn backed_off(&self, key: &RetryKey) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|b| Instant::now() < b.until)
    }

    /// Takes out of the plan what is still backing off.
    pub(super) fn drop_backed_off(&self, plan: &mut Plan) {
        if self.by_key.is_empty() {
            return;
        }
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

    pub(super) fn failed(&mut self, key: RetryKey) {
        self.back_off(key, FIRST_WRITE_RETRY, MAX_WRITE_BACKOFF);
    }

    /// The name is held by an object of another nodeId.
    pub(super) fn collided(&mut self, key: RetryKey) {
        self.back_off(key, FIRST_COLLISION_RETRY, MAX_COLLISION_BACKOFF);
    }

    fn back_off(&mut self, key: RetryKey, first: Duration, max: Duration) {
        let retry = self.by_key.entry(key).or_insert_with(|| Retry {
            backoff: Backoff::new(first, max),
            until: Instant::now(),
        });
        retry.until = Instant::now() + retry.backoff.next_delay();
    }

    /// Forgets objects that have not failed for a while.
    pub(super) fn prune(&mut self) {
        self.by_key
            .retain(|_, b| Instant::now() < b.until + MAX_WRITE_BACKOFF + b.backoff.max());
    }

    pub(super) fn clear(&mut self) {
        self.by_key.clear();
    }
}
