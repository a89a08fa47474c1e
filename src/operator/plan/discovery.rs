//! Discovery: a row nobody claims gets an AmpWorker, for workers that run, not for
//! history: never for a stopped one (so deleting a retired worker's object sticks), nor
//! for one long gone.

use std::collections::BTreeMap;

use super::super::cache::CachedWorker;
use super::super::crd::{AmpWorker, AmpWorkerSpec, DISCOVERED_LABEL, NODE_ID_ANNOTATION};
use super::super::naming::object_name;
use super::Cycle;
use crate::metadata_db::{LockState, SnapshotRow};

/// Creates planned per cycle, smallest node ids first: a discovery of 10,000 workers is
/// ten cycles of 1,000, not one of 10,000 (a cycle's created objects, their first
/// statuses and the server's answers are alive together until the watch shows them: the
/// operator's memory peak was the end of a discovery).
pub const DISCOVERY_CHUNK: usize = 1_000;

/// The AmpWorker the operator creates for a row nobody has claimed.
pub fn discovered_worker(node_id: &str) -> AmpWorker {
    let mut w = AmpWorker::new(
        &object_name(node_id),
        AmpWorkerSpec {
            node_id: node_id.to_owned(),
            expected_version: None,
            heartbeat_timeout_seconds: None,
            job_pickup_timeout_seconds: None,
        },
    );
    w.metadata.labels = Some(BTreeMap::from([(
        DISCOVERED_LABEL.to_owned(),
        "true".to_owned(),
    )]));
    w.metadata.annotations = Some(BTreeMap::from([(
        NODE_ID_ANNOTATION.to_owned(),
        node_id.to_owned(),
    )]));
    w
}

pub(super) fn is_discovered(w: &CachedWorker) -> bool {
    w.labels().get(DISCOVERED_LABEL).map(String::as_str) == Some("true")
}

/// New AmpWorkers for the unclaimed rows of running workers, by node id, at most
/// [`DISCOVERY_CHUNK`] (the rest in the next cycles); none while the DB cannot be read.
pub(super) fn discover(c: &Cycle) -> Vec<CachedWorker> {
    if c.db_now.is_none() {
        return Vec::new();
    }
    // The rows no AmpWorker claims, from the cycle's index (no second lookup per row);
    // sorted by node id, as the creates are written.
    let mut unclaimed: Vec<&SnapshotRow> = c
        .nodes
        .values()
        .filter(|n| n.claimed_by_user.is_none())
        .filter_map(|n| n.row)
        .filter(|r| r.lock != LockState::Free)
        .filter(|r| !c.gone(Some(r.heartbeat_at)))
        .collect();
    let by_node_id = |a: &&SnapshotRow, b: &&SnapshotRow| a.node_id.cmp(&b.node_id);
    if unclaimed.len() > DISCOVERY_CHUNK {
        // The chunk's rows in front (unordered), then only they are sorted.
        unclaimed.select_nth_unstable_by(DISCOVERY_CHUNK, by_node_id);
        unclaimed.truncate(DISCOVERY_CHUNK);
    }
    unclaimed.sort_by(by_node_id);
    unclaimed
        .into_iter()
        .map(|r| CachedWorker::from(discovered_worker(&r.node_id)))
        .collect()
}
