//! The custom resources: `AmpWorker` (one per worker) and `AmpWorkerFleet` (a rollout).
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "amp.io";
pub const VERSION: &str = "v1alpha1";
/// Field manager for every write the operator makes (server-side apply).
pub const FIELD_MANAGER: &str = "amp-operator";
/// Label on AmpWorkers the operator created itself (only those are garbage-collected).
pub const DISCOVERED_LABEL: &str = "amp.io/discovered";
/// Annotation with the raw node id on discovered AmpWorkers (for ids renamed to fit DNS).
pub const NODE_ID_ANNOTATION: &str = "amp.io/node-id";

/// Desired state of one Amp worker, identified by its node id.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "amp.io",
    version = "v1alpha1",
    kind = "AmpWorker",
    namespaced,
    status = "AmpWorkerStatus",
    shortname = "aw",
    category = "amp",
    doc = "An Amp worker mirrored from the metadata DB: identity, build version, lifecycle timestamps and heartbeat health.",
    printcolumn(name = "Node ID", type_ = "string", json_path = ".spec.nodeId"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.info.version"),
    printcolumn(name = "Jobs", type_ = "integer", json_path = ".status.jobs.active"),
    printcolumn(
        name = "Restarts",
        type_ = "integer",
        json_path = ".status.restartCount"
    ),
    printcolumn(
        name = "Last Heartbeat",
        type_ = "date",
        json_path = ".status.heartbeatAt"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // `-o wide`: what the worker is judged against and why it is not Ready; a printer
    // column cannot cut a string, so the short commit is a status field of its own.
    printcolumn(
        name = "Expected",
        type_ = "string",
        json_path = ".status.expectedVersion",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    ),
    printcolumn(
        name = "Commit",
        type_ = "string",
        json_path = ".status.shortCommit",
        priority = 1
    ),
    printcolumn(
        name = "Pod",
        type_ = "string",
        json_path = ".status.placement.pod",
        priority = 1
    ),
    printcolumn(
        name = "Node",
        type_ = "string",
        json_path = ".status.placement.node",
        priority = 1
    ),
    // `kubectl get aw --field-selector spec.nodeId=GPU_Worker.A1` finds a worker whose
    // object name was mapped to fit DNS.
    selectable = ".spec.nodeId"
)]
#[serde(rename_all = "camelCase")]
pub struct AmpWorkerSpec {
    /// The worker's node id, exactly as it registered in the metadata DB (the object's
    /// name may differ when the id is not a valid Kubernetes name). Immutable. Amp's rule:
    /// a letter first (any script), then letters, digits, '_', '-' and '.'.
    #[schemars(regex(pattern = r"^\p{L}[\p{L}\p{N}_.-]*$"), length(min = 1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("nodeId is immutable"))]
    pub node_id: String,
    /// The version this worker must run, compared as an exact string with
    /// status.info.version (e.g. v0.0.22-15-g8b065bde). When omitted, the version of the
    /// AmpWorkerFleet selecting this worker (the oldest one when several do); when neither
    /// sets one, the VersionMatched condition is Unknown and does not hold Ready back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// Seconds without a heartbeat, measured by the metadata DB's clock, after which a
    /// worker whose process still holds its node id is Stale. 1 to 3600; when omitted,
    /// the selecting AmpWorkerFleet's spec.heartbeatTimeoutSeconds, else the operator's
    /// default (30 unless the operator was configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub heartbeat_timeout_seconds: Option<i64>,
    /// Seconds a job may stay SCHEDULED on this worker while it heartbeats before the
    /// worker counts as not accepting jobs (AcceptingJobs False, Ready False). Amp's
    /// worker picks up its jobs on a notification and in a reconcile loop every 60 s.
    /// 1 to 86400; 120 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub job_pickup_timeout_seconds: Option<i64>,
}

/// How many characters of the commit SHA the COMMIT column shows (as `git log --oneline`
/// does in large repositories): enough to be unique, short enough for a table.
pub const SHORT_COMMIT_CHARS: usize = 12;

/// Build metadata the worker reported.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerBuildInfo {
    /// The worker's version as `git describe` prints it (e.g. v0.0.22-15-g8b065bde): the
    /// VERSION column, compared with the expected version by VersionMatched. Absent when
    /// the worker reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The full git commit SHA the worker was built from; status.shortCommit (the COMMIT
    /// column of `kubectl get -o wide`) holds its first 12 characters. Absent when the
    /// worker reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// When that commit was made: RFC 3339, UTC, whole seconds (kept as reported when it
    /// does not parse as a timestamp). Absent when the worker reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_timestamp: Option<String>,
    /// The day the worker was built, a date such as 2025-10-30 (not a date-time). Absent
    /// when the worker reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
}

impl WorkerBuildInfo {
    /// The first [`SHORT_COMMIT_CHARS`] characters of the commit SHA (characters, not
    /// bytes: the value is whatever the worker reported).
    pub fn short_commit(&self) -> Option<String> {
        let sha = self.commit_sha.as_deref()?;
        Some(sha.chars().take(SHORT_COMMIT_CHARS).collect())
    }
}

/// Where a worker runs.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPlacement {
    /// The name of the worker's Pod (the POD column of `kubectl get -o wide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The namespace of the worker's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Kubernetes node the Pod runs on (the NODE column of `kubectl get -o wide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The Pod's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// Where this placement comes from: Pod (the live Pod the worker's fleet selects
    /// with spec.podSelector; it wins) or Worker (what the worker reported in its
    /// metadata DB row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Observed state, mirrored from the metadata DB and judged by the database clock.
/// Written whole by the operator (atomic for server-side apply).
// Atomic: the operator is its only writer and applies it whole, so `managedFields`
// records one entry for it, not one per field: about 1.3 KiB less in every object the
// API server decodes, validates and encodes on each write (docs/benchmarks.md).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct AmpWorkerStatus {
    /// The metadata.generation (spec revision) this status was judged against; older
    /// than metadata.generation until the operator has judged a spec change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One word for the STATUS column, read from the Ready condition: Ready; Stale (its
    /// process holds the node id but has not heartbeat within heartbeatTimeoutSeconds:
    /// hung or cut off); Stopped (no process holds the node id); NotRegistered (no row
    /// for the node id in the metadata DB); VersionMismatch (healthy, but not on the
    /// expected version); NotAcceptingJobs (healthy, but a job has waited longer than
    /// jobPickupTimeoutSeconds to be picked up); Unknown (the metadata DB cannot be read:
    /// health is unknown, not bad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The node id this status was judged for (spec.nodeId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Build metadata the worker reported in its metadata DB row. Absent until the row
    /// was read; a field longer than 256 bytes is cut to 256 (with an InfoTruncated
    /// event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<WorkerBuildInfo>,
    /// The version this worker is judged against (the EXPECTED column of `kubectl get -o
    /// wide`): spec.expectedVersion, else the version of the AmpWorkerFleet selecting it.
    /// Absent when neither sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// The first 12 characters of info.commitSha (the COMMIT column of `kubectl get -o
    /// wide`). Absent when the worker reported no commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_commit: Option<String>,
    /// When this node id first registered in the metadata DB (RFC 3339, UTC, whole
    /// seconds, the database's clock); it never changes afterwards. Absent until the row
    /// was read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub created_at: Option<DateTime<Utc>>,
    /// When a worker process last registered this node id (RFC 3339, UTC, whole seconds,
    /// the database's clock): it moves each time a worker process starts, not when a
    /// running worker reconnects after a DB outage. Absent until the row was read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub registered_at: Option<DateTime<Utc>>,
    /// The worker's last heartbeat (RFC 3339, UTC, whole seconds, the database's clock),
    /// the LAST HEARTBEAT column. Workers heartbeat every second, but to spare the API
    /// server this field is refreshed only periodically while the worker is healthy: by
    /// default every 15 s (half of heartbeatTimeoutSeconds, at most every 60 s), less
    /// often in fleets of more than about 300 workers. It is exact when the worker turns
    /// Stale or Stopped; state and conditions are judged from the real heartbeat at
    /// every poll, never from this field.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Where the worker runs (Pod, namespace, Kubernetes node, Pod IP): from the live
    /// Pod when the worker's fleet sets spec.podSelector and a selected Pod is the
    /// worker's, else as the worker reported it; absent when neither is known (Amp's own
    /// workers without a podSelector). placement.source says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<WorkerPlacement>,
    /// Process restarts observed by the operator (the RESTARTS column): registeredAt
    /// moved forward. A reconnect after a DB outage does not count; a new AmpWorker
    /// object starts from 0.
    #[serde(default)]
    pub restart_count: i64,
    /// When the operator last deleted this worker's Pod because the worker was hung
    /// (its fleet's spec.remediation, mode Restart; RFC 3339, UTC, whole seconds, the
    /// operator's clock). Absent when it never did.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub last_remediation_time: Option<DateTime<Utc>>,
    /// How many times the operator deleted this worker's Pod because the worker was
    /// hung. Absent when it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation_count: Option<i64>,
    /// Amp's extraction jobs assigned to this worker that are not finished (the JOBS
    /// column shows active), read from Amp's job tables in the metadata DB every few
    /// seconds. Absent when the metadata DB has no job tables, or when the operator may
    /// not read them (the AcceptingJobs condition then says which grant is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<WorkerJobs>,
    /// The worker's conditions, one per type; Ready is the summary that `kubectl wait`,
    /// kstatus, Argo CD and Flux read. Each type, then its possible status, reason and
    /// meaning:
    ///
    /// Registered: whether the node id has a row in the metadata DB.
    /// - True WorkerRegistered: the node id has a row.
    /// - False NotRegistered: no row (never registered, or deleted).
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read and the worker was
    ///   never seen (once seen, the last known value is kept during an outage).
    ///
    /// Healthy: whether the worker is heartbeating.
    /// - True HeartbeatFresh: its last heartbeat is within heartbeatTimeoutSeconds
    ///   (database clock).
    /// - False HeartbeatStale: its process holds the node id but has not heartbeat for
    ///   longer than the timeout (hung or cut off); the message gives the last heartbeat.
    /// - False WorkerStopped: no process holds the node id (its lock is free): stopped
    ///   cleanly, or its database session is gone.
    /// - False NotRegistered: no row for the node id.
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read, so health is
    ///   unknown, not bad; the message says why when TLS to the DB failed.
    ///
    /// VersionMatched: whether the worker runs the expected version (status.expectedVersion).
    /// - True VersionMatches: info.version equals the expected version.
    /// - False VersionMismatch: it runs another version.
    /// - Unknown NoExpectedVersion: neither spec.expectedVersion nor a fleet sets one.
    /// - Unknown NotRegistered: the worker's version is not known yet.
    ///
    /// Ready: all of the above hold.
    /// - True WorkerReady: registered, heartbeating and on the expected version (or none
    ///   is expected).
    /// - False NotRegistered, HeartbeatStale, WorkerStopped or VersionMismatch: the first
    ///   of those that fails, in that order, with its message.
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read.
    /// - False JobNotPickedUp: heartbeating, but not accepting jobs (see AcceptingJobs).
    ///
    /// AcceptingJobs: whether the worker picks up the jobs Amp assigns to it; absent when
    /// the metadata DB has no job tables.
    /// - True JobsPickedUp: no job has waited on it longer than jobPickupTimeoutSeconds
    ///   while it heartbeats (also when it has no jobs).
    /// - False JobNotPickedUp: a job has been SCHEDULED on it longer than
    ///   jobPickupTimeoutSeconds while its heartbeat is fresh (its job notifications are
    ///   broken); the message names the job and when it was scheduled.
    /// - Unknown JobsUnknown: the job tables cannot be read (the message names the missing
    ///   grant or what is wrong with them).
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read.
    ///
    /// JobsStranded: whether unfinished jobs wait on a worker that cannot run them (Amp
    /// has no failover); absent when the metadata DB has no job tables.
    /// - True JobsStranded: unfinished jobs are assigned to this worker while it is Stale,
    ///   Stopped or NotRegistered; start a worker with the same node id and it resumes
    ///   them, otherwise stop them and deploy their datasets again with Amp's tools.
    /// - False NoStrandedJobs: no unfinished job waits on a worker that is down.
    /// - Unknown JobsUnknown: the job tables cannot be read.
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Amp's unfinished jobs on one worker, by status.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerJobs {
    /// Jobs in one of the four unfinished states (SCHEDULED, RUNNING, STOP_REQUESTED,
    /// STOPPING): the JOBS column.
    pub active: i64,
    /// Jobs assigned to the worker and not picked up yet (SCHEDULED).
    pub scheduled: i64,
    /// Jobs the worker runs (RUNNING).
    pub running: i64,
    /// Jobs asked to stop (STOP_REQUESTED) or stopping (STOPPING).
    pub stopping: i64,
    /// Jobs that failed recoverably (ERROR): Amp retries them on this same worker.
    pub retrying: i64,
    /// Jobs in a status this operator does not know; counted apart, never as finished.
    pub unknown: i64,
    /// The job SCHEDULED on this worker the longest; absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_scheduled: Option<ScheduledJobRef>,
}

/// One job waiting to be picked up.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJobRef {
    /// Amp's job id (`ampctl job inspect ID`).
    pub id: i64,
    /// When it was scheduled on this worker (RFC 3339, UTC, whole seconds, the
    /// database's clock).
    #[serde(with = "crate::timestamps::whole_seconds")]
    #[schemars(with = "DateTime<Utc>")]
    pub since: DateTime<Utc>,
}

/// The desired rollout: the version a set of AmpWorkers must run.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[kube(
    group = "amp.io",
    version = "v1alpha1",
    kind = "AmpWorkerFleet",
    namespaced,
    status = "AmpWorkerFleetStatus",
    shortname = "awf",
    category = "amp",
    doc = "A fleet of AmpWorkers expected to run one version; its conditions follow kstatus (Ready, Reconciling, Stalled).",
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.readySummary"),
    printcolumn(
        name = "Updated",
        type_ = "integer",
        json_path = ".status.updatedWorkers"
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AmpWorkerFleetSpec {
    /// The version every selected worker must run (the chart sets the worker image tag),
    /// compared as an exact string with each worker's status.info.version. It is each
    /// selected AmpWorker's expected version unless its own spec.expectedVersion is set.
    #[schemars(length(min = 1))]
    pub version: String,
    /// Which AmpWorkers (by their labels) belong to the fleet; all AmpWorkers in the
    /// namespace when omitted. A worker selected by several fleets takes the oldest
    /// fleet's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Ready requires at least this many updated workers (healthy, on spec.version);
    /// 1 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready: Option<i64>,
    /// Seconds without rollout progress after which the fleet is Stalled; 600 when
    /// omitted. Progress is a new spec, more available workers than before, or a complete
    /// fleet becoming incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i64>,
    /// Seconds without a heartbeat, by the metadata DB's clock, after which a selected
    /// worker whose process still holds its node id is Stale: the timeout of every
    /// selected AmpWorker that does not set its own spec.heartbeatTimeoutSeconds. 1 to
    /// 3600; the operator's default (30 unless the operator was configured otherwise) when
    /// omitted. Amp's scheduler stops assigning jobs to a worker whose heartbeat is 5 s
    /// old: choose 5 to judge workers as it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub heartbeat_timeout_seconds: Option<i64>,
    /// Seconds a worker must have been up (since it last registered, by the metadata
    /// DB's clock) and Ready before it counts as available, as a Deployment's
    /// minReadySeconds: a version that crashes soon after start never completes a
    /// rollout. 0 to 3600; 10 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub min_ready_seconds: Option<i64>,
    /// Seconds after which a stopped worker (no process holds its node id) stops being a
    /// member: it is retired (scaled down, renamed). Until then it is a member that is not
    /// Ready, so a worker that should run and does not holds the rollout back. 60 to
    /// 2592000; 900 when omitted (the default after which the operator also deletes the AmpWorkers it
    /// discovered for stopped workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 2_592_000))]
    pub retire_stopped_after_seconds: Option<i64>,
    /// Which Pods (by their labels, in the fleet's namespace) run the fleet's workers. A
    /// worker's Pod is the selected Pod whose amp.io/node-id annotation is its node id,
    /// or, for a Pod without that annotation, whose name is its node id (a StatefulSet's
    /// Pods). Linked Pods fill status.placement of their AmpWorkers; remediation needs
    /// them. When omitted, the operator reads no Pods for this fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Restarting hung workers (off unless set): a worker that has been Stale (its
    /// process holds the node id but does not heartbeat) for restartStaleAfterSeconds
    /// gets its Pod deleted, so the Pod's controller recreates it under the same name.
    /// Needs spec.podSelector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationSpec>,
}

/// What the operator may do about a hung worker.
#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum RemediationMode {
    /// Nothing (the default).
    #[default]
    Off,
    /// Decide as Restart would and publish the events and metrics, but delete nothing.
    DryRun,
    /// Delete the hung worker's Pod.
    Restart,
}

/// When and how far the operator restarts hung workers (like Cluster API's
/// MachineHealthCheck).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationSpec {
    /// Off (default), DryRun (events and metrics only) or Restart (delete the Pod).
    #[serde(default)]
    pub mode: RemediationMode,
    /// How long a worker must have been Stale (by the metadata DB's clock, counted from
    /// its last heartbeat plus its heartbeat timeout) before its Pod is deleted; also
    /// the first per-worker back-off, doubled after each restart of that worker. 1 to
    /// 86400; 300 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub restart_stale_after_seconds: Option<i64>,
    /// Remediation pauses while more than this many of the fleet's members are Stale: a
    /// count (e.g. 1) or a percentage of the members (e.g. "20%", rounded down). 1 when
    /// omitted. While paused the fleet's RemediationAllowed condition is False.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unhealthy: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    /// Fleet-wide rate limit: at least this many seconds between two Pod deletions in
    /// the fleet. 1 to 86400; 60 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub min_interval_seconds: Option<i64>,
}

/// The fleet's Pods (spec.podSelector) and how they link to its workers.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetPods {
    /// Pods the podSelector selects.
    pub selected: i64,
    /// Selected workers linked to a selected Pod.
    pub linked: i64,
    /// Selected workers (not Stopped) for which no selected Pod exists.
    pub workers_without_pod: i64,
    /// Selected Pods whose node id (annotation or name) has no worker row in the
    /// metadata DB.
    pub pods_without_worker: i64,
    /// Node ids claimed by more than one selected Pod (neither is linked).
    pub ambiguous: i64,
    /// AllLinked, WorkersWithoutPod, PodsWithoutWorker or AmbiguousPods (the first that
    /// applies, in that order of concern: AmbiguousPods first).
    pub reason: String,
    /// The first few names of what is unlinked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Where remediation of the fleet's hung workers stands.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetRemediation {
    /// Members that are Stale now.
    pub unhealthy: i64,
    /// spec.remediation.maxUnhealthy resolved against the members.
    pub max_unhealthy: i64,
}

/// How many member workers run one version.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct VersionCount {
    /// A version the workers reported (status.info.version), cut at 128 bytes (ending in
    /// "…" when cut); "unknown" for workers that reported none.
    pub version: String,
    /// How many member workers run it.
    pub count: i64,
}

/// Observed state of the rollout, judged from the selected AmpWorkers' statuses. Written
/// whole by the operator (atomic for server-side apply).
// Atomic as AmpWorkerStatus is, for the same reason.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct AmpWorkerFleetStatus {
    /// The metadata.generation (spec revision) this status was judged against; older
    /// than metadata.generation until the operator has judged a spec change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One word for the STATUS column: Ready (every member is healthy on spec.version,
    /// up for minReadySeconds, and at least minReady are); Progressing (a rollout or a
    /// failed worker, within the progress deadline); Stalled (no progress for
    /// progressDeadlineSeconds, or the selector is invalid); Unknown (the metadata DB
    /// cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How many members the fleet has: selected AmpWorkers that are not retired. A
    /// stopped worker is a member that is not Ready until it has been stopped for
    /// spec.retireStoppedAfterSeconds (or its AmpWorker is deleted).
    #[serde(default)]
    pub workers: i64,
    /// Members whose Ready condition is True: registered, heartbeating and on their
    /// expected version.
    #[serde(default)]
    pub ready_workers: i64,
    /// Members that are healthy (registered and heartbeating) and run spec.version (the
    /// UPDATED column).
    #[serde(default)]
    pub updated_workers: i64,
    /// Members that are updated and have been up and Ready for spec.minReadySeconds:
    /// the rollout is complete when every member is available.
    #[serde(default)]
    pub available_workers: i64,
    /// Members whose worker stopped shortly after it started (its last run was under a
    /// minute): a crash, or a crash loop when it keeps happening.
    #[serde(default)]
    pub crashed_workers: i64,
    /// Selected workers stopped longer than spec.retireStoppedAfterSeconds: no longer
    /// members, not counted anywhere else.
    #[serde(default)]
    pub retired_workers: i64,
    /// readyWorkers/workers, e.g. 2/3 (the READY column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_summary: Option<String>,
    /// How many members run each version: the 20 most common versions, sorted by
    /// version. `ampctl worker versions` lists them all.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub versions: Vec<VersionCount>,
    /// Members on versions too rare to be listed in versions (0 when all are listed).
    #[serde(default)]
    pub unlisted_version_workers: i64,
    /// Node ids of members not on spec.version: the first 50 in node-id order, so the
    /// object stays small at any fleet size; mismatchedCount has the total.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub mismatched: Vec<String>,
    /// How many members are not on spec.version.
    #[serde(default)]
    pub mismatched_count: i64,
    /// The last time the rollout progressed (RFC 3339, UTC, whole seconds): a new spec,
    /// more available workers, or a complete fleet becoming incomplete. The progress
    /// deadline runs from here.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub last_progress_time: Option<DateTime<Utc>>,
    /// How the Pods selected by spec.podSelector link to the workers; absent without a
    /// podSelector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<FleetPods>,
    /// Stale members against maxUnhealthy; absent unless spec.remediation is on. The
    /// RemediationAllowed condition (True RemediationAllowed; False TooManyUnhealthy,
    /// InvalidMaxUnhealthy or NoPodSelector; Unknown MetadataDbUnavailable) says whether
    /// the operator may restart hung workers now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<FleetRemediation>,
    /// The fleet's conditions, one per type, following kstatus (read by `kubectl wait`,
    /// Argo CD and Flux). Each type, then its possible status, reason and meaning:
    ///
    /// Ready: the rollout is complete.
    /// - True RolloutComplete: every member is healthy on spec.version and has been up for
    ///   minReadySeconds, and at least minReady are.
    /// - False RolloutInProgress: members still run another version, within the progress
    ///   deadline; the message names every member that is not ready, with why.
    /// - False WorkersUnavailable: every member is on spec.version but some are not
    ///   available (stale, stopped, not registered, just started), within the progress
    ///   deadline: a worker failed, not a rollout.
    /// - False WorkersCrashing: a member stopped within a minute of starting (a crash, or
    ///   a version that crash-loops).
    /// - False WaitingForWorkers: fewer members than minReady, within the progress
    ///   deadline.
    /// - False VersionMismatch: stalled; members still run another version after the
    ///   progress deadline (the message names every member that is not ready).
    /// - False ProgressDeadlineExceeded: stalled; all members are on spec.version but not
    ///   all are available (or fewer than minReady) after the progress deadline.
    /// - False InvalidSelector: spec.selector cannot be parsed (the fleet selects
    ///   nothing).
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read, so worker health
    ///   is unknown.
    ///
    /// Reconciling: the operator expects the fleet to move on by itself.
    /// - True RolloutInProgress, WorkersUnavailable, WorkersCrashing or
    ///   WaitingForWorkers: as for Ready.
    /// - True MetadataDbUnavailable: waiting for the metadata DB to be readable again.
    /// - False RolloutComplete: nothing left to do.
    /// - False VersionMismatch, WorkersCrashing, ProgressDeadlineExceeded or
    ///   InvalidSelector: stalled (see Stalled).
    ///
    /// Stalled: only a user can move the fleet on.
    /// - True VersionMismatch, WorkersCrashing, ProgressDeadlineExceeded or
    ///   InvalidSelector: as for Ready.
    /// - False Progressing: within the progress deadline.
    /// - False RolloutComplete: the rollout is complete.
    /// - False MetadataDbUnavailable: the metadata DB cannot be read.
    ///
    /// JobsStranded: whether Amp's unfinished jobs wait on workers that cannot run them;
    /// not part of Ready (Ready keeps meaning "rollout done"); absent when the metadata
    /// DB has no job tables.
    /// - True JobsStranded: unfinished jobs are assigned to members that are Stale,
    ///   Stopped or NotRegistered, or to node ids without a row in the metadata DB (the
    ///   message says how many and names the first workers).
    /// - False NoStrandedJobs: no unfinished job waits on a worker that is down.
    /// - Unknown JobsUnknown: the job tables cannot be read.
    /// - Unknown MetadataDbUnavailable: the metadata DB cannot be read.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Amp's unfinished jobs on the fleet's members. Absent when the metadata DB has no
    /// job tables or they cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<FleetJobs>,
}

/// Totals of Amp's unfinished jobs over a fleet.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetJobs {
    /// Jobs in one of the four unfinished states on the members.
    pub active: i64,
    /// Jobs assigned to members and not picked up yet (SCHEDULED).
    pub scheduled: i64,
    /// Jobs the members run (RUNNING).
    pub running: i64,
    /// Unfinished jobs (including ERROR jobs waiting for a retry) on members that are
    /// Stale, Stopped or NotRegistered, plus those assigned to node ids without a row
    /// in the metadata DB (see unregisteredAssignees).
    pub stranded: i64,
    /// Of stranded: jobs whose assignee has no row in the metadata DB at all (no
    /// worker can resume them; stop them and deploy their datasets again).
    pub unregistered_assignees: i64,
    /// Node ids of the first 10 workers with stranded jobs, in node-id order.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub stranded_workers: Vec<String>,
}
