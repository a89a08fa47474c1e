//! A JSON document that keeps its keys in the server's order, so ampctl `--json` can
//! print the server's document with only its timestamps rewritten. (`serde_json::Value`
//! sorts keys: this crate's serde_json is built without `preserve_order`.)

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::timestamps::{format_timestamp, parse_rfc3339, truncate};

/// The lifecycle timestamps of a worker object: the fields both Admin APIs send as
/// date-times (Amp: `2026-12-01T21:03:17.204046+00:00`; ours: `2026-12-01T21:03:17Z`).
pub const TIMESTAMP_FIELDS: [&str; 3] = ["created_at", "registered_at", "heartbeat_at"];

/// The fields of `info` that may hold a worker-reported date-time (Amp writes
/// `2026-03-12T10:38:36.123456789+01:00`); our Admin API serves them in the whole-second
/// `Z` form, and ampctl does the same to Amp's. Other text in them is kept.
pub const INFO_TIMESTAMP_FIELDS: [&str; 2] = ["commit_timestamp", "build_date"];

/// Any JSON value; objects are key/value pairs in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl Doc {
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Takes the value of `key` out of an object (Null left in its place).
    pub fn take(&mut self, key: &str) -> Option<Doc> {
        match self {
            Doc::Object(fields) => fields
                .iter_mut()
                .find(|(k, _)| k == key)
                .map(|(_, v)| std::mem::replace(v, Doc::Null)),
            _ => None,
        }
    }

    /// Rewrites this worker object's [`TIMESTAMP_FIELDS`] and its `info`'s
    /// [`INFO_TIMESTAMP_FIELDS`] into the whole-second `Z` form (truncated: a heartbeat is
    /// never shown newer than it was). A value that is not an RFC 3339 date-time is left
    /// as the server sent it.
    pub fn rewrite_timestamps(&mut self) {
        let Doc::Object(fields) = self else { return };
        for (key, value) in fields.iter_mut() {
            if TIMESTAMP_FIELDS.contains(&key.as_str()) {
                value.rewrite_date_time();
            } else if key == "info"
                && let Doc::Object(info) = value
            {
                info.iter_mut()
                    .filter(|(k, _)| INFO_TIMESTAMP_FIELDS.contains(&k.as_str()))
                    .for_each(|(_, v)| v.rewrite_date_time());
            }
        }
    }

    fn rewrite_date_time(&mut self) {
        if let Doc::String(s) = self
            && let Some(ts) = parse_rfc3339(s)
        {
            *s = format_timestamp(&truncate(ts));
        }
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Null => s.serialize_unit(),
            Doc::Bool(b) => s.serialize_bool(*b),
            Doc::Number(n) => n.serialize(s),
            Doc::String(v) => s.serialize_str(v),
            Doc::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Doc::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc, D::Error> {
        Doc::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Doc, E> {
        Ok(Doc::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Doc, E> {
        Ok(Doc::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Doc, E> {
        serde_json::Number::from_f64(v)
            .map(Doc::Number)
            .ok_or_else(|| E::custom("a non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Doc, E> {
        Ok(Doc::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Doc, E> {
        Ok(Doc::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Doc>()? {
            fields.push((k, v));
        }
        Ok(Doc::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compact_json_byte_for_byte() {
        let raw = r#"{"node_id":"ünicode-wörker","heartbeat_at":"x","n":[1,-2,2.5,true,null],"esc":"a\"\u001b\n"}"#;
        let doc: Doc = serde_json::from_str(raw).unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), raw);
    }

    #[test]
    fn rewrites_only_the_timestamps_of_the_object_and_its_info() {
        let mut doc: Doc = serde_json::from_str(
            r#"{"node_id":"2025-10-29T09:00:00.5Z","info":{"version":"2025-10-29T09:00:00.5Z","commit_timestamp":"2025-10-29T10:00:00.123456789+01:00","build_date":"2025-10-30"},"created_at":"2026-12-01T21:03:17.204046+00:00","registered_at":"2026-12-01T23:03:17.999+02:00","heartbeat_at":"not a time"}"#,
        )
        .unwrap();
        doc.rewrite_timestamps();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"node_id":"2025-10-29T09:00:00.5Z","info":{"version":"2025-10-29T09:00:00.5Z","commit_timestamp":"2025-10-29T09:00:00Z","build_date":"2025-10-30"},"created_at":"2026-12-01T21:03:17Z","registered_at":"2026-12-01T21:03:17Z","heartbeat_at":"not a time"}"#
        );
    }
}
