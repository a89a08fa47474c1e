//! Garbage collection: only AmpWorkers the operator discovered, only while the DB can
//! be read; a duplicate of a user's object, a worker gone past `--gc-after`, or one
//! stopped past `--gc-stopped-after`. Rows are never deleted.

use chrono::{DateTime, Utc};

use super::super::cache::CachedWorker;
use super::discovery::is_discovered;
use super::stored::Stored;
use super::{Cycle, Delete, Node};
use crate::metadata_db::SnapshotRow;

/// The delete of an existing AmpWorker, if it is to be collected.
pub(super) fn collect(
    c: &Cycle,
    w: &CachedWorker,
    node: Node,
    stored: Option<Stored>,
) -> Option<Delete> {
    // Only while the DB can be read.
    c.db_now?;
    let row = node.row;
    // The rules first, on numbers the cycle holds; the label lookup (strings, every
    // worker every cycle) only for the rare worker a rule would collect.
    let why = if node.claimed_by_user == Some(true) {
        // Another AmpWorker, one a user created, claims the same node id.
        Why::UserOwned
    } else if c.gone(last_seen(w, row, stored)) {
        Why::Gone
    } else if c.stopped_long(row) {
        Why::Stopped
    } else {
        return None;
    };
    if !is_discovered(w) {
        return None;
    }
    Some(Delete {
        name: w.name_any(),
        uid: w.metadata.uid.clone(),
        why: why.say(&w.spec.node_id),
    })
}

enum Why {
    UserOwned,
    Gone,
    Stopped,
}

impl Why {
    fn say(&self, node_id: &str) -> String {
        match self {
            Why::UserOwned => {
                format!("an AmpWorker created by a user already has nodeId {node_id:?}")
            }
            Why::Gone => format!("worker {node_id:?} gone longer than --gc-after"),
            Why::Stopped => {
                format!("worker {node_id:?} stopped longer than --gc-stopped-after")
            }
        }
    }
}

/// The last heartbeat known: the row's, else the one shown, else the object's creation.
fn last_seen(
    w: &CachedWorker,
    row: Option<&SnapshotRow>,
    stored: Option<Stored>,
) -> Option<DateTime<Utc>> {
    row.map(|r| r.heartbeat_at).or_else(|| {
        stored.and_then(Stored::heartbeat_at).or_else(|| {
            w.metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0))
        })
    })
}
