//! The Admin API's JSON shapes, shared by the server, the client and ampctl.
//!
//! Timestamps are RFC 3339 UTC with `Z` and whole seconds (`2026-11-22T10:00:00Z`, see
//! [`crate::timestamps`]): the seeds' jq workflows parse them with `fromdateiso8601`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::build_info::UNKNOWN;
use crate::metadata_db::WorkerRow;
use crate::timestamps::{normalize, truncate, whole_seconds};

/// Build metadata reported by the worker. A field the worker did not report is the
/// string `"unknown"`, as in Amp's own Admin API: Amp's ampctl fails on `null` there.
// Reading, `null` and absent fields (older servers of ours) are taken as not reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    /// `git describe` of the worker build, e.g. `v0.0.22-15-g8b065bde`; `unknown` when
    /// not reported.
    #[serde(serialize_with = "unknown_if_none")]
    #[schema(value_type = String, required = true, example = "v0.0.22-15-g8b065bde")]
    pub version: Option<String>,
    /// `unknown` when not reported.
    #[serde(serialize_with = "unknown_if_none")]
    #[schema(value_type = String, required = true, example = "8b065bde")]
    pub commit_sha: Option<String>,
    /// When the worker's commit was made. A date-time is served like every other
    /// timestamp, RFC 3339 UTC with `Z` and whole seconds (truncated), whatever form the
    /// worker reported (`2026-11-23T10:38:36.000000000Z` and
    /// `2026-11-23T11:38:36.5+01:00` are both `2026-11-23T10:38:36Z`); any other text is
    /// served as reported; `unknown` when not reported.
    #[serde(serialize_with = "unknown_if_none")]
    #[schema(value_type = String, required = true, example = "2025-10-29T09:00:00Z")]
    pub commit_timestamp: Option<String>,
    /// A date (`2025-10-30`), served as reported; a date-time is served in the
    /// whole-second `Z` form like `commit_timestamp`; `unknown` when not reported.
    #[serde(serialize_with = "unknown_if_none")]
    #[schema(value_type = String, required = true, example = "2025-10-30")]
    pub build_date: Option<String>,
}

fn unknown_if_none<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(UNKNOWN))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Worker {
    /// Amp's rule: a letter (any script) first, then letters, digits, '_', '-', '.'.
    #[schema(example = "worker-01")]
    pub node_id: String,
    pub info: WorkerInfo,
    /// First registration; never changes.
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T10:00:00Z")]
    pub created_at: DateTime<Utc>,
    /// Last (re-)registration; moves on every restart.
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T10:00:00Z")]
    pub registered_at: DateTime<Utc>,
    /// Last heartbeat (every second while the worker runs). For a worker that is not
    /// running, its last sign of life (the DB's clock): when it stopped.
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T10:00:00Z")]
    pub heartbeat_at: DateTime<Utc>,
    /// Whether a process holds this node id's lock (Amp's key,
    /// `hashtextextended(node_id, 0)`, read from `pg_locks` in the same statement as the
    /// row): the lock lives as long as the worker process's session, so `false` means
    /// the worker stopped or crashed, and `true` with an old heartbeat means it hangs.
    /// Always sent by this API; absent from Admin APIs that cannot tell (Amp's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = true, example = true)]
    pub running: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    /// Sorted by node id, each with its `jobs` where the metadata DB has Amp's job tables
    /// (one jobs read per answer, not per worker).
    pub workers: Vec<super::jobs::WorkerDetail>,
    /// With `?limit=N`: pass it back as `?continue=` for the next page; absent on the
    /// last page (and always without `limit`).
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// Every non-2xx answer carries this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "WORKER_NOT_FOUND")]
    pub error_code: String,
    #[schema(example = "worker \"worker-99\" not found")]
    pub error_message: String,
}

impl From<WorkerRow> for Worker {
    fn from(row: WorkerRow) -> Self {
        Self {
            node_id: row.node_id,
            info: WorkerInfo {
                version: row.info.version,
                commit_sha: row.info.commit_sha,
                // The row decoder already normalised `commit_timestamp`
                // (`metadata_db::WorkerInfo::from_json`); a date-time in `build_date` is
                // served in the same whole-second `Z` form (a date stays as written).
                commit_timestamp: row.info.commit_timestamp,
                build_date: row.info.build_date.as_deref().map(normalize),
            },
            created_at: truncate(row.created_at),
            registered_at: truncate(row.registered_at),
            heartbeat_at: truncate(row.heartbeat_at),
            running: row.lock.running(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_whole_seconds_with_z() {
        let ts = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
            + chrono::Duration::milliseconds(999);
        let w = Worker {
            node_id: "worker-01".into(),
            info: WorkerInfo {
                version: Some("v1".into()),
                commit_sha: None,
                commit_timestamp: None,
                build_date: Some(UNKNOWN.into()),
            },
            created_at: truncate(ts),
            registered_at: truncate(ts),
            heartbeat_at: truncate(ts),
            running: Some(false),
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"node_id":"worker-01","info":{"version":"v1","commit_sha":"unknown","commit_timestamp":"unknown","build_date":"unknown"},"created_at":"2026-11-22T10:00:00Z","registered_at":"2026-11-22T10:00:00Z","heartbeat_at":"2026-11-22T10:00:00Z","running":false}"#
        );
        // "unknown" reads back as the string (a CSV export then matches jq's `@csv`).
        let back: Worker = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back.info.commit_sha.as_deref(), Some(UNKNOWN));
        assert_eq!(back.info.build_date, w.info.build_date);
        assert_eq!(back.heartbeat_at, w.heartbeat_at);
        assert_eq!(back.running, Some(false));
        // Amp's Admin API does not say: read as not known, and not sent on.
        let amp: Worker = serde_json::from_str(
            r#"{"node_id":"w","info":{},"created_at":"2026-11-22T10:00:00Z","registered_at":"2026-11-22T10:00:00Z","heartbeat_at":"2026-11-22T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(amp.running, None);
        assert!(!serde_json::to_string(&amp).unwrap().contains("running"));
    }

    #[test]
    fn reported_date_times_are_served_in_whole_seconds_and_free_text_as_is() {
        // As read from the DB: through the row decoder, which normalises commit_timestamp.
        let row = |commit_timestamp: &str, build_date: &str| WorkerRow {
            node_id: "worker-01".into(),
            info: crate::metadata_db::WorkerInfo::from_json(&serde_json::json!({
                "commit_timestamp": commit_timestamp, "build_date": build_date
            })),
            created_at: DateTime::UNIX_EPOCH,
            registered_at: DateTime::UNIX_EPOCH,
            heartbeat_at: DateTime::UNIX_EPOCH,
            lock: crate::metadata_db::LockState::Held,
        };
        let served = |commit_timestamp: &str, build_date: &str| {
            let json = serde_json::to_value(Worker::from(row(commit_timestamp, build_date)));
            json.unwrap()["info"].clone()
        };
        assert_eq!(
            served("2026-11-23T10:38:36.000000000Z", "2025-10-30"),
            serde_json::json!({"version": "unknown", "commit_sha": "unknown",
                "commit_timestamp": "2026-11-23T10:38:36Z", "build_date": "2025-10-30"})
        );
        assert_eq!(
            served("2026-11-23T11:38:36.999+01:00", "2025-10-30T10:00:00.5Z")["build_date"],
            "2025-10-30T10:00:00Z"
        );
        assert_eq!(
            served("2026-11-23T11:38:36.999+01:00", "x")["commit_timestamp"],
            "2026-11-23T10:38:36Z"
        );
        assert_eq!(
            served("yesterday", "Oct 30")["commit_timestamp"],
            "yesterday"
        );
        assert_eq!(served("yesterday", "Oct 30")["build_date"], "Oct 30");
    }

    #[test]
    fn info_reads_null_absent_and_amp_shapes() {
        let none = WorkerInfo::default();
        assert_eq!(serde_json::from_str::<WorkerInfo>("{}").unwrap(), none);
        assert_eq!(
            serde_json::from_str::<WorkerInfo>(r#"{"version":null,"build_date":"2025-10-30"}"#)
                .unwrap(),
            WorkerInfo {
                build_date: Some("2025-10-30".into()),
                ..none
            }
        );
    }
}
