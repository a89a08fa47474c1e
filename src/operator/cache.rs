//! What the operator keeps of an AmpWorker or a fleet it caches (the mirrors, and
//! the objects it created that the watch has not shown yet): what the planner reads.
//!
//! The planner reads of the metadata the name, namespace, uid, labels (fleet selection,
//! `amp.io/discovered`), generation (`observedGeneration`), creation time (garbage
//! collection of a worker never seen) and nothing else; spec and status whole. The
//! status stays whole on purpose: the planner compares the stored status with the one
//! it would write (every field, condition messages included: they carry the timeout and
//! the last heartbeat of a Stale worker, and `Registered` keeps its message through a DB
//! outage), so a status cached without a field would be rewritten every cycle.
//!
//! A worker is cached as a [`CachedWorker`], not an `AmpWorker`: k8s-openapi's
//! `ObjectMeta` is about 400 bytes inline whatever it holds, and a label map of one
//! entry is a `BTreeMap` node of about 550 more. 10,000 workers carry the same one or
//! two label maps, so those are shared ([`SharedLabels`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use crate::shared::Shared;

use super::crd::{AmpWorker, AmpWorkerSpec, AmpWorkerStatus, WorkerBuildInfo, WorkerPlacement};

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

/// A label map shared by every cached object that carries an equal one.
pub type Labels = Arc<BTreeMap<String, String>>;

/// The label maps cached objects carry.
pub type SharedLabels = Shared<BTreeMap<String, String>>;

/// Strings many cached statuses carry alike (condition types, reasons and most
/// messages: "heartbeat within the 30s timeout"), one allocation each. Bounded: past
/// [`SharedStrings::KEPT`] distinct strings, a new one is kept on its own.
#[derive(Debug, Default)]
pub struct SharedStrings {
    set: foldhash::HashSet<Arc<String>>,
}

impl SharedStrings {
    /// A fleet's statuses hold a few dozen distinct strings; messages that name a
    /// worker (a missing row, a stale heartbeat's time) are its own.
    const KEPT: usize = 4096;

    /// `value`, or an equal string already shared.
    pub fn share(&mut self, value: String) -> Arc<String> {
        if let Some(shared) = self.set.get(&value) {
            return shared.clone();
        }
        let shared = Arc::new(value);
        if self.set.len() < Self::KEPT {
            self.set.insert(shared.clone());
        }
        shared
    }
}

/// A status condition as cached: its strings shared.
#[derive(Clone, Debug, PartialEq)]
struct CachedCondition {
    type_: Arc<String>,
    status: Arc<String>,
    reason: Arc<String>,
    message: Arc<String>,
    last_transition_time: Time,
    observed_generation: Option<i64>,
}

impl CachedCondition {
    fn keep(c: Condition, strings: &mut SharedStrings) -> Self {
        Self {
            type_: strings.share(c.type_),
            status: strings.share(c.status),
            reason: strings.share(c.reason),
            message: strings.share(c.message),
            last_transition_time: c.last_transition_time,
            observed_generation: c.observed_generation,
        }
    }

    fn whole(&self) -> Condition {
        Condition {
            type_: (*self.type_).clone(),
            status: (*self.status).clone(),
            reason: (*self.reason).clone(),
            message: (*self.message).clone(),
            last_transition_time: self.last_transition_time.clone(),
            observed_generation: self.observed_generation,
        }
    }

    fn is(&self, c: &Condition) -> bool {
        *self.type_ == c.type_
            && *self.status == c.status
            && *self.reason == c.reason
            && *self.message == c.message
            && self.last_transition_time == c.last_transition_time
            && self.observed_generation == c.observed_generation
    }
}

/// An AmpWorker's status as cached: six conditions of four strings each were most of a
/// cached worker (1.2 KiB of 3.5), and their strings are the same for most workers, so
/// they are shared ([`SharedStrings`]). The planner reads the fields it needs each cycle
/// here, and the whole status ([`CachedStatus::whole`]) only for a worker it judges
/// afresh or refreshes.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedStatus {
    /// Every field but the build info and the conditions (both kept empty here; never
    /// handed out as a status).
    fields: AmpWorkerStatus,
    /// The build info, shared by the workers of one build.
    info: Option<Arc<WorkerBuildInfo>>,
    conditions: Vec<CachedCondition>,
}

impl CachedStatus {
    /// Keeps `status`, its build info and condition strings shared through `sharing`.
    fn keep(mut status: AmpWorkerStatus, sharing: &mut WorkerSharing) -> Self {
        let conditions = std::mem::take(&mut status.conditions)
            .into_iter()
            .map(|c| CachedCondition::keep(c, &mut sharing.strings))
            .collect();
        let info = status.info.take().map(|i| sharing.infos.share(i));
        Self {
            fields: status,
            info,
            conditions,
        }
    }

    /// The status as stored, build info and conditions included.
    pub fn whole(&self) -> AmpWorkerStatus {
        AmpWorkerStatus {
            info: self.info.as_deref().cloned(),
            conditions: self.conditions.iter().map(CachedCondition::whole).collect(),
            ..self.fields.clone()
        }
    }

    /// Whether `status` is this one, field for field (no allocation).
    pub fn is(&self, status: &AmpWorkerStatus) -> bool {
        // Destructured whole: a field added to the status must be compared here too.
        let AmpWorkerStatus {
            observed_generation,
            state,
            node_id,
            info,
            expected_version,
            short_commit,
            created_at,
            registered_at,
            heartbeat_at,
            placement,
            restart_count,
            last_remediation_time,
            remediation_count,
            jobs,
            conditions,
        } = status;
        let f = &self.fields;
        f.observed_generation == *observed_generation
            && f.state == *state
            && f.node_id == *node_id
            && self.info.as_deref() == info.as_ref()
            && f.expected_version == *expected_version
            && f.short_commit == *short_commit
            && f.created_at == *created_at
            && f.registered_at == *registered_at
            && f.heartbeat_at == *heartbeat_at
            && f.placement == *placement
            && f.restart_count == *restart_count
            && f.last_remediation_time == *last_remediation_time
            && f.remediation_count == *remediation_count
            && f.jobs == *jobs
            && self.conditions.len() == conditions.len()
            && (self.conditions.iter().zip(conditions)).all(|(mine, theirs)| mine.is(theirs))
    }

    /// `heartbeatAt` as shown.
    pub fn heartbeat_at(&self) -> Option<DateTime<Utc>> {
        self.fields.heartbeat_at
    }

    /// `placement` as shown.
    pub fn placement(&self) -> Option<&WorkerPlacement> {
        self.fields.placement.as_ref()
    }

    /// `lastRemediationTime` and `remediationCount` as shown.
    pub fn remediation(&self) -> (Option<DateTime<Utc>>, Option<i64>) {
        (
            self.fields.last_remediation_time,
            self.fields.remediation_count,
        )
    }
}

/// One status alone (tests, an object just created): shares nothing.
impl From<AmpWorkerStatus> for CachedStatus {
    fn from(status: AmpWorkerStatus) -> Self {
        Self::keep(status, &mut WorkerSharing::default())
    }
}

/// What cached workers share: label maps, build infos and status strings.
#[derive(Debug, Default)]
pub struct WorkerSharing {
    labels: SharedLabels,
    infos: Shared<WorkerBuildInfo>,
    strings: SharedStrings,
}

impl WorkerSharing {
    /// `status` as cached, what it shares with others shared.
    pub fn status(&mut self, status: AmpWorkerStatus) -> CachedStatus {
        CachedStatus::keep(status, self)
    }
}

/// Of an object's metadata, what the planner reads (see the module's text).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub labels: Option<Labels>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<Time>,
}

impl CachedMeta {
    /// Keeps what the planner reads of `meta`, its labels shared through `labels`.
    pub fn keep(meta: ObjectMeta, labels: &mut SharedLabels) -> Self {
        Self {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            labels: meta.labels.map(|l| labels.share(l)),
            generation: meta.generation,
            creation_timestamp: meta.creation_timestamp,
        }
    }
}

/// An AmpWorker as the operator caches it: [`CachedMeta`], spec and status.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedWorker {
    pub metadata: CachedMeta,
    pub spec: AmpWorkerSpec,
    pub status: Option<CachedStatus>,
}

impl CachedWorker {
    /// Keeps what the planner reads of `worker`, sharing what workers share.
    pub fn keep(worker: AmpWorker, sharing: &mut WorkerSharing) -> Self {
        Self {
            metadata: CachedMeta::keep(worker.metadata, &mut sharing.labels),
            spec: worker.spec,
            status: worker.status.map(|s| sharing.status(s)),
        }
    }

    /// The object's name (empty when it has none, as `ResourceExt::name_any`).
    pub fn name_any(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }

    /// The object's labels (empty when it has none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.metadata.labels.as_deref().unwrap_or(&NONE)
    }
}

/// One object alone (an object the operator just created, a test's): its labels shared
/// with nothing.
impl From<AmpWorker> for CachedWorker {
    fn from(worker: AmpWorker) -> Self {
        Self::keep(worker, &mut WorkerSharing::default())
    }
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

    #[test]
    fn a_cached_worker_keeps_what_the_planner_reads_and_shares_equal_labels() {
        let spec = AmpWorkerSpec {
            node_id: "w-1".into(),
            expected_version: None,
            heartbeat_timeout_seconds: None,
            job_pickup_timeout_seconds: None,
        };
        let status = AmpWorkerStatus {
            node_id: Some("w-1".into()),
            ..Default::default()
        };
        let whole = |name: &str| {
            let mut w = AmpWorker::new(name, spec.clone());
            w.metadata = ObjectMeta {
                name: Some(name.into()),
                annotations: Some(BTreeMap::from([("a".to_owned(), "b".to_owned())])),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                resource_version: Some("12345".into()),
                owner_references: Some(vec![OwnerReference::default()]),
                ..read_by_the_planner()
            };
            w.status = Some(status.clone());
            w
        };
        let mut sharing = WorkerSharing::default();
        let one = CachedWorker::keep(whole("w-1"), &mut sharing);
        let two = CachedWorker::keep(whole("w-2"), &mut sharing);

        let read = read_by_the_planner();
        let expected = CachedWorker {
            metadata: CachedMeta {
                name: Some("w-1".into()),
                namespace: read.namespace,
                uid: read.uid,
                labels: read.labels.map(Arc::new),
                generation: read.generation,
                creation_timestamp: read.creation_timestamp,
            },
            spec: spec.clone(),
            status: Some(status.clone().into()),
        };
        assert_eq!(one, expected);
        assert_eq!(
            one.labels().get(DISCOVERED_LABEL).map(String::as_str),
            Some("true")
        );
        assert_eq!(one.name_any(), "w-1");
        let (a, b) = (one.metadata.labels.unwrap(), two.metadata.labels.unwrap());
        assert!(Arc::ptr_eq(&a, &b), "equal label maps are one allocation");
        // Alone (an object just created): equal, not shared.
        let alone = CachedWorker::from(whole("w-1"));
        assert!(!Arc::ptr_eq(alone.metadata.labels.as_ref().unwrap(), &a));
        let unlabelled = CachedWorker::from(AmpWorker::new("w-3", spec));
        assert_eq!(unlabelled.labels(), &BTreeMap::new());
    }

    fn condition(type_: &str, status: &str, message: &str, at: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: format!("{type_}Reason"),
            message: message.into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::from_second(at).unwrap()),
            observed_generation: Some(1),
        }
    }

    fn stored(node: &str, at: i64) -> AmpWorkerStatus {
        AmpWorkerStatus {
            node_id: Some(node.into()),
            state: Some("Ready".into()),
            heartbeat_at: chrono::DateTime::from_timestamp(at, 0),
            remediation_count: Some(2),
            info: Some(WorkerBuildInfo {
                version: Some("v1.1.0".into()),
                commit_sha: Some("8b065bde".into()),
                ..Default::default()
            }),
            conditions: vec![
                condition("Registered", "True", "the node id has a row", at),
                condition("Healthy", "True", "heartbeat within the 30s timeout", at),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_cached_status_is_the_stored_one_whole_with_its_strings_shared() {
        let mut sharing = WorkerSharing::default();
        let (a, b) = (stored("w-1", 100), stored("w-2", 200));
        let (ca, cb) = (sharing.status(a.clone()), sharing.status(b.clone()));
        assert_eq!(ca.whole(), a);
        assert_eq!(cb.whole(), b);
        assert!(ca.is(&a) && cb.is(&b) && !ca.is(&b));
        assert_eq!(ca.heartbeat_at(), a.heartbeat_at);
        assert_eq!(ca.remediation(), (None, Some(2)));
        assert!(Arc::ptr_eq(
            ca.info.as_ref().unwrap(),
            cb.info.as_ref().unwrap()
        ));
        for (x, y) in ca.conditions.iter().zip(&cb.conditions) {
            assert!(Arc::ptr_eq(&x.type_, &y.type_));
            assert!(Arc::ptr_eq(&x.message, &y.message));
        }
        // Any difference, in a condition or elsewhere, is one.
        let changes: [fn(&mut AmpWorkerStatus); 8] = [
            |s| s.info = None,
            |s| s.info.as_mut().unwrap().build_date = Some("today".into()),
            |s| s.conditions[1].message.push('!'),
            |s| s.conditions[1].reason.push('!'),
            |s| s.conditions[0].status = "False".into(),
            |s| s.conditions[0].observed_generation = Some(2),
            |s| s.conditions.truncate(1),
            |s| s.placement = Some(WorkerPlacement::default()),
        ];
        for change in changes {
            let mut other = a.clone();
            change(&mut other);
            assert!(!ca.is(&other), "{other:?}");
        }
    }

    #[test]
    fn shared_strings_are_bounded() {
        let mut strings = SharedStrings::default();
        for i in 0..SharedStrings::KEPT {
            strings.share(i.to_string());
        }
        let kept = strings.share("0".to_owned());
        assert!(Arc::ptr_eq(&kept, &strings.share("0".to_owned())));
        let late = strings.share("late".to_owned());
        assert!(!Arc::ptr_eq(&late, &strings.share("late".to_owned())));
        assert_eq!(strings.set.len(), SharedStrings::KEPT);
    }
}
