//! Row types of the workers table, decoded leniently: old rows may miss info fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Longest `info` field we pass on, in bytes. Nothing bounds what a writer puts in
/// `info` (Amp's or a person's `UPDATE`); a 2 MB version would make every AmpWorker
/// status write fail (objects are at most 1.5 MiB) and every list answer huge. Real
/// values are under 64 bytes.
pub const MAX_INFO_FIELD_BYTES: usize = 256;

/// `info` as stored. Every field is optional because rows written by older workers may
/// lack some; readers show "unknown" instead of failing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_timestamp: Option<String>,
    pub build_date: Option<String>,
    /// Where the worker runs, as it reported (our worker, from the downward API).
    #[serde(skip)]
    pub placement: Option<Placement>,
    /// Fields cut to [`MAX_INFO_FIELD_BYTES`]: (key, original length in bytes).
    #[serde(skip)]
    pub oversized: Vec<(&'static str, usize)>,
}

/// `info.placement` as our worker writes it: its Pod, namespace, Kubernetes node and Pod
/// IP. Amp's workers do not report one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
}

impl Placement {
    /// From the environment the chart sets with the downward API; None outside a Pod.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let placement = Self {
            pod: var("POD_NAME"),
            namespace: var("POD_NAMESPACE"),
            node: var("NODE_NAME"),
            pod_ip: var("POD_IP"),
        };
        (placement != Self::default()).then_some(placement)
    }

    /// Strings only, each bounded like every other `info` field.
    fn from_json(value: &Value) -> Option<Self> {
        let field = |key: &str| match value.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {
                Some(cut_to(s.clone(), MAX_INFO_FIELD_BYTES))
            }
            _ => None,
        };
        let placement = Self {
            pod: field("pod"),
            namespace: field("namespace"),
            node: field("node"),
            pod_ip: field("pod_ip"),
        };
        (placement != Self::default()).then_some(placement)
    }
}

impl WorkerInfo {
    /// Reads whatever shape the JSONB has: strings are taken as they are, other values
    /// (numbers, objects, ...) as their JSON text, missing/null become None; each cut to
    /// [`MAX_INFO_FIELD_BYTES`]. Never fails.
    pub fn from_json(value: &Value) -> Self {
        let mut oversized = Vec::new();
        let mut field = |key: &'static str| {
            let text = match value.get(key)? {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if text.len() > MAX_INFO_FIELD_BYTES {
                oversized.push((key, text.len()));
            }
            Some(cut_to(text, MAX_INFO_FIELD_BYTES))
        };
        Self {
            version: field("version"),
            commit_sha: field("commit_sha"),
            // Amp writes 9 fractional digits and `±HH:MM`; every reader (the Admin API,
            // the operator's status) shows the contract's whole-second `Z` form (jq's
            // `fromdateiso8601` parses only that). Free text stays as written.
            commit_timestamp: field("commit_timestamp")
                .as_deref()
                .map(crate::timestamps::normalize),
            build_date: field("build_date"),
            placement: value.get("placement").and_then(Placement::from_json),
            oversized,
        }
    }
}

/// `text` cut at a character boundary to at most `max` bytes.
fn cut_to(mut text: String, max: usize) -> String {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
    }
    text
}

/// Whether a session holds the row's node id lock (Amp's key): the lock lives exactly as
/// long as a worker process's session, so it tells a stopped worker from a hung one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockState {
    /// Not read (a statement without the `lock_held` column, e.g. a worker's own write).
    #[default]
    Unknown,
    Held,
    Free,
}

impl LockState {
    /// The `lock_held` column of a reading statement (see `lock_probe`).
    pub fn from_probe(held: Option<bool>) -> Self {
        match held {
            Some(true) => LockState::Held,
            Some(false) => LockState::Free,
            None => LockState::Unknown,
        }
    }

    /// Whether a worker process runs: `None` when not read.
    pub fn running(self) -> Option<bool> {
        match self {
            LockState::Held => Some(true),
            LockState::Free => Some(false),
            LockState::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    /// As stored. Rows are written only through validated [`crate::node_id::NodeId`]s and
    /// the table has a CHECK constraint, but readers still treat it as plain text.
    pub node_id: String,
    pub info: WorkerInfo,
    pub created_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Whether a process holds the node id lock, when the statement read it.
    pub lock: LockState,
}

impl<'r> sqlx::FromRow<'r, PgRow> for WorkerRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let info: Option<sqlx::types::Json<Value>> = row.try_get("info")?;
        Ok(Self {
            node_id: row.try_get("node_id")?,
            info: info
                .map(|j| WorkerInfo::from_json(&j.0))
                .unwrap_or_default(),
            created_at: row.try_get("created_at")?,
            registered_at: row.try_get("registered_at")?,
            heartbeat_at: row.try_get("heartbeat_at")?,
            lock: match row.try_get("lock_held") {
                Ok(held) => LockState::from_probe(held),
                // Statements that do not probe locks (a worker's RETURNING).
                Err(sqlx::Error::ColumnNotFound(_)) => LockState::Unknown,
                Err(e) => return Err(e),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn info_is_read_leniently() {
        assert_eq!(WorkerInfo::from_json(&json!({})), WorkerInfo::default());
        assert_eq!(WorkerInfo::from_json(&json!(null)), WorkerInfo::default());
        assert_eq!(
            WorkerInfo::from_json(&json!("garbage")),
            WorkerInfo::default()
        );
        let info = WorkerInfo::from_json(&json!({
            "version": "v1", "commit_sha": 42, "build_date": null, "extra": 1,
            "commit_timestamp": {"seconds": 1}
        }));
        assert_eq!(
            info,
            WorkerInfo {
                version: Some("v1".into()),
                commit_sha: Some("42".into()),
                commit_timestamp: Some(r#"{"seconds":1}"#.into()),
                build_date: None,
                placement: None,
                oversized: vec![],
            }
        );
        let placed = WorkerInfo::from_json(&json!({
            "version": "v1",
            "placement": {"pod": "amp-worker-0", "node": "node-a", "pod_ip": 7, "namespace": ""}
        }));
        assert_eq!(
            placed.placement,
            Some(Placement {
                pod: Some("amp-worker-0".into()),
                node: Some("node-a".into()),
                ..Default::default()
            })
        );
    }

    #[test]
    fn commit_timestamps_are_normalised_as_every_other_timestamp() {
        let amp = WorkerInfo::from_json(&json!({
            "version": "nightly-188bfd4",
            "commit_timestamp": "2026-03-12T10:38:36.123456789+01:00"
        }));
        assert_eq!(amp.version.as_deref(), Some("nightly-188bfd4"));
        assert_eq!(
            amp.commit_timestamp.as_deref(),
            Some("2026-03-12T09:38:36Z")
        );
        let ours =
            WorkerInfo::from_json(&json!({"commit_timestamp": "2026-11-23T10:38:36.000000000Z"}));
        assert_eq!(
            ours.commit_timestamp.as_deref(),
            Some("2026-11-23T10:38:36Z")
        );
        // Not a timestamp: shown as written.
        let odd = WorkerInfo::from_json(&json!({"commit_timestamp": "yesterday"}));
        assert_eq!(odd.commit_timestamp.as_deref(), Some("yesterday"));
        let ts = |reported: &str| {
            WorkerInfo::from_json(&json!({"commit_timestamp": reported})).commit_timestamp
        };
        assert_eq!(
            ts("2026-11-23T11:38:36.999+01:00").as_deref(),
            Some("2026-11-23T10:38:36Z")
        );
    }

    #[test]
    fn oversized_fields_are_cut_and_reported() {
        let huge = "v".repeat(2 * 1024 * 1024);
        let info = WorkerInfo::from_json(&json!({"version": huge, "commit_sha": "abc"}));
        assert_eq!(
            info.version.as_deref(),
            Some("v".repeat(MAX_INFO_FIELD_BYTES).as_str())
        );
        assert_eq!(info.commit_sha.as_deref(), Some("abc"));
        assert_eq!(info.oversized, [("version", 2 * 1024 * 1024)]);
        // Cut at a character boundary, never inside one.
        let wide = "é".repeat(200); // 400 bytes
        let info = WorkerInfo::from_json(&json!({"build_date": wide}));
        assert_eq!(info.build_date.as_deref(), Some("é".repeat(128).as_str()));
        assert_eq!(info.oversized, [("build_date", 400)]);
        // Exactly the bound is kept whole.
        let exact = "x".repeat(MAX_INFO_FIELD_BYTES);
        let info = WorkerInfo::from_json(&json!({"version": exact}));
        assert!(info.oversized.is_empty());
    }
}
