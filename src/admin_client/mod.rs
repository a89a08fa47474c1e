//! Typed client for the Admin API (used by ampctl and the tests).
//!
//! Every error names the URL it was talking to, and tells apart "nobody answered",
//! "too slow", "the API said no" and "that was not the Admin API".
//!
//! It speaks both wire formats: ours, and Amp's own Admin API (a list of node ids and
//! heartbeats only, details per worker, fractional `+00:00` timestamps); see
//! [`listing`].

mod doc;
mod jobs;
mod listing;

pub use doc::{Doc, INFO_TIMESTAMP_FIELDS, TIMESTAMP_FIELDS};
pub use jobs::{ActiveJobs, AmpJob, JOBS_PAGE_SIZE, JobsPage, MAX_JOB_PAGES};
pub use listing::{ListPage, Listed, Listing, whole_second_worker};

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use crate::admin_api::wire::{ErrorBody, Worker};

/// Answers larger than this are refused (10k workers are ~3 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Workers per page when listing (a page of 1,000 is about 300 KiB of JSON).
pub const PAGE_SIZE: u32 = 1000;
/// Pages followed before giving up (10 million workers at [`PAGE_SIZE`]).
const MAX_PAGES: usize = 10_000;
/// `GET /workers/{id}` requests in flight at once when a list lacks details (Amp's):
/// enough to hide the round trips, few enough not to swamp the server or the DB behind it.
pub const DETAIL_CONCURRENCY: usize = 16;
/// The error code of a worker that is not (or no longer) registered.
pub const WORKER_NOT_FOUND: &str = "WORKER_NOT_FOUND";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid Admin API URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach the Admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the Admin API at {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error(
        "{message} (401 from {url}): pass the Admin API's token with --auth-token-file, --auth-token or AMP_AUTH_TOKEN"
    )]
    Unauthorized { url: String, message: String },
    #[error("{message} ({status} {code} from {url})")]
    Api {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url} (is this the Admin API?): {detail}")]
    InvalidBody { url: String, detail: String },
    #[error("answer from {url} exceeds {limit} bytes")]
    TooLarge { url: String, limit: usize },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// A value together with the exact bytes the API sent (ampctl `--json` prints those).
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    pub body: Vec<u8>,
}

pub struct AdminClient {
    base: Url,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let mut base = parse_base(base_url).map_err(invalid)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        // reqwest is built without a default TLS provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            timeout,
            http,
        })
    }

    /// Every worker with its details, in the server's order (ours: by node id; Amp's: by
    /// registration, newest first). See [`AdminClient::list`] and [`AdminClient::complete`].
    pub async fn list_workers(&self) -> Result<Vec<Worker>, ClientError> {
        let listing = self.list().await?;
        self.complete(listing.into_entries()).await
    }

    /// Every list entry, following `continue` through pages of [`PAGE_SIZE`]: each
    /// answer stays small however large the fleet, and an Admin API that ignores `limit`
    /// (Amp's, older ones of ours) simply answers everything in the first page.
    pub async fn list(&self) -> Result<Listing, ClientError> {
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.list_workers_page(PAGE_SIZE, token.as_deref()).await?;
            let next = page.value.continue_token.clone();
            listing.pages.push(page);
            match next {
                None => return Ok(listing),
                // A server that hands back the token it was given would loop forever.
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(self.invalid_list("the same continue token was returned twice"));
                }
                Some(next) => token = Some(next),
            }
        }
        Err(self.invalid_list(&format!("more than {MAX_PAGES} pages of workers")))
    }

    /// Whole workers for list entries, in list order: entries that carried everything
    /// (our Admin API) as they are; for the others (Amp's list), `GET /workers/{id}`
    /// with at most [`DETAIL_CONCURRENCY`] requests in flight. A worker gone between the
    /// list and its details (`WORKER_NOT_FOUND`) is left out, as a later list would.
    pub async fn complete(&self, entries: Vec<Listed>) -> Result<Vec<Worker>, ClientError> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(entries)
            .map(|entry| async move {
                if let Some(worker) = entry.complete() {
                    return Ok(Some(worker));
                }
                match self.get_worker(&entry.node_id).await {
                    Ok(fetched) => Ok(Some(whole_second_worker(fetched.value))),
                    Err(ClientError::Api { code, .. }) if code == WORKER_NOT_FOUND => Ok(None),
                    Err(err) => Err(err),
                }
            })
            .buffered(DETAIL_CONCURRENCY)
            .try_filter_map(|worker| async move { Ok(worker) })
            .try_collect()
            .await
    }

    /// "That was not the Admin API" about `GET /workers` (or a worker object of it).
    pub fn invalid_list(&self, detail: &str) -> ClientError {
        self.invalid_at("workers", detail)
    }

    /// "That was not the Admin API" about the endpoint at `path`.
    fn invalid_at(&self, path: &str, detail: &str) -> ClientError {
        ClientError::InvalidBody {
            url: self
                .base
                .join(path)
                .map(|u| u.to_string())
                .unwrap_or_default(),
            detail: detail.to_owned(),
        }
    }

    /// One page of `GET /workers?limit=N[&continue=TOKEN]`.
    pub async fn list_workers_page(
        &self,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<Fetched<ListPage>, ClientError> {
        let mut url = self
            .base
            .join("workers")
            .map_err(|e| ClientError::InvalidUrl {
                url: self.base.to_string(),
                reason: e.to_string(),
            })?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(token) = continue_token {
            url.query_pairs_mut().append_pair("continue", token);
        }
        self.fetch(url).await
    }

    /// `id` is percent-encoded as one path segment.
    pub async fn get_worker(&self, id: &str) -> Result<Fetched<Worker>, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| ClientError::InvalidUrl {
                url: self.base.to_string(),
                reason: "cannot be a base URL".into(),
            })?
            .pop_if_empty()
            .extend(["workers", id]);
        self.fetch(url).await
    }

    async fn fetch<T: DeserializeOwned>(&self, url: Url) -> Result<Fetched<T>, ClientError> {
        // Errors name the endpoint, not the page parameters (a continue token is noise).
        let shown = {
            let mut bare = url.clone();
            bare.set_query(None);
            bare.to_string()
        };
        let mut request = self.http.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&shown, e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&shown, e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ClientError::TooLarge {
                    url: shown,
                    limit: MAX_BODY_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(api_error(&shown, status, &body));
        }
        match serde_json::from_slice::<T>(&body) {
            Ok(value) => Ok(Fetched { value, body }),
            Err(err) => Err(ClientError::InvalidBody {
                url: shown,
                detail: format!("{err}; body starts {:?}", preview(&body)),
            }),
        }
    }

    fn transport_error(&self, url: &str, err: reqwest::Error) -> ClientError {
        if err.is_timeout() {
            return ClientError::Timeout {
                url: url.to_owned(),
                after: self.timeout,
            };
        }
        // The innermost cause is the informative part ("Connection refused (os error 111)").
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        ClientError::Unreachable {
            url: url.to_owned(),
            reason,
        }
    }
}

/// `--admin-url` as the API's root: a scheme is required (a bare `host:port` parses as
/// a URL with scheme `host`), and a path naming an endpoint is a mistake, not a prefix.
fn parse_base(raw: &str) -> Result<Url, String> {
    if !raw.contains("://") {
        return Err(format!("no scheme: write it as http://{raw} (or https://)"));
    }
    let base = Url::parse(raw).map_err(|e| e.to_string())?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err("scheme must be http or https".into());
    }
    let segments: Vec<&str> = base.path().split('/').filter(|s| !s.is_empty()).collect();
    if let Some(at) = segments.iter().position(|s| *s == "workers") {
        let mut root = base.clone();
        root.set_path(&segments[..at].join("/"));
        root.set_query(None);
        return Err(format!(
            "this is an endpoint, not the Admin API's root: use {root}"
        ));
    }
    Ok(base)
}

fn api_error(url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    if status == StatusCode::UNAUTHORIZED {
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|e| e.error_message)
            .unwrap_or_else(|_| "unauthorized".to_owned());
        return ClientError::Unauthorized {
            url: url.to_owned(),
            message,
        };
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(err) => ClientError::Api {
            url: url.to_owned(),
            status: status.as_u16(),
            code: err.error_code,
            message: err.error_message,
        },
        Err(_) => ClientError::InvalidBody {
            url: url.to_owned(),
            detail: format!("HTTP {status} with body {:?}", preview(body)),
        },
    }
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod base_url_tests {
    use super::parse_base;

    #[test]
    fn admin_urls_say_what_is_wrong() {
        assert_eq!(
            parse_base("127.0.0.1:21610").unwrap_err(),
            "no scheme: write it as http://127.0.0.1:21610 (or https://)"
        );
        assert_eq!(
            parse_base("http://127.0.0.1:21610/workers").unwrap_err(),
            "this is an endpoint, not the Admin API's root: use http://127.0.0.1:21610/"
        );
        assert_eq!(
            parse_base("https://amp.example/admin/workers/w1").unwrap_err(),
            "this is an endpoint, not the Admin API's root: use https://amp.example/admin"
        );
        assert_eq!(
            parse_base("ftp://x").unwrap_err(),
            "scheme must be http or https"
        );
        // A prefix (behind an ingress) is a root.
        assert!(parse_base("https://amp.example/admin").is_ok());
        assert!(parse_base("http://localhost:1610").is_ok());
    }
}
