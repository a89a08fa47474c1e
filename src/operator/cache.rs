//! What the operator keeps of an AmpWorker or a fleet it caches (the reflectors, and
//! the objects it created that the watch has not shown yet): what the planner reads.
//!
//! The planner reads of the metadata the name, namespace, uid, labels (fleet selection,
//! `amp.io/discovered`), generation (`observedGeneration`), creation time (garbage
//! collection of a worker never seen) and nothing else; spec and status whole. The
//! status stays whole on purpose: the planner compares the stored status with the one
//! it would write (every field, condition messages included: they carry the timeout and
//! the last heartbeat of a Stale worker, and `Registered` keeps its message through a DB
//! outage), so a status cached without a field would be rewritten every cycle.

/// Drops what the planner never reads: managedFields would dominate the cache's memory,
/// annotations (kubectl's last-applied copy) come next, then the resource version,
/// owners, finalizers and the other bookkeeping of the API server.
pub fn slim<K: kube::Resource>(o: &mut K) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.resource_version = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    meta.self_link = None;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
    };

    use super::*;
    use crate::operator::crd::{AmpWorker, AmpWorkerSpec, AmpWorkerStatus, DISCOVERED_LABEL};

    fn read_by_the_planner() -> ObjectMeta {
        ObjectMeta {
            name: Some("w-1".into()),
            namespace: Some("amp".into()),
            uid: Some("uid-1".into()),
            labels: Some(BTreeMap::from([(
                DISCOVERED_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            generation: Some(3),
            creation_timestamp: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_slimmed_worker_keeps_what_the_planner_reads_and_nothing_else() {
        let spec = AmpWorkerSpec {
            node_id: "w-1".into(),
            expected_version: Some("v1".into()),
            heartbeat_timeout_seconds: Some(20),
            job_pickup_timeout_seconds: None,
        };
        let status = AmpWorkerStatus {
            node_id: Some("w-1".into()),
            state: Some("Ready".into()),
            ..Default::default()
        };
        let mut whole = AmpWorker::new("w-1", spec.clone());
        whole.metadata = ObjectMeta {
            annotations: Some(BTreeMap::from([("a".to_owned(), "b".to_owned())])),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            resource_version: Some("12345".into()),
            owner_references: Some(vec![OwnerReference::default()]),
            finalizers: Some(vec!["example.com/keep".into()]),
            generate_name: Some("w-".into()),
            self_link: Some("/apis/amp.io/v1alpha1/ampworkers/w-1".into()),
            ..read_by_the_planner()
        };
        whole.status = Some(status.clone());
        slim(&mut whole);
        let mut expected = AmpWorker::new("w-1", spec);
        expected.metadata = read_by_the_planner();
        expected.status = Some(status);
        assert_eq!(whole.metadata, expected.metadata);
        assert_eq!(whole.spec, expected.spec);
        assert_eq!(whole.status, expected.status);
    }
}
