//! What the cycle derives from a cached AmpWorker alone, remembered by position: its
//! `amp.io/discovered` label and where its Pod is in its fleet's Pod index.
//!
//! The cache lists its objects in the same order from one cycle to the next while they
//! do not change, so a worker's facts are found by comparing two pointers instead of
//! searching its labels (three allocations visited) and hashing its node id into the
//! Pod index: together about a tenth of the operator's CPU at 10,000 workers. Every
//! `Arc` is held, so a pointer stands for one object (or one index) only.

use std::sync::Arc;

use super::super::cache::CachedWorker;
use super::discovery::is_discovered;
use crate::operator::pods::PodIndex;

#[derive(Debug, Default)]
pub struct ObjectFacts {
    seen: Vec<Seen>,
}

#[derive(Debug)]
struct Seen {
    object: Arc<CachedWorker>,
    discovered: bool,
    /// The index last looked in, and the position of the object's Pod there.
    pod: Option<(Arc<PodIndex>, Option<usize>)>,
}

impl Seen {
    fn of(object: &Arc<CachedWorker>) -> Self {
        Self {
            object: object.clone(),
            discovered: is_discovered(object),
            pod: None,
        }
    }
}

impl ObjectFacts {
    /// Brings the facts to `workers` (in their order): an object not at the same place
    /// last cycle is read afresh.
    pub(super) fn follow(&mut self, workers: &[Arc<CachedWorker>]) {
        self.seen.truncate(workers.len());
        for (i, w) in workers.iter().enumerate() {
            match self.seen.get_mut(i) {
                Some(seen) if Arc::ptr_eq(&seen.object, w) => {}
                Some(slot) => *slot = Seen::of(w),
                None => self.seen.push(Seen::of(w)),
            }
        }
    }

    /// The `amp.io/discovered` label of each object of the last [`Self::follow`], in its
    /// order.
    pub(super) fn discovered(&self) -> impl Iterator<Item = bool> + '_ {
        self.seen.iter().map(|s| s.discovered)
    }

    /// Where the Pod of the object at `place` (in the last [`Self::follow`]) is in
    /// `index` (its fleet's; None without one): [`PodIndex::position_of`] its node id,
    /// looked up again only when the index is another one. Without an index the one
    /// held is let go (it holds every Pod of its time).
    pub(super) fn pod_position(
        &mut self,
        place: usize,
        index: Option<&Arc<PodIndex>>,
    ) -> Option<usize> {
        let seen = self.seen.get_mut(place)?;
        let Some(index) = index else {
            seen.pod = None;
            return None;
        };
        match &seen.pod {
            Some((held, at)) if Arc::ptr_eq(held, index) => *at,
            _ => {
                let at = index.position_of(&seen.object.spec.node_id);
                seen.pod = Some((index.clone(), at));
                at
            }
        }
    }

    /// How many objects hold an index (for tests).
    #[cfg(test)]
    pub(super) fn holding_an_index(&self) -> usize {
        self.seen.iter().filter(|s| s.pod.is_some()).count()
    }
}
