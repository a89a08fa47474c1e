//! Worker node ids: validated once at the edge, carried as a type afterwards.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest accepted node id. The seeds' pattern has no bound; an unbounded id would let
/// one bad flag write megabytes into the registry and every status object.
pub const MAX_LEN: usize = 128;

/// The pattern from the worker documentation.
pub const PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_\-\.]*$";

static NODE_ID_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(PATTERN).expect("node id pattern is a valid regex"));

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNodeId {
    #[error("invalid node id: must not be empty")]
    Empty,
    #[error("invalid node id: {len} characters, at most {MAX_LEN} allowed")]
    TooLong { len: usize },
    #[error(
        "invalid node id {id:?}: must match {PATTERN} (start with a letter; then letters, digits, '_', '-', '.')"
    )]
    Pattern { id: String },
    #[error(
        "invalid node id {id:?}: must start with a letter, then letters, digits, '_', '-', '.'"
    )]
    AmpPattern { id: String },
}

/// A node id that matches [`PATTERN`] and is at most [`MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(raw: &str) -> Result<Self, InvalidNodeId> {
        if raw.is_empty() {
            return Err(InvalidNodeId::Empty);
        }
        let len = raw.chars().count();
        if len > MAX_LEN {
            return Err(InvalidNodeId::TooLong { len });
        }
        if !NODE_ID_RE.is_match(raw) {
            return Err(InvalidNodeId::Pattern { id: raw.to_owned() });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The advisory-lock key of releases before Amp's key was adopted: the first 8 bytes
    /// of SHA-256("amp-worker-node:" + id). Still taken beside Amp's key for one release
    /// (see `metadata_db::try_advisory_lock`), so a rolling upgrade never runs an id twice.
    pub fn legacy_advisory_lock_key(&self) -> i64 {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"amp-worker-node:")
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }
}

/// A node id as Amp itself accepts it: what every reader of the metadata DB (Admin API,
/// paging tokens, ampctl, the operator) must take. Amp's validator allows a Unicode letter
/// first, then Unicode letters, digits, '_', '-', '.', with no length limit; our own
/// worker still writes only [`NodeId`]s (the seeds' ASCII rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AmpNodeId(String);

/// Amp's rule as a regular expression (the CRD's `spec.nodeId` pattern): `\p{L}` and
/// `\p{N}` are what Rust's `char::is_alphabetic`/`is_alphanumeric` test, near enough for a
/// schema; [`AmpNodeId::parse`] is the authority.
pub const AMP_PATTERN: &str = r"^\p{L}[\p{L}\p{N}_.-]*$";

impl AmpNodeId {
    pub fn parse(raw: &str) -> Result<Self, InvalidNodeId> {
        let mut chars = raw.chars();
        let Some(first) = chars.next() else {
            return Err(InvalidNodeId::Empty);
        };
        let rest_ok = chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !first.is_alphabetic() || !rest_ok {
            return Err(InvalidNodeId::AmpPattern {
                id: raw.chars().take(MAX_LEN).collect(),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<NodeId> for AmpNodeId {
    fn from(id: NodeId) -> Self {
        Self(id.0)
    }
}

impl fmt::Display for AmpNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = InvalidNodeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_shapes() {
        for ok in [
            "worker-01",
            "a",
            "Worker_1.eu-west",
            "w.1-2_3",
            "ampd-worker-0",
        ] {
            assert_eq!(NodeId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(NodeId::parse(&"a".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn refuses_bad_ids_with_clear_errors() {
        assert_eq!(NodeId::parse(""), Err(InvalidNodeId::Empty));
        assert_eq!(
            NodeId::parse(&"a".repeat(10_000)),
            Err(InvalidNodeId::TooLong { len: 10_000 })
        );
        for bad in [
            "1worker", "-w", "_w", ".w", "wor ker", "a/b", "wörker", "ünicode", "w\n", "w;drop",
        ] {
            let err = NodeId::parse(bad).unwrap_err();
            assert!(
                matches!(err, InvalidNodeId::Pattern { .. }),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("must match"), "{err}");
        }
    }

    #[test]
    fn lock_key_is_stable_and_distinct() {
        let a = NodeId::parse("worker-01").unwrap();
        let b = NodeId::parse("worker-02").unwrap();
        assert_eq!(
            a.legacy_advisory_lock_key(),
            NodeId::parse("worker-01")
                .unwrap()
                .legacy_advisory_lock_key()
        );
        assert_ne!(a.legacy_advisory_lock_key(), b.legacy_advisory_lock_key());
        // Pinned so an accidental change of the derivation (which would let an old and a
        // new worker hold "the same" id at once during an upgrade) fails this test.
        assert_eq!(a.legacy_advisory_lock_key(), LOCK_KEY_WORKER_01);
    }

    #[test]
    fn readers_accept_what_amp_accepts() {
        for ok in ["worker-01", "ünicode", "Ωmega_1.2", "日本語ワーカー", "w٣"] {
            assert_eq!(AmpNodeId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(AmpNodeId::parse(&"a".repeat(10_000)).is_ok());
        assert_eq!(AmpNodeId::parse(""), Err(InvalidNodeId::Empty));
        for bad in [
            "1worker", "-w", "_w", ".w", "wor ker", "a/b", "w\n", "w;drop", "٣w",
        ] {
            let err = AmpNodeId::parse(bad).unwrap_err();
            assert!(
                matches!(err, InvalidNodeId::AmpPattern { .. }),
                "{bad:?}: {err}"
            );
        }
        // Every id our own worker writes is one Amp accepts.
        assert_eq!(
            AmpNodeId::from(NodeId::parse("Worker_1.eu").unwrap()).as_str(),
            "Worker_1.eu"
        );
    }

    const LOCK_KEY_WORKER_01: i64 = 7_723_169_916_119_340_787;
}
