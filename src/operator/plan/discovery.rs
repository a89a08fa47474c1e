//! Discovery: a row nobody claims gets an AmpWorker, for workers that run, not for
//! history: never for a stopped one (so deleting a retired worker's object sticks), nor
//! for one long gone.

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::super::crd::{AmpWorker, AmpWorkerSpec, DISCOVERED_LABEL, NODE_ID_ANNOTATION};
use super::super::naming::object_name;
use super::Cycle;
use crate::metadata_db::{LockState, SnapshotRow};

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

pub(super) fn is_discovered(w: &AmpWorker) -> bool {
    w.labels().get(DISCOVERED_LABEL).map(String::as_str) == Some("true")
}

/// New AmpWorkers for the unclaimed rows of running workers, by node id; none while the
/// DB cannot be read.
pub(super) fn discover(c: &Cycle) -> Vec<AmpWorker> {
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
    unclaimed.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    unclaimed
        .into_iter()
        .map(|r| discovered_worker(&r.node_id))
        .collect()
}
