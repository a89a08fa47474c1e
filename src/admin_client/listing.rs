//! `GET /workers` in either wire format: ours (whole workers, pages, whole-second `Z`
//! timestamps) and Amp's (only `node_id` and `heartbeat_at`, no paging, fractional
//! `+00:00` timestamps). Both read into [`Listed`]; the details Amp's list lacks are
//! fetched per worker only by the commands that show them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::Fetched;
use super::doc::Doc;
use crate::admin_api::wire::{Worker, WorkerInfo};
use crate::timestamps::{truncate, whole_seconds, whole_seconds_opt};

/// One entry of a worker list, whichever server sent it. Timestamps are truncated to
/// whole seconds on reading, as `--json` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listed {
    pub node_id: String,
    #[serde(deserialize_with = "truncated")]
    pub heartbeat_at: DateTime<Utc>,
    #[serde(default)]
    pub info: Option<WorkerInfo>,
    #[serde(default, deserialize_with = "truncated_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "truncated_opt")]
    pub registered_at: Option<DateTime<Utc>>,
    /// Whether a process holds the node id lock (ours); absent from Amp's list.
    #[serde(default)]
    pub running: Option<bool>,
    /// The worker's unfinished jobs (ours, where the DB has Amp's job tables).
    #[serde(default)]
    pub jobs: Option<crate::admin_api::jobs::WorkerJobs>,
}

impl Listed {
    /// The whole worker when the list carried it (our Admin API); `None` for an entry
    /// of Amp's list, whose details take a `GET /workers/{id}`.
    pub fn complete(&self) -> Option<Worker> {
        Some(Worker {
            node_id: self.node_id.clone(),
            info: self.info.clone()?,
            created_at: self.created_at?,
            registered_at: self.registered_at?,
            heartbeat_at: self.heartbeat_at,
            running: self.running,
        })
    }
}

/// A worker object as `GET /workers/{id}` answers it, timestamps truncated like a
/// [`Listed`] entry's (Amp sends microseconds), and the reported date-times in `info` in
/// the same form, as our Admin API serves them.
pub fn whole_second_worker(w: Worker) -> Worker {
    let reported = |v: Option<String>| v.as_deref().map(crate::timestamps::normalize);
    Worker {
        created_at: truncate(w.created_at),
        registered_at: truncate(w.registered_at),
        heartbeat_at: truncate(w.heartbeat_at),
        info: WorkerInfo {
            commit_timestamp: reported(w.info.commit_timestamp),
            build_date: reported(w.info.build_date),
            ..w.info
        },
        ..w
    }
}

fn truncated<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    whole_seconds::deserialize(d).map(truncate)
}

fn truncated_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    whole_seconds_opt::deserialize(d).map(|t| t.map(truncate))
}

/// One answer of `GET /workers` (a page of ours, or all of Amp's).
#[derive(Debug, Clone, Deserialize)]
pub struct ListPage {
    pub workers: Vec<Listed>,
    #[serde(rename = "continue", default)]
    pub continue_token: Option<String>,
}

/// Every page of one listing, each with the bytes it came in.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub pages: Vec<Fetched<ListPage>>,
}

impl Listing {
    pub fn entries(&self) -> impl Iterator<Item = &Listed> {
        self.pages.iter().flat_map(|p| p.value.workers.iter())
    }

    pub fn into_entries(self) -> Vec<Listed> {
        self.pages
            .into_iter()
            .flat_map(|p| p.value.workers)
            .collect()
    }

    /// The server's document as one `{"workers":[...]}` (pages joined, `continue`
    /// dropped), entries for which `keep` holds, in the server's order and key order,
    /// with only the lifecycle timestamps rewritten into the whole-second `Z` form.
    pub fn document(&self, keep: impl Fn(&Listed) -> bool) -> Result<Vec<u8>, serde_json::Error> {
        let mut all = Vec::new();
        for page in &self.pages {
            let mut doc: Doc = serde_json::from_slice(&page.body)?;
            let Some(Doc::Array(items)) = doc.take("workers") else {
                return Err(serde::de::Error::custom("`workers` is not an array"));
            };
            // Both views were read from the same bytes, so they pair up one to one.
            for (mut item, entry) in items.into_iter().zip(&page.value.workers) {
                if keep(entry) {
                    item.rewrite_timestamps();
                    all.push(item);
                }
            }
        }
        serde_json::to_vec(&Doc::Object(vec![("workers".into(), Doc::Array(all))]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> Fetched<ListPage> {
        Fetched {
            value: serde_json::from_str(body).unwrap(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn amp_entries_lack_details_and_ours_are_complete() {
        let amp = page(
            r#"{"workers":[{"node_id":"ünicode-wörker","heartbeat_at":"2026-12-01T21:03:17.204046+00:00"}]}"#,
        );
        let entry = &amp.value.workers[0];
        assert_eq!(entry.complete(), None);
        assert_eq!(
            crate::timestamps::format_timestamp(&entry.heartbeat_at),
            "2026-12-01T21:03:17Z"
        );
        assert_eq!(entry.heartbeat_at.timestamp_subsec_nanos(), 0);
        let ours = page(
            r#"{"workers":[{"node_id":"w","info":{"version":"v1","commit_sha":"unknown","commit_timestamp":null},"created_at":"2026-12-01T21:03:17Z","registered_at":"2026-12-01T21:03:17Z","heartbeat_at":"2026-12-01T21:03:18Z"}],"continue":"w"}"#,
        );
        let worker = ours.value.workers[0].complete().unwrap();
        assert_eq!(worker.info.version.as_deref(), Some("v1"));
        assert_eq!(worker.info.commit_sha.as_deref(), Some("unknown"));
        assert_eq!(worker.info.commit_timestamp, None);
        assert_eq!(ours.value.continue_token.as_deref(), Some("w"));
    }

    #[test]
    fn document_joins_pages_filters_and_rewrites_only_timestamps() {
        let listing = Listing {
            pages: vec![
                page(
                    r#"{"workers":[{"node_id":"b","heartbeat_at":"2026-12-01T21:03:17.204046+00:00"}],"continue":"b"}"#,
                ),
                page(
                    r#"{"workers":[{"node_id":"a","heartbeat_at":"2026-12-01T21:03:18.5+00:00","extra":{"heartbeat_at":"kept"}}]}"#,
                ),
            ],
        };
        assert_eq!(
            String::from_utf8(listing.document(|_| true).unwrap()).unwrap(),
            r#"{"workers":[{"node_id":"b","heartbeat_at":"2026-12-01T21:03:17Z"},{"node_id":"a","heartbeat_at":"2026-12-01T21:03:18Z","extra":{"heartbeat_at":"kept"}}]}"#
        );
        assert_eq!(
            String::from_utf8(listing.document(|e| e.node_id == "a").unwrap()).unwrap(),
            r#"{"workers":[{"node_id":"a","heartbeat_at":"2026-12-01T21:03:18Z","extra":{"heartbeat_at":"kept"}}]}"#
        );
    }

    #[test]
    fn neither_shape_is_refused() {
        for body in [
            r#"{"items":[]}"#,
            r#"{"workers":[{"name":"w"}]}"#,
            r#"{"workers":[{"node_id":"w","heartbeat_at":"yesterday"}]}"#,
        ] {
            assert!(serde_json::from_str::<ListPage>(body).is_err(), "{body}");
        }
    }
}
