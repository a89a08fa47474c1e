//! Timestamps as users see them everywhere (Admin API JSON, ampctl, AmpWorker status):
//! RFC 3339 UTC with `Z` and whole seconds (`2026-11-22T10:00:00Z`). The seeds' jq
//! workflows parse them with `fromdateiso8601`, which rejects fractional seconds, and
//! Argo CD / kubectl read the same form from the custom resources.

use chrono::{DateTime, Utc};

/// Drops sub-second precision (truncation: a heartbeat is never reported as newer).
pub fn truncate(ts: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(ts.timestamp(), 0).unwrap_or(ts)
}

/// `2026-11-22T10:00:00Z`.
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Any RFC 3339 timestamp (offset or `Z`, fractions allowed), as UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A timestamp reported by a worker (e.g. its commit time) in the whole-second `Z` form
/// when it parses as RFC 3339; anything else is kept as reported (shown, never fatal).
pub fn normalize(reported: &str) -> String {
    parse_rfc3339(reported).map_or_else(|| reported.to_owned(), |t| format_timestamp(&truncate(t)))
}

/// `#[serde(with = "whole_seconds")]` for `DateTime<Utc>` fields in the whole-second form.
pub mod whole_seconds {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse_rfc3339(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {raw:?}")))
    }
}

/// `#[serde(with = "whole_seconds_opt")]` for `Option<DateTime<Utc>>` status fields (use
/// with `default` and `skip_serializing_if = "Option::is_none"`).
pub mod whole_seconds_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(t) => s.serialize_str(&super::format_timestamp(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(raw) => super::parse_rfc3339(&raw).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("not an RFC 3339 timestamp: {raw:?}"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_whole_seconds_utc_or_keeps_what_does_not_parse() {
        assert_eq!(
            normalize("2025-10-30T11:00:00+02:00"),
            "2025-10-30T09:00:00Z"
        );
        assert_eq!(
            normalize("2025-10-30T09:00:00.999Z"),
            "2025-10-30T09:00:00Z"
        );
        assert_eq!(normalize("2025-10-30T09:00:00Z"), "2025-10-30T09:00:00Z");
        assert_eq!(normalize("unknown"), "unknown");
        assert_eq!(normalize("2025-10-30"), "2025-10-30");
    }

    #[test]
    fn truncate_never_rounds_up() {
        let t = parse_rfc3339("2026-11-22T10:00:00.999Z").unwrap();
        assert_eq!(format_timestamp(&truncate(t)), "2026-11-22T10:00:00Z");
    }
}
