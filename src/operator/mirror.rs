//! A watch's objects as each cycle reads them: one list the cycle owns and lends to the
//! planner, changed only where the watch changed something.
//!
//! kube's reflector store hands out a new `Vec` of cloned `Arc`s on every read: at
//! 10,000 AmpWorkers and 10,000 Pods, 20,000 reference counts raised and dropped again
//! each cycle, each in an object's own memory (a fifth of the operator's CPU in a
//! profile, docs/benchmarks.md). Here the watch task leaves what changed in an inbox
//! (the latest object per name, or a whole relist), and the cycle takes it in before it
//! reads ([`Mirror::sync`]): a settled fleet costs the cycle a lock and an empty map.

use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};

use compact_str::CompactString;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use super::cache::CachedWorker;
use super::crd::AmpWorkerFleet;
use super::pods::WorkerPod;

/// What the watch changed since the cycle last took it in. Bounded by the namespace's
/// objects: one entry per name, and at most one relist in the making and one made.
struct Inbox<C> {
    /// The latest object per name, or None once deleted.
    changes: foldhash::HashMap<CompactString, Option<Arc<C>>>,
    /// A relist under way (between `Init` and `InitDone`).
    relisting: Option<Vec<Arc<C>>>,
    /// A finished relist: every object there is, replacing what the cycle holds.
    relisted: Option<Vec<Arc<C>>>,
}

impl<C> Default for Inbox<C> {
    fn default() -> Self {
        Self {
            changes: foldhash::HashMap::default(),
            relisting: None,
            relisted: None,
        }
    }
}

/// The watch task's half: takes every watch event.
pub struct Feed<C> {
    inbox: Arc<Mutex<Inbox<C>>>,
    ready: watch::Sender<bool>,
}

/// The cycle's half: the objects, as of the last [`Mirror::sync`].
pub struct Mirror<C> {
    inbox: Arc<Mutex<Inbox<C>>>,
    ready: watch::Receiver<bool>,
    objects: Vec<Arc<C>>,
    /// Each object's place in `objects`, by name (one mirror watches one namespace).
    index: foldhash::HashMap<CompactString, usize>,
}

/// The watch mirrored closes: its task is gone.
#[derive(Debug, thiserror::Error)]
#[error("the watch feeding this cache stopped")]
pub struct FeedClosed;

/// A mirror and the feed that fills it.
pub fn mirror<C>() -> (Mirror<C>, Feed<C>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let (ready_tx, ready_rx) = watch::channel(false);
    let mirror = Mirror {
        inbox: inbox.clone(),
        ready: ready_rx,
        objects: Vec::new(),
        index: foldhash::HashMap::default(),
    };
    (
        mirror,
        Feed {
            inbox,
            ready: ready_tx,
        },
    )
}

/// What a mirror files an object by: its name (a mirror watches one namespace).
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for CachedWorker {
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

impl Named for WorkerPod {
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

impl Named for AmpWorkerFleet {
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

fn name_of<C: Named>(object: &C) -> CompactString {
    CompactString::from(object.name())
}

/// The inbox, also after a panic elsewhere while it was held (its state is whole
/// between any two statements that change it).
fn open<C>(inbox: &Mutex<Inbox<C>>) -> std::sync::MutexGuard<'_, Inbox<C>> {
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: Named> Feed<C> {
    /// One watch event: a relist is collected whole before it replaces anything (as
    /// kube's reflector does); a change replaces the name's earlier one.
    pub fn apply(&self, event: Event<C>) {
        let mut inbox = open(&self.inbox);
        match event {
            Event::Init => inbox.relisting = Some(Vec::new()),
            Event::InitApply(object) => inbox
                .relisting
                .get_or_insert_with(Vec::new)
                .push(Arc::new(object)),
            Event::InitDone => {
                inbox.relisted = Some(inbox.relisting.take().unwrap_or_default());
                // Older than the relist, which shows their outcome.
                inbox.changes.clear();
                drop(inbox);
                self.ready.send_replace(true);
            }
            Event::Apply(object) => {
                inbox
                    .changes
                    .insert(name_of(&object), Some(Arc::new(object)));
            }
            Event::Delete(object) => {
                inbox.changes.insert(name_of(&object), None);
            }
        }
    }
}

impl<C: Named> Mirror<C> {
    /// Waits for the watch's first complete list.
    pub async fn ready(&self) -> Result<(), FeedClosed> {
        self.ready
            .clone()
            .wait_for(|ready| *ready)
            .await
            .map(drop)
            .map_err(|_| FeedClosed)
    }

    /// Takes in what the watch changed; the objects as it shows them now. Unchanged
    /// objects keep their place (a deleted one's is taken by the last).
    pub fn sync(&mut self) -> &[Arc<C>] {
        let (relisted, changes) = {
            let mut inbox = open(&self.inbox);
            (inbox.relisted.take(), std::mem::take(&mut inbox.changes))
        };
        if let Some(objects) = relisted {
            self.objects.clear();
            self.index.clear();
            for object in objects {
                self.put(name_of(object.as_ref()), object);
            }
        }
        for (name, change) in changes {
            match change {
                Some(object) => self.put(name, object),
                None => self.remove(&name),
            }
        }
        &self.objects
    }

    fn put(&mut self, name: CompactString, object: Arc<C>) {
        match self.index.entry(name) {
            Entry::Occupied(at) => self.objects[*at.get()] = object,
            Entry::Vacant(slot) => {
                slot.insert(self.objects.len());
                self.objects.push(object);
            }
        }
    }

    fn remove(&mut self, name: &str) {
        let Some(at) = self.index.remove(name) else {
            return;
        };
        self.objects.swap_remove(at);
        if let Some(moved) = self.objects.get(at)
            && let Some(place) = self.index.get_mut(name_of(moved.as_ref()).as_str())
        {
            *place = at;
        }
    }
}

#[cfg(test)]
mod tests;
