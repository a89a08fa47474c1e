//! A stand-in for Amp's own Admin API wire format, written from the facts sheet
//! (shared/amp-upstream.md), not from Amp's code: `GET /workers` lists only `node_id`
//! and `heartbeat_at`, newest registration first, without paging; `GET /workers/{id}`
//! has the details, a missing info field as the string `"unknown"`; timestamps like
//! `2026-12-01T21:03:17.204046+00:00`; errors `{"error_code","error_message"}` with 400
//! `INVALID_WORKER_ID` and 404 `WORKER_NOT_FOUND`. It also counts detail requests in
//! flight, so tests can see that a client's concurrency is bounded.
//!
//! Used by tests (`mod common`) and by benches/admin_api.rs (`#[path]`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
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

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    details: AtomicUsize,
    lists: AtomicUsize,
}

struct Stand {
    /// In registration order (Amp's `id`), listed newest first.
    workers: Vec<AmpWorker>,
    /// Listed, but gone by the time their details are asked for.
    ghosts: Vec<String>,
    detail_delay: Duration,
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
    pub fn start(workers: Vec<AmpWorker>, ghosts: &[&str], detail_delay: Duration) -> Self {
        let stand = Arc::new(Stand {
            workers,
            ghosts: ghosts.iter().map(|g| (*g).to_owned()).collect(),
            detail_delay,
            counters: Counters::default(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/workers", get(list))
            .route("/workers/{id}", get(detail))
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

    pub fn reset_counters(&self) {
        let c = &self.stand.counters;
        c.max_in_flight.store(0, Ordering::SeqCst);
        c.details.store(0, Ordering::SeqCst);
        c.lists.store(0, Ordering::SeqCst);
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
