//! Pods per fleet: each fleet with a `podSelector` indexes the Pods it selects; its
//! workers link to them as they are judged, and the fleet's `status.pods` counts what
//! did not link (visible, never an error).

use std::sync::Arc;

use kube::core::Selector;

use super::super::crd::FleetPods;
use super::super::pods::{PodIndex, PodIndexes, WorkerPod, pod_node_id};
use super::Cycle;
use super::fleets::FleetSel;

/// Names listed in `status.pods.message`.
const MESSAGE_NAMES: usize = 5;

/// One fleet's Pods and its workers' links to them, counted as they are met.
#[derive(Debug, Default)]
pub(super) struct FleetPodTally<'a> {
    /// None without a podSelector: the fleet reads no Pods.
    pub(super) index: Option<&'a Arc<PodIndex>>,
    pub(super) selector_error: Option<String>,
    /// The fleet's namespace: the only one its Pods may be in.
    pub(super) namespace: String,
    linked: i64,
    without_pod: Vec<&'a str>,
    /// By position in the index: a worker with a row linked the Pod this cycle, so its
    /// node id has a row (no lookup at the end for the Pods of a settled fleet).
    with_row: Vec<bool>,
}

impl<'a> FleetPodTally<'a> {
    /// A worker of this fleet: `pod` is the position of its Pod in the index (None
    /// without one), `row` whether its node id has a row, `running` whether its process
    /// holds the node id.
    pub(super) fn add_worker(
        &mut self,
        node_id: &'a str,
        (row, running): (bool, bool),
        pod: Option<usize>,
    ) {
        let Some(index) = self.index else {
            return;
        };
        match pod {
            Some(at) => {
                self.linked += 1;
                if row {
                    if self.with_row.is_empty() {
                        self.with_row = vec![false; index.selected.len()];
                    }
                    self.with_row[at] = true;
                }
            }
            None if running => self.without_pod.push(node_id),
            None => {}
        }
    }

    /// The names of the selected Pods whose node id has no worker row (members that are
    /// not ready: not started, or crashing before they register).
    pub fn pods_without_row(&self, c: &Cycle<'a>) -> Vec<&'a str> {
        let Some(index) = self.index else {
            return Vec::new();
        };
        let linked = |at: usize| self.with_row.get(at).copied().unwrap_or(false);
        index
            .selected
            .iter()
            .enumerate()
            .filter(|(at, _)| !linked(*at))
            .filter_map(|(_, p)| {
                let name = p.metadata.name.as_deref()?;
                let has_row = pod_node_id(p).is_some_and(|id| c.node(id).row.is_some());
                (!has_row).then_some(name)
            })
            .collect()
    }

    /// `status.pods` (`orphans`: [`Self::pods_without_row`]); None without a podSelector.
    pub(super) fn summary(mut self, orphans: &[&'a str]) -> Option<FleetPods> {
        if let Some(err) = self.selector_error {
            return Some(FleetPods {
                reason: "InvalidPodSelector".into(),
                message: err,
                ..FleetPods::default()
            });
        }
        let index = self.index?;
        let mut orphans = orphans.to_vec();
        orphans.sort_unstable();
        self.without_pod.sort_unstable();
        let ambiguous = index.ambiguous() as i64;
        let (reason, message) = if ambiguous > 0 {
            (
                "AmbiguousPods",
                format!("{ambiguous} node id(s) claimed by several selected Pods"),
            )
        } else if !self.without_pod.is_empty() {
            (
                "WorkersWithoutPod",
                names("workers without a selected Pod", &self.without_pod),
            )
        } else if !orphans.is_empty() {
            (
                "PodsWithoutWorker",
                names("selected Pods without a worker row", &orphans),
            )
        } else {
            ("AllLinked", String::new())
        };
        Some(FleetPods {
            selected: index.selected.len() as i64,
            linked: self.linked,
            workers_without_pod: self.without_pod.len() as i64,
            pods_without_worker: orphans.len() as i64,
            ambiguous,
            reason: reason.into(),
            message,
        })
    }
}

fn names(what: &str, all: &[&str]) -> String {
    let shown: Vec<&str> = all.iter().take(MESSAGE_NAMES).copied().collect();
    let more = all.len().saturating_sub(MESSAGE_NAMES);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{} {what}: {}{tail}", all.len(), shown.join(", "))
}

/// What a fleet's podSelector selects this cycle: its index (kept across cycles in
/// [`PodIndexes`]), or why the selector cannot be read; None without a podSelector.
pub(super) struct FleetPodIndex {
    index: Option<Arc<PodIndex>>,
    selector_error: Option<String>,
    namespace: String,
}

/// One per fleet (in the order of `fleets`), from `indexes` where the Pods and the
/// selector are last cycle's.
pub(super) fn fleet_indexes(
    fleets: &[FleetSel],
    pods: &[Arc<WorkerPod>],
    namespace: &str,
    indexes: &mut PodIndexes,
) -> Vec<Option<FleetPodIndex>> {
    indexes.start_cycle(pods);
    let out = fleets
        .iter()
        .map(|f| {
            let sel = f.fleet.spec.pod_selector.as_ref()?;
            let ns = f.fleet.metadata.namespace.as_deref().unwrap_or(namespace);
            Some(match Selector::try_from(sel.clone()) {
                Ok(parsed) => FleetPodIndex {
                    index: Some(indexes.index(ns, sel, &parsed)),
                    selector_error: None,
                    namespace: ns.to_owned(),
                },
                Err(e) => FleetPodIndex {
                    index: None,
                    selector_error: Some(format!("spec.podSelector: {e}")),
                    namespace: ns.to_owned(),
                },
            })
        })
        .collect();
    indexes.end_cycle();
    out
}

/// One tally per fleet (in the order of `fleets`), with its Pod index when it has a
/// podSelector.
pub(super) fn tallies(indexes: &[Option<FleetPodIndex>]) -> Vec<FleetPodTally<'_>> {
    indexes
        .iter()
        .map(|f| match f {
            None => FleetPodTally::default(),
            Some(f) => FleetPodTally {
                index: f.index.as_ref(),
                selector_error: f.selector_error.clone(),
                namespace: f.namespace.clone(),
                ..FleetPodTally::default()
            },
        })
        .collect()
}
