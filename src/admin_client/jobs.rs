//! Amp's own `GET /jobs?status=active` (its Admin API's workers carry no jobs): every
//! unfinished job, newest first, `limit` ≤ 1000 per page, the next page after the
//! `next_cursor` passed back as `last_job_id`, no node filter. Only this one read
//! endpoint is ever called (Amp's job writes, `PUT /jobs/{id}/stop` and `DELETE`, never).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{AdminClient, ClientError};

/// Jobs per page: Amp's largest `limit`.
pub const JOBS_PAGE_SIZE: u32 = 1000;
/// Pages followed at most (100,000 unfinished jobs at [`JOBS_PAGE_SIZE`]); past them the
/// jobs are unknown, never counted from a part.
pub const MAX_JOB_PAGES: usize = 100;

/// One job of Amp's list, the fields we read (its `descriptor` and the rest are skipped).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AmpJob {
    pub id: i64,
    /// The current assignee.
    #[serde(default)]
    pub node_id: Option<String>,
    pub status: String,
    /// When the job last changed state (for a SCHEDULED one: when it was assigned).
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobsPage {
    pub jobs: Vec<AmpJob>,
    /// A number or a string, whichever the server sends; absent or null on the last page.
    #[serde(default)]
    pub next_cursor: Option<serde_json::Value>,
}

impl JobsPage {
    /// The `last_job_id` of the next page, if one follows.
    fn next(&self) -> Option<String> {
        match self.next_cursor.as_ref()? {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }
}

/// What Amp's Admin API told about its unfinished jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveJobs {
    /// Every unfinished job (all pages).
    Known(Vec<AmpJob>),
    /// Jobs unknown, and why in one sentence (404: an Amp without `/jobs`; 401/403: a
    /// token that may not read them; more than [`MAX_JOB_PAGES`] pages).
    Unknown(String),
}

impl AdminClient {
    /// Every job of `GET /jobs?status=active`, following `next_cursor` through at most
    /// [`MAX_JOB_PAGES`] pages. Any other failure than those of [`ActiveJobs::Unknown`] is
    /// an error, as for the worker list.
    pub async fn active_jobs(&self) -> Result<ActiveJobs, ClientError> {
        let mut jobs = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_JOB_PAGES {
            let page = match self.jobs_page(cursor.as_deref()).await {
                Ok(page) => page.value,
                Err(err) => return unknown_or_error(err),
            };
            let next = page.next();
            let empty = page.jobs.is_empty();
            jobs.extend(page.jobs);
            match next {
                None => return Ok(ActiveJobs::Known(jobs)),
                _ if empty => return Ok(ActiveJobs::Known(jobs)),
                // A server that hands back the cursor it was given would loop forever.
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(self.invalid_at("jobs", "the same next_cursor was returned twice"));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Ok(ActiveJobs::Unknown(format!(
            "GET /jobs?status=active has more than {MAX_JOB_PAGES} pages: not counted from a part"
        )))
    }

    /// One page of `GET /jobs?status=active&limit=N[&last_job_id=CURSOR]`.
    async fn jobs_page(
        &self,
        last_job_id: Option<&str>,
    ) -> Result<super::Fetched<JobsPage>, ClientError> {
        let mut url = self
            .base
            .join("jobs")
            .map_err(|e| ClientError::InvalidUrl {
                url: self.base.to_string(),
                reason: e.to_string(),
            })?;
        url.query_pairs_mut()
            .append_pair("status", "active")
            .append_pair("limit", &JOBS_PAGE_SIZE.to_string());
        if let Some(cursor) = last_job_id {
            url.query_pairs_mut().append_pair("last_job_id", cursor);
        }
        self.fetch(url).await
    }
}

/// 404 (no `/jobs` there), 401 and 403 (the token may not read jobs) make the jobs
/// unknown; anything else is the error it is.
fn unknown_or_error(err: ClientError) -> Result<ActiveJobs, ClientError> {
    match &err {
        ClientError::Unauthorized { .. } => Ok(ActiveJobs::Unknown(
            "GET /jobs answered 401 (the token may not read jobs)".into(),
        )),
        ClientError::Api { status: 403, .. } => Ok(ActiveJobs::Unknown(
            "GET /jobs answered 403 (the token may not read jobs)".into(),
        )),
        ClientError::Api { status: 404, .. } => Ok(ActiveJobs::Unknown(
            "GET /jobs answered 404 (this Admin API serves no jobs)".into(),
        )),
        ClientError::InvalidBody { detail, .. } if detail.starts_with("HTTP 404 ") => Ok(
            ActiveJobs::Unknown("GET /jobs answered 404 (this Admin API serves no jobs)".into()),
        ),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amps_page_reads_with_either_cursor_form() {
        let page: JobsPage = serde_json::from_str(
            r#"{"jobs":[{"id":7,"created_at":"2026-12-01T21:03:17.204046+00:00","updated_at":"2026-12-01T21:03:18.5+00:00","node_id":"w1","status":"SCHEDULED","descriptor":{"huge":[1,2,3]}}],"next_cursor":7}"#,
        )
        .unwrap();
        assert_eq!(page.jobs[0].id, 7);
        assert_eq!(page.jobs[0].node_id.as_deref(), Some("w1"));
        assert_eq!(page.next().as_deref(), Some("7"));
        let last: JobsPage = serde_json::from_str(r#"{"jobs":[],"next_cursor":null}"#).unwrap();
        assert_eq!(last.next(), None);
        let text: JobsPage = serde_json::from_str(r#"{"jobs":[],"next_cursor":"12"}"#).unwrap();
        assert_eq!(text.next().as_deref(), Some("12"));
        let absent: JobsPage = serde_json::from_str(r#"{"jobs":[]}"#).unwrap();
        assert_eq!(absent.next(), None);
    }
}
