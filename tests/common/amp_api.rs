//! A stand-in for Amp's own Admin API wire format, written from the facts sheet
//! (shared/amp-upstream.md), not from Amp's code: `GET /workers` lists only `node_id`
//! and `heartbeat_at`, newest registration first, without paging; `GET /workers/{id}`
//! has the details, a missing info field as the string `"unknown"`; timestamps like
//! `2026-12-01T21:03:17.204046+00:00`; errors `{"error_code","error_message"}` with 400
//! `INVALID_WORKER_ID` and 404 `WORKER_NOT_FOUND`. It also counts detail requests in
//! flight, so tests can see that a client's concurrency is bounded.
//!
//! Jobs: `GET /jobs?status=active&limit=N&last_job_id=ID` answers
//! `{"jobs":[{id, created_at, updated_at, node_id, status, descriptor}], "next_cursor"}`,
//! the four non-terminal states only, newest (highest id) first, `limit` ≤ 1000, pages
//! cut smaller by [`JobsAnswer::Serve`]'s `page_size` so tests see several; or a fixed
//! error status (an Amp without `/jobs`, a token that may not read them). Requests with
//! another method than GET (Amp's job writes) are counted, for tests to assert none.
//!
//! Used by tests (`mod common`) and by benches/admin_api.rs (`#[path]`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A worker row as Amp's services leave it.
#[derive(Debug, Clone)]
pub struct AmpWorker {
    pub node_id: String,
    /// Only the keys the worker reported (`version`, `commit_sha`, ...).
    pub info: Vec<(&'static str, String)>,
    pub created_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    /// `None`: a live worker, whose heartbeat is the moment of the request.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

impl AmpWorker {
    /// A live worker on `version` (with a commit sha `sha-<version>`), registered at
    /// `created_at` and not restarted since.
    pub fn live(node_id: &str, version: &str, created_at: DateTime<Utc>) -> Self {
        Self {
            node_id: node_id.to_owned(),
            info: vec![
                ("version", version.to_owned()),
                ("commit_sha", format!("sha-{version}")),
                (
                    "commit_timestamp",
                    "2025-10-30T10:00:00.123456789Z".to_owned(),
                ),
                ("build_date", "2025-10-30".to_owned()),
            ],
            created_at,
            registered_at: created_at,
            heartbeat_at: None,
        }
    }
}

/// Amp's timestamp form: RFC 3339, microseconds, `+00:00`.
pub fn amp_timestamp(ts: &DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// A job as Amp's `GET /jobs` shows it.
#[derive(Debug, Clone)]
pub struct AmpJob {
    pub id: i64,
    pub node_id: String,
    /// `SCHEDULED`, `RUNNING`, `STOP_REQUESTED`, `STOPPING`, or a terminal one (not served).
    pub status: &'static str,
    pub updated_at: DateTime<Utc>,
}

/// What `GET /jobs` answers.
#[derive(Debug, Clone)]
pub enum JobsAnswer {
    /// These jobs, at most `page_size` per page (and at most the client's `limit`).
    Serve { jobs: Vec<AmpJob>, page_size: usize },
    /// This status, with Amp's error body (404 is an Amp without `/jobs`).
    Status(u16),
}

const ACTIVE: [&str; 4] = ["SCHEDULED", "RUNNING", "STOP_REQUESTED", "STOPPING"];

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    details: AtomicUsize,
    lists: AtomicUsize,
    job_pages: AtomicUsize,
    not_get: AtomicUsize,
}

struct Stand {
    /// In registration order (Amp's `id`), listed newest first.
    workers: Vec<AmpWorker>,
    /// Listed, but gone by the time their details are asked for.
    ghosts: Vec<String>,
    detail_delay: Duration,
    jobs: JobsAnswer,
    counters: Counters,
}

pub struct AmpApi {
    pub addr: SocketAddr,
    stand: Arc<Stand>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl AmpApi {
    /// Serves `workers` on a loopback port from its own thread and runtime (so blocking
    /// test code, e.g. waiting for an ampctl process, cannot stall it).
    /// No unfinished jobs.
    pub fn start(workers: Vec<AmpWorker>, ghosts: &[&str], detail_delay: Duration) -> Self {
        let jobs = JobsAnswer::Serve {
            jobs: Vec::new(),
            page_size: 1000,
        };
        Self::start_with_jobs(workers, ghosts, detail_delay, jobs)
    }

    /// [`AmpApi::start`], `GET /jobs` answering `jobs`.
    pub fn start_with_jobs(
        workers: Vec<AmpWorker>,
        ghosts: &[&str],
        detail_delay: Duration,
        jobs: JobsAnswer,
    ) -> Self {
        let stand = Arc::new(Stand {
            workers,
            ghosts: ghosts.iter().map(|g| (*g).to_owned()).collect(),
            detail_delay,
            jobs,
            counters: Counters::default(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/workers", get(list))
            .route("/workers/{id}", get(detail))
            .route("/jobs", get(jobs_page))
            .layer(axum::middleware::from_fn_with_state(
                stand.clone(),
                count_not_get,
            ))
            .with_state(stand.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Self {
            addr,
            stand,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The most `GET /workers/{id}` requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.stand.counters.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn detail_requests(&self) -> usize {
        self.stand.counters.details.load(Ordering::SeqCst)
    }

    pub fn list_requests(&self) -> usize {
        self.stand.counters.lists.load(Ordering::SeqCst)
    }

    /// `GET /jobs` pages served (or refused).
    pub fn job_pages(&self) -> usize {
        self.stand.counters.job_pages.load(Ordering::SeqCst)
    }

    /// Requests with another method than GET (Amp's writes: stop, delete).
    pub fn not_get_requests(&self) -> usize {
        self.stand.counters.not_get.load(Ordering::SeqCst)
    }

    pub fn reset_counters(&self) {
        let c = &self.stand.counters;
        c.max_in_flight.store(0, Ordering::SeqCst);
        c.details.store(0, Ordering::SeqCst);
        c.lists.store(0, Ordering::SeqCst);
        c.job_pages.store(0, Ordering::SeqCst);
    }
}

impl Drop for AmpApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Serialize)]
struct ListEntry {
    node_id: String,
    heartbeat_at: String,
}

#[derive(Serialize)]
struct ListBody {
    workers: Vec<ListEntry>,
}

#[derive(Serialize)]
struct InfoBody {
    version: String,
    commit_sha: String,
    commit_timestamp: String,
    build_date: String,
}

#[derive(Serialize)]
struct DetailBody {
    node_id: String,
    info: InfoBody,
    created_at: String,
    registered_at: String,
    heartbeat_at: String,
}

#[derive(Serialize)]
struct ErrorBody {
    error_code: &'static str,
    error_message: String,
}

fn heartbeat(w: &AmpWorker) -> String {
    amp_timestamp(&w.heartbeat_at.unwrap_or_else(Utc::now))
}

/// Query parameters (our client's `limit`) are ignored: Amp's list has no paging.
async fn list(State(stand): State<Arc<Stand>>) -> Json<ListBody> {
    stand.counters.lists.fetch_add(1, Ordering::SeqCst);
    let listed = stand.workers.iter().map(|w| ListEntry {
        node_id: w.node_id.clone(),
        heartbeat_at: heartbeat(w),
    });
    let ghosts = stand.ghosts.iter().map(|g| ListEntry {
        node_id: g.clone(),
        heartbeat_at: amp_timestamp(&Utc::now()),
    });
    let mut workers: Vec<ListEntry> = listed.chain(ghosts).collect();
    workers.reverse();
    Json(ListBody { workers })
}

/// Amp's node id rule: a Unicode letter, then Unicode letters, digits, `_`, `-`, `.`.
fn valid_amp_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(char::is_alphabetic)
        && chars.all(|c| c.is_alphanumeric() || "_-.".contains(c))
}

fn error(status: StatusCode, code: &'static str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            error_code: code,
            error_message: message,
        }),
    )
        .into_response()
}

async fn detail(State(stand): State<Arc<Stand>>, Path(id): Path<String>) -> Response {
    let c = &stand.counters;
    c.details.fetch_add(1, Ordering::SeqCst);
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !stand.detail_delay.is_zero() {
        tokio::time::sleep(stand.detail_delay).await;
    }
    let response = answer(&stand, &id);
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

fn answer(stand: &Stand, id: &str) -> Response {
    if !valid_amp_id(id) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_WORKER_ID",
            format!("invalid worker id: {id}"),
        );
    }
    let Some(w) = stand.workers.iter().find(|w| w.node_id == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "WORKER_NOT_FOUND",
            format!("worker '{id}' not found"),
        );
    };
    let field = |key: &str| {
        w.info
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.clone())
    };
    Json(DetailBody {
        node_id: w.node_id.clone(),
        info: InfoBody {
            version: field("version"),
            commit_sha: field("commit_sha"),
            commit_timestamp: field("commit_timestamp"),
            build_date: field("build_date"),
        },
        created_at: amp_timestamp(&w.created_at),
        registered_at: amp_timestamp(&w.registered_at),
        heartbeat_at: heartbeat(w),
    })
    .into_response()
}

async fn count_not_get(
    State(stand): State<Arc<Stand>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != axum::http::Method::GET {
        stand.counters.not_get.fetch_add(1, Ordering::SeqCst);
    }
    next.run(req).await
}

#[derive(serde::Deserialize)]
struct JobsQuery {
    status: Option<String>,
    limit: Option<String>,
    last_job_id: Option<String>,
}

#[derive(Serialize)]
struct JobEntry {
    id: i64,
    created_at: String,
    updated_at: String,
    node_id: String,
    status: &'static str,
    descriptor: serde_json::Value,
}

#[derive(Serialize)]
struct JobsBody {
    jobs: Vec<JobEntry>,
    next_cursor: Option<i64>,
}

async fn jobs_page(State(stand): State<Arc<Stand>>, Query(q): Query<JobsQuery>) -> Response {
    stand.counters.job_pages.fetch_add(1, Ordering::SeqCst);
    let (all, page_size) = match &stand.jobs {
        JobsAnswer::Status(code) => {
            let status = StatusCode::from_u16(*code).expect("status");
            return error(status, "JOBS_UNAVAILABLE", format!("jobs: {code}"));
        }
        JobsAnswer::Serve { jobs, page_size } => (jobs, *page_size),
    };
    if q.status.as_deref().is_some_and(|s| s != "active") {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "status: only active here".into(),
        );
    }
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "limit must be 1 to 1000".into(),
            );
        }
    };
    let after = match q.last_job_id.as_deref().map(str::parse::<i64>) {
        None => i64::MAX,
        Some(Ok(id)) => id,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "last_job_id".into(),
            );
        }
    };
    let mut active: Vec<&AmpJob> = all
        .iter()
        .filter(|j| ACTIVE.contains(&j.status) && j.id < after)
        .collect();
    active.sort_by_key(|j| std::cmp::Reverse(j.id));
    let take = limit.min(page_size);
    let more = active.len() > take;
    active.truncate(take);
    let next_cursor = more.then(|| active.last().map(|j| j.id)).flatten();
    let jobs = active
        .into_iter()
        .map(|j| JobEntry {
            id: j.id,
            created_at: amp_timestamp(&j.updated_at),
            updated_at: amp_timestamp(&j.updated_at),
            node_id: j.node_id.clone(),
            status: j.status,
            descriptor: serde_json::json!({"dataset": format!("ds-{}", j.id)}),
        })
        .collect();
    Json(JobsBody { jobs, next_cursor }).into_response()
}
