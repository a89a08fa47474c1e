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
    printcolumn(
        name = "Commit",
        type_ = "string",
        json_path = ".status.info.commitSha",
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
    /// The worker's node id, as registered in the metadata DB. Immutable. Amp's rule: a
    /// letter first (any script), then letters, digits, '_', '-' and '.'.
    #[schemars(regex(pattern = r"^\p{L}[\p{L}\p{N}_.-]*$"), length(min = 1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("nodeId is immutable"))]
    pub node_id: String,
    /// Version this worker must run; defaults to the version of the fleet selecting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// Heartbeat age after which the worker is stale (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub heartbeat_timeout_seconds: Option<i64>,
}

/// Build metadata the worker reported.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerBuildInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
}

/// Where a worker runs.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPlacement {
    /// The worker's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The Pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Kubernetes node the Pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The Pod's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
}

/// Observed state, mirrored from the metadata DB and judged by the database clock.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmpWorkerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary for `kubectl get`: Ready, Stale, NotRegistered, VersionMismatch or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<WorkerBuildInfo>,
    /// First registration (RFC 3339).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub created_at: Option<DateTime<Utc>>,
    /// Last (re-)registration (RFC 3339).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub registered_at: Option<DateTime<Utc>>,
    /// Last heartbeat seen (RFC 3339); refreshed at most every --status-refresh while healthy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Where the worker runs (Pod, namespace, Kubernetes node, Pod IP), as the worker
    /// reported it; absent for workers that report none (Amp's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<WorkerPlacement>,
    /// Process restarts observed by the operator (registeredAt moved; a reconnect after a
    /// DB outage does not count).
    #[serde(default)]
    pub restart_count: i64,
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A rollout of workers to one version.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
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
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AmpWorkerFleetSpec {
    /// The version every selected worker must run (the chart sets the worker image tag).
    #[schemars(length(min = 1))]
    pub version: String,
    /// Which AmpWorkers belong to the fleet; all in the namespace when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Ready requires at least this many updated, healthy workers (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready: Option<i64>,
    /// Seconds without rollout progress before the fleet is Stalled (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct VersionCount {
    pub version: String,
    pub count: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmpWorkerFleetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Stalled or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default)]
    pub workers: i64,
    #[serde(default)]
    pub ready_workers: i64,
    /// Healthy workers on the expected version.
    #[serde(default)]
    pub updated_workers: i64,
    /// `ready/workers`, for the READY column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_summary: Option<String>,
    /// Workers per version: the most common versions (at most 20, sorted by version).
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub versions: Vec<VersionCount>,
    /// Workers on versions too rare to be listed in `versions` (0 when all are listed).
    #[serde(default)]
    pub unlisted_version_workers: i64,
    /// Node ids not on the expected version: the first 50 in node-id order (the object
    /// must stay small at any fleet size); `mismatchedCount` has the total.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub mismatched: Vec<String>,
    /// How many workers are not on the expected version.
    #[serde(default)]
    pub mismatched_count: i64,
    /// Last time the number of updated workers grew (RFC 3339); the progress deadline runs from here.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamps::whole_seconds_opt"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub last_progress_time: Option<DateTime<Utc>>,
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
