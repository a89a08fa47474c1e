//! Workers' Pods: what the operator keeps of a Pod (a type of its own, so 10,000 cached
//! Pods stay small), which selected Pod is which worker's (pure linking), and the
//! placement a live Pod gives an AmpWorker.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::Resource;
use kube::core::{Selector, SelectorExt};
use serde::Deserialize;

use super::cache::{CachedMeta, SharedLabels};
use super::crd::{NODE_ID_ANNOTATION, WorkerPlacement};
use crate::shared::Shared;

/// `status.placement.source` of a placement read from the live Pod.
pub const PLACEMENT_FROM_POD: &str = "Pod";

/// A Pod as the watch decodes it: only what [`WorkerPod`] keeps is read from the
/// wire. k8s-openapi's `Pod` is a few KiB in memory whatever it holds (every field of
/// `PodSpec` and `PodStatus` is inline), which made 10,000 cached Pods about 40 MiB of
/// the operator's RSS.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<WatchedPodSpec>,
    pub status: Option<WatchedPodStatus>,
}

/// Of a Pod's spec: the node it was scheduled to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodSpec {
    pub node_name: Option<String>,
}

/// Of a Pod's status: its IP.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodStatus {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
}

impl kube::Resource for WatchedPod {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What the operator keeps of a Pod: what linking, placement and remediation read.
/// What a fleet's Pods carry alike (labels, their controller) is shared ([`PodSharing`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerPod {
    /// Name, namespace, uid, labels, creation time.
    pub metadata: CachedMeta,
    /// Its `amp.io/node-id` annotation.
    pub node_id: Option<String>,
    /// Its controller (a StatefulSet, ReplicaSet, ...) as `Kind/name`.
    pub controller: Option<Arc<String>>,
    pub deletion_timestamp: Option<Time>,
    pub node_name: Option<String>,
    pub pod_ip: Option<String>,
}

/// What cached Pods share: label maps and controllers.
#[derive(Debug, Default)]
pub struct PodSharing {
    labels: SharedLabels,
    controllers: Shared<String>,
}

impl WorkerPod {
    /// Keeps what the operator reads of `pod`, sharing what its fleet's Pods share.
    pub fn keep(pod: WatchedPod, sharing: &mut PodSharing) -> Self {
        let mut meta = pod.metadata;
        let node_id = meta
            .annotations
            .take()
            .and_then(|mut a| a.remove(NODE_ID_ANNOTATION));
        let controller = meta
            .owner_references
            .take()
            .and_then(|refs| refs.into_iter().find(|r| r.controller == Some(true)))
            .map(|r| sharing.controllers.share(format!("{}/{}", r.kind, r.name)));
        let deletion_timestamp = meta.deletion_timestamp.take();
        Self {
            metadata: CachedMeta::keep(meta, &mut sharing.labels),
            node_id,
            controller,
            deletion_timestamp,
            node_name: pod.spec.and_then(|s| s.node_name),
            pod_ip: pod.status.and_then(|s| s.pod_ip),
        }
    }
}

/// One Pod alone (tests and benches build k8s-openapi's `Pod`): shares nothing.
impl From<Pod> for WorkerPod {
    fn from(pod: Pod) -> Self {
        let watched = WatchedPod {
            metadata: pod.metadata,
            spec: pod.spec.map(|s| WatchedPodSpec {
                node_name: s.node_name,
            }),
            status: pod.status.map(|s| WatchedPodStatus { pod_ip: s.pod_ip }),
        };
        Self::keep(watched, &mut PodSharing::default())
    }
}

/// The node id a Pod runs: its `amp.io/node-id` annotation (for ids that are not valid
/// Pod names), else its name (a StatefulSet's Pod named after its worker).
pub fn pod_node_id(pod: &WorkerPod) -> Option<&str> {
    pod.node_id.as_deref().or(pod.metadata.name.as_deref())
}

/// Whether `selector` selects `pod` in `namespace` (the fleet's, the operator's).
pub fn selects(selector: &Selector, namespace: &str, pod: &WorkerPod) -> bool {
    let empty = BTreeMap::new();
    pod.metadata.namespace.as_deref() == Some(namespace)
        && selector.matches(pod.metadata.labels.as_deref().unwrap_or(&empty))
}

/// A node id's Pod among a fleet's selected Pods.
#[derive(Debug, Clone, Copy)]
pub enum PodLink<'a> {
    One(&'a WorkerPod),
    /// Several selected Pods claim the node id: none is linked (and none restarted).
    Ambiguous,
}

/// A fleet's selected Pods, by the node id each runs. Owned, so it outlives a cycle
/// (see [`PodIndexes`]).
#[derive(Debug, Default)]
pub struct PodIndex {
    /// Node id -> the position of its one Pod in `selected`, or None when several claim it.
    by_node_id: foldhash::HashMap<String, Option<usize>>,
    /// Every selected Pod, for the fleet's counts.
    pub selected: Vec<Arc<WorkerPod>>,
    /// How many node ids several Pods claim.
    ambiguous: usize,
}

impl PodIndex {
    /// The Pods `selector` selects in `namespace`, indexed by node id.
    pub fn build(selector: &Selector, namespace: &str, pods: &[Arc<WorkerPod>]) -> Self {
        let mut index = PodIndex::default();
        for pod in pods.iter().filter(|p| selects(selector, namespace, p)) {
            let at = index.selected.len();
            index.selected.push(pod.clone());
            let Some(id) = pod_node_id(pod) else { continue };
            index
                .by_node_id
                .entry(id.to_owned())
                .and_modify(|l| *l = None)
                .or_insert(Some(at));
        }
        index.ambiguous = index.by_node_id.values().filter(|l| l.is_none()).count();
        index
    }

    /// The worker's Pod, if exactly one selected Pod runs `node_id`.
    pub fn link(&self, node_id: &str) -> Option<PodLink<'_>> {
        self.by_node_id.get(node_id).map(|at| match at {
            Some(i) => PodLink::One(&self.selected[*i]),
            None => PodLink::Ambiguous,
        })
    }

    /// The Pod of `node_id` when exactly one claims it (the planner keeps positions:
    /// [`Self::position_of`]).
    #[cfg(test)]
    pub fn pod_of(&self, node_id: &str) -> Option<&WorkerPod> {
        self.position_of(node_id).map(|at| &*self.selected[at])
    }

    /// Where the Pod of `node_id` is in [`Self::selected`], when exactly one claims it.
    pub fn position_of(&self, node_id: &str) -> Option<usize> {
        self.by_node_id.get(node_id).copied().flatten()
    }

    /// How many node ids several Pods claim.
    pub fn ambiguous(&self) -> usize {
        self.ambiguous
    }
}

/// The fleets' Pod indexes, kept from one cycle to the next: an index is rebuilt only
/// when the Pods changed (a new list of objects from the cache) or no fleet had its
/// selector and namespace last cycle. Building one matches every Pod of the namespace
/// against the selector and hashes its node id: at 10,000 Pods, a tenth of the
/// operator's CPU when it ran every cycle.
#[derive(Debug, Default)]
pub struct PodIndexes {
    /// The Pods the indexes were built from (held, so the addresses compared are theirs).
    pods: Vec<Arc<WorkerPod>>,
    built: Vec<BuiltIndex>,
    /// Counts the Pod lists seen: within one, a Pod's address names one object.
    generation: u64,
}

#[derive(Debug)]
struct BuiltIndex {
    namespace: String,
    selector: LabelSelector,
    index: Arc<PodIndex>,
    used: bool,
}

impl PodIndexes {
    /// Starts a cycle over `pods`: forgets every index if they are not the same objects
    /// as last cycle's.
    pub fn start_cycle(&mut self, pods: &[Arc<WorkerPod>]) {
        let same = self.pods.len() == pods.len()
            && self.pods.iter().zip(pods).all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            self.pods = pods.to_vec();
            self.built.clear();
            self.generation += 1;
        }
        for b in &mut self.built {
            b.used = false;
        }
    }

    /// Which Pod list this cycle's indexes were built from: while it stays the same, a
    /// Pod's address stands for the same object (the list holds every one of them).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The index of what `selector` (parsed: `parsed`) selects in `namespace`.
    pub fn index(
        &mut self,
        namespace: &str,
        selector: &LabelSelector,
        parsed: &Selector,
    ) -> Arc<PodIndex> {
        if let Some(b) = self
            .built
            .iter_mut()
            .find(|b| b.namespace == namespace && &b.selector == selector)
        {
            b.used = true;
            return b.index.clone();
        }
        let index = Arc::new(PodIndex::build(parsed, namespace, &self.pods));
        self.built.push(BuiltIndex {
            namespace: namespace.to_owned(),
            selector: selector.clone(),
            index: index.clone(),
            used: true,
        });
        index
    }

    /// Forgets the indexes no fleet asked for this cycle.
    pub fn end_cycle(&mut self) {
        self.built.retain(|b| b.used);
    }
}

/// Where a live Pod runs, as `status.placement` shows it.
pub fn placement_of(pod: &WorkerPod) -> WorkerPlacement {
    WorkerPlacement {
        pod: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        node: pod.node_name.clone(),
        pod_ip: pod.pod_ip.clone(),
        source: Some(PLACEMENT_FROM_POD.to_owned()),
    }
}

/// Whether `shown` is what `pod` would show (no allocation: compared per worker per cycle).
pub fn shows_pod(shown: Option<&WorkerPlacement>, pod: &WorkerPod) -> bool {
    let Some(p) = shown else { return false };
    p.source.as_deref() == Some(PLACEMENT_FROM_POD)
        && p.pod == pod.metadata.name
        && p.namespace == pod.metadata.namespace
        && p.node == pod.node_name
        && p.pod_ip == pod.pod_ip
}

/// Whether `shown` came from a Pod (which must go when the Pod does).
pub fn from_pod(shown: Option<&WorkerPlacement>) -> bool {
    shown.is_some_and(|p| p.source.as_deref() == Some(PLACEMENT_FROM_POD))
}

/// The Pod's controller (a StatefulSet, ReplicaSet, ...): `Kind/name`, if it has one.
/// Only a Pod with one comes back after a delete.
pub fn controller_of(pod: &WorkerPod) -> Option<&str> {
    pod.controller.as_deref().map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn pod(name: &str, labels: &[(&str, &str)], annotation: Option<&str>) -> Arc<WorkerPod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("amp".into());
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        p.metadata.annotations =
            annotation.map(|a| BTreeMap::from([(NODE_ID_ANNOTATION.to_owned(), a.to_owned())]));
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("node-a".into()),
            ..Default::default()
        });
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            pod_ip: Some("10.0.0.1".into()),
            ..Default::default()
        });
        Arc::new(p.into())
    }

    fn app(v: &str) -> Selector {
        Selector::try_from(LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_owned(), v.to_owned())])),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_pod_links_by_name_or_by_its_annotation_which_wins() {
        let pods = vec![
            pod("worker-0", &[("app", "amp")], None),
            pod("odd-name", &[("app", "amp")], Some("GPU_Worker.A1")),
            // Annotated with another id: not worker-2's by name.
            pod("worker-2", &[("app", "amp")], Some("worker-9")),
        ];
        let index = PodIndex::build(&app("amp"), "amp", &pods);
        let name = |id| index.pod_of(id).and_then(|p| p.metadata.name.as_deref());
        assert_eq!(name("worker-0"), Some("worker-0"));
        assert_eq!(name("GPU_Worker.A1"), Some("odd-name"));
        assert_eq!(name("worker-9"), Some("worker-2"));
        assert_eq!(name("worker-2"), None);
        assert_eq!(name("odd-name"), None);
        assert_eq!(index.selected.len(), 3);
        assert_eq!(index.ambiguous(), 0);
    }

    #[test]
    fn only_selected_pods_in_the_namespace_link() {
        let mut other_ns = (*pod("worker-1", &[("app", "amp")], None)).clone();
        other_ns.metadata.namespace = Some("elsewhere".into());
        let pods = vec![
            pod("worker-0", &[("app", "other")], None),
            Arc::new(other_ns),
        ];
        let index = PodIndex::build(&app("amp"), "amp", &pods);
        assert!(index.pod_of("worker-0").is_none());
        assert!(index.pod_of("worker-1").is_none());
        assert!(index.selected.is_empty());
    }

    #[test]
    fn two_pods_claiming_one_node_id_link_neither() {
        let pods = vec![
            pod("worker-0", &[("app", "amp")], None),
            pod("copy", &[("app", "amp")], Some("worker-0")),
        ];
        let index = PodIndex::build(&app("amp"), "amp", &pods);
        assert!(matches!(index.link("worker-0"), Some(PodLink::Ambiguous)));
        assert!(index.pod_of("worker-0").is_none());
        assert_eq!(index.ambiguous(), 1);
    }

    #[test]
    fn placement_comes_from_the_pod_and_says_so() {
        let p = pod("worker-0", &[], None);
        let placement = placement_of(&p);
        assert_eq!(
            serde_json::to_value(&placement).unwrap(),
            serde_json::json!({"pod": "worker-0", "namespace": "amp", "node": "node-a",
                "podIp": "10.0.0.1", "source": "Pod"})
        );
        assert!(shows_pod(Some(&placement), &p));
        let mut moved = (*p).clone();
        moved.node_name = Some("node-b".into());
        assert!(!shows_pod(Some(&placement), &moved));
        let reported = WorkerPlacement {
            source: Some("Worker".into()),
            ..placement.clone()
        };
        assert!(!shows_pod(Some(&reported), &p));
        assert!(from_pod(Some(&placement)) && !from_pod(Some(&reported)));
    }

    /// A Pod as the API server sends it, decoded as the watch decodes it.
    fn served_pod() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "worker-0", "namespace": "amp", "uid": "u-1", "resourceVersion": "77",
                "generateName": "worker-", "finalizers": ["example.com/keep"],
                "creationTimestamp": "2026-12-01T10:00:00Z",
                "labels": {"app": "amp"},
                "annotations": {"amp.io/node-id": "w0",
                                "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(5000)},
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "amp-worker",
                     "uid": "s-1", "controller": true},
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o-1"}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {"nodeName": "node-a",
                     "containers": [{"name": "ampd", "image": "big-image-name"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                       "containerStatuses": [{"name": "ampd", "image": "big-image-name",
                                              "imageID": "", "ready": true, "restartCount": 4}]}
        })
    }

    #[test]
    fn a_served_pod_is_kept_as_what_is_read_and_nothing_else() {
        let watched: WatchedPod = serde_json::from_value(served_pod()).unwrap();
        let mut sharing = PodSharing::default();
        let p = WorkerPod::keep(watched.clone(), &mut sharing);
        assert_eq!(pod_node_id(&p), Some("w0"));
        assert_eq!(controller_of(&p), Some("StatefulSet/amp-worker"));
        let expected = WorkerPod {
            metadata: CachedMeta {
                name: Some("worker-0".into()),
                namespace: Some("amp".into()),
                uid: Some("u-1".into()),
                labels: Some(Arc::new(BTreeMap::from([("app".into(), "amp".into())]))),
                generation: None,
                creation_timestamp: watched.metadata.creation_timestamp.clone(),
            },
            node_id: Some("w0".into()),
            controller: Some(Arc::new("StatefulSet/amp-worker".into())),
            deletion_timestamp: None,
            node_name: Some("node-a".into()),
            pod_ip: Some("10.0.0.7".into()),
        };
        assert_eq!(p, expected);
        assert!(p.metadata.creation_timestamp.is_some());
        assert_eq!(
            placement_of(&p),
            WorkerPlacement {
                pod: Some("worker-0".into()),
                namespace: Some("amp".into()),
                node: Some("node-a".into()),
                pod_ip: Some("10.0.0.7".into()),
                source: Some(PLACEMENT_FROM_POD.into()),
            }
        );
        // A second Pod of the same StatefulSet shares its labels and controller.
        let mut twin = watched;
        twin.metadata.name = Some("worker-1".into());
        let twin = WorkerPod::keep(twin, &mut sharing);
        assert!(Arc::ptr_eq(
            p.metadata.labels.as_ref().unwrap(),
            twin.metadata.labels.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            p.controller.as_ref().unwrap(),
            twin.controller.as_ref().unwrap()
        ));
        // The same from k8s-openapi's Pod (what tests and the bench build).
        let whole: Pod = serde_json::from_value(served_pod()).unwrap();
        assert_eq!(WorkerPod::from(whole), p);
    }

    #[test]
    fn a_pod_without_a_controller_or_annotation_links_by_name_and_is_not_controlled() {
        let mut served = served_pod();
        let meta = served["metadata"].as_object_mut().unwrap();
        meta.remove("annotations");
        meta["ownerReferences"] = serde_json::json!([
            {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o-1"}]);
        let p = WorkerPod::keep(
            serde_json::from_value(served).unwrap(),
            &mut PodSharing::default(),
        );
        assert_eq!(pod_node_id(&p), Some("worker-0"));
        assert_eq!(controller_of(&p), None);
    }

    #[test]
    fn an_index_is_kept_while_the_pods_and_the_selector_are_the_same() {
        let selector = |v: &str| LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_owned(), v.to_owned())])),
            ..Default::default()
        };
        let pods = vec![pod("worker-0", &[("app", "amp")], None)];
        let mut indexes = PodIndexes::default();
        let cycle = |indexes: &mut PodIndexes, pods: &[Arc<WorkerPod>], v: &str| {
            indexes.start_cycle(pods);
            let index = indexes.index("amp", &selector(v), &app(v));
            indexes.end_cycle();
            (index, indexes.generation())
        };
        let (first, generation) = cycle(&mut indexes, &pods, "amp");
        assert_eq!(first.selected.len(), 1);
        let (again, same_generation) = cycle(&mut indexes, &pods, "amp");
        assert!(
            Arc::ptr_eq(&first, &again),
            "same Pods, same selector: kept"
        );
        assert_eq!(same_generation, generation);
        // Another selector: its own index, from the same Pods.
        let (other, _) = cycle(&mut indexes, &pods, "other");
        assert!(other.selected.is_empty());
        // A Pod changed (a new object from the watch): every index is rebuilt.
        let mut moved = (*pods[0]).clone();
        moved.node_name = Some("node-b".into());
        let pods = vec![Arc::new(moved)];
        let (rebuilt, next_generation) = cycle(&mut indexes, &pods, "amp");
        assert!(!Arc::ptr_eq(&first, &rebuilt));
        assert_eq!(next_generation, generation + 1);
        assert_eq!(
            placement_of(rebuilt.pod_of("worker-0").unwrap())
                .node
                .as_deref(),
            Some("node-b")
        );
    }

    #[test]
    fn a_bare_pod_has_no_controller() {
        assert_eq!(controller_of(&pod("worker-0", &[], None)), None);
    }
}
