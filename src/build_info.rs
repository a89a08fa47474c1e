//! Build metadata compiled into the binaries, overridable at run time by packagers.

use serde::{Deserialize, Serialize};

/// What a worker reports about its build. Serialized into the `info` JSONB column and the
/// Admin API with the field names the seeds' jq pipelines use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub version: String,
    pub commit_sha: String,
    pub commit_timestamp: String,
    pub build_date: String,
}

pub const UNKNOWN: &str = "unknown";

/// vergen writes this marker (or nothing) when git or the clock could not be read.
fn compiled(value: Option<&'static str>) -> String {
    match value {
        Some(v) if !v.is_empty() && !v.starts_with("VERGEN_") => v.to_owned(),
        _ => UNKNOWN.to_owned(),
    }
}

impl BuildInfo {
    /// The values compiled into this binary.
    pub fn compiled() -> Self {
        Self {
            version: compiled(option_env!("VERGEN_GIT_DESCRIBE")),
            commit_sha: compiled(option_env!("VERGEN_GIT_SHA")),
            commit_timestamp: compiled(option_env!("VERGEN_GIT_COMMIT_TIMESTAMP")),
            build_date: compiled(option_env!("VERGEN_BUILD_DATE")),
        }
    }

    /// Compiled values with `AMPD_VERSION`, `AMPD_COMMIT_SHA`, `AMPD_COMMIT_TIMESTAMP` and
    /// `AMPD_BUILD_DATE` taking precedence when set and non-empty.
    pub fn current() -> Self {
        Self::compiled().with_overrides(|key| std::env::var(key).ok())
    }

    /// Applies overrides from `lookup` (an environment in production, a map in tests).
    pub fn with_overrides(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let fields: [(&str, &mut String); 4] = [
            ("AMPD_VERSION", &mut self.version),
            ("AMPD_COMMIT_SHA", &mut self.commit_sha),
            ("AMPD_COMMIT_TIMESTAMP", &mut self.commit_timestamp),
            ("AMPD_BUILD_DATE", &mut self.build_date),
        ];
        for (key, field) in fields {
            if let Some(value) = lookup(key).filter(|v| !v.trim().is_empty()) {
                *field = value.trim().to_owned();
            }
        }
        self
    }

    /// Multi-line text for `--version`.
    pub fn long_version(&self) -> String {
        format!(
            "{}\ncommit_sha: {}\ncommit_timestamp: {}\nbuild_date: {}",
            self.version, self.commit_sha, self.commit_timestamp, self.build_date
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_overrides_replace_only_what_is_set() {
        let env: HashMap<&str, &str> = [
            ("AMPD_VERSION", "v0.0.22-15-g8b065bde"),
            ("AMPD_BUILD_DATE", " "),
            ("AMPD_COMMIT_SHA", "8b065bde"),
        ]
        .into();
        let base = BuildInfo {
            version: "v0".into(),
            commit_sha: "aaa".into(),
            commit_timestamp: "2025-10-30T10:00:00Z".into(),
            build_date: "2025-10-30".into(),
        };
        let info = base.with_overrides(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(
            info,
            BuildInfo {
                version: "v0.0.22-15-g8b065bde".into(),
                commit_sha: "8b065bde".into(),
                commit_timestamp: "2025-10-30T10:00:00Z".into(),
                build_date: "2025-10-30".into(),
            }
        );
    }

    #[test]
    fn vergen_placeholders_become_unknown() {
        assert_eq!(compiled(Some("VERGEN_IDEMPOTENT_OUTPUT")), UNKNOWN);
        assert_eq!(compiled(None), UNKNOWN);
        assert_eq!(compiled(Some("")), UNKNOWN);
        assert_eq!(compiled(Some("v1.2.3")), "v1.2.3");
    }

    #[test]
    fn compiled_build_date_is_a_date_not_a_datetime() {
        let date = BuildInfo::compiled().build_date;
        assert!(
            date == UNKNOWN || chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok(),
            "{date}"
        );
    }
}
