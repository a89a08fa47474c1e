//! Row types of the workers table, decoded leniently: old rows may miss info fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// `info` as stored. Every field is optional because rows written by older workers may
/// lack some; readers show "unknown" instead of failing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_timestamp: Option<String>,
    pub build_date: Option<String>,
}

impl WorkerInfo {
    /// Reads whatever shape the JSONB has: strings are taken as they are, other scalars
    /// are printed, missing/null/objects become None. Never fails.
    pub fn from_json(value: &Value) -> Self {
        let field = |key: &str| match value.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        Self {
            version: field("version"),
            commit_sha: field("commit_sha"),
            commit_timestamp: field("commit_timestamp"),
            build_date: field("build_date"),
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
        let info = WorkerInfo::from_json(
            &json!({"version": "v1", "commit_sha": 42, "build_date": null, "extra": 1}),
        );
        assert_eq!(
            info,
            WorkerInfo {
                version: Some("v1".into()),
                commit_sha: Some("42".into()),
                commit_timestamp: None,
                build_date: None
            }
        );
    }
}
