//! `ampd admin-api`: a read-only HTTP API over the metadata DB.
//!
//! `GET /workers`, `GET /workers/{id}`, `/openapi.json`, `/healthz`, `/readyz`, `/metrics`.
//! Optional bearer-token auth guards the worker endpoints.

mod metrics;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::metadata_db::{self, DbError};
use crate::node_id::NodeId;

pub use metrics::ApiMetrics;
use wire::{ErrorBody, Worker, WorkerList};

#[derive(Debug, clap::Args)]
pub struct AdminApiArgs {
    /// Address to listen on.
    #[arg(long, env = "AMP_ADMIN_LISTEN", default_value = "127.0.0.1:1610")]
    pub listen: SocketAddr,
    /// Metadata DB URL (a read-only role is enough).
    #[arg(long, env = "AMP_DATABASE_URL", hide_env_values = true)]
    pub database_url: crate::metadata_db::DatabaseUrl,
    /// Require `Authorization: Bearer TOKEN` on /workers endpoints.
    #[arg(long, env = "AMP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Heartbeat age after which a worker counts as stale in `amp_admin_workers_stale`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,
    /// Bound of every metadata DB call (pool acquire included; also the server-side
    /// statement_timeout): past it the request answers 503 instead of hanging.
    #[arg(long, env = "AMP_DB_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminApiError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

pub struct AppState {
    pub pool: PgPool,
    pub auth_token: Option<String>,
    pub stale_after: Duration,
    pub metrics: ApiMetrics,
    /// Bound of every DB call a request makes (see [`metadata_db::within`]).
    pub db_timeout: Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Amp Admin API", description = "Read-only view of the Amp worker registry."),
    paths(list_workers, get_worker),
    components(schemas(Worker, wire::WorkerInfo, WorkerList, ErrorBody)),
    tags((name = "workers", description = "Registered workers, their build info and heartbeats"))
)]
struct ApiDoc;

/// The OpenAPI 3 document (also served at `/openapi.json`, checked in as docs/openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // Stable output for the checked-in copy: no crate version in the document.
    doc.info.version = "v1".to_owned();
    doc
}

/// An error answer: status plus the JSON body every client can parse.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error_code: code.to_owned(),
                error_message: message.into(),
            },
        }
    }

    fn db(err: DbError) -> Self {
        tracing::warn!(error = %err, "metadata DB query failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "METADATA_DB_UNAVAILABLE",
            format!("metadata DB unavailable: {err}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// List all workers, sorted by node id.
#[utoipa::path(
    get, path = "/workers", tag = "workers",
    responses(
        (status = 200, description = "All registered workers", body = WorkerList),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Metadata DB unavailable", body = ErrorBody),
    )
)]
async fn list_workers(State(state): State<Arc<AppState>>) -> Result<Json<WorkerList>, ApiError> {
    let rows = metadata_db::within(&state.pool, "list workers", state.db_timeout, |c| {
        Box::pin(metadata_db::list_workers(c))
    })
    .await
    .map_err(ApiError::db)?;
    Ok(Json(WorkerList {
        workers: rows.into_iter().map(Worker::from).collect(),
    }))
}

/// Path parameters of `GET /workers/{id}`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read through the raw path (to control the 400 body); declared for the document
struct WorkerPath {
    /// Node id.
    #[param(
        pattern = r"^[a-zA-Z][a-zA-Z0-9_\-\.]*$",
        max_length = 128,
        min_length = 1,
        example = "worker-01"
    )]
    id: String,
}

/// One worker by node id.
#[utoipa::path(
    get, path = "/workers/{id}", tag = "workers",
    params(WorkerPath),
    responses(
        (status = 200, description = "The worker", body = Worker),
        (status = 400, description = "Invalid node id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No worker with this node id", body = ErrorBody),
        (status = 503, description = "Metadata DB unavailable", body = ErrorBody),
    )
)]
async fn get_worker(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Worker>, ApiError> {
    let Path(raw) =
        id.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_NODE_ID", e.body_text()))?;
    let node_id = NodeId::parse(&raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_NODE_ID", e.to_string()))?;
    let id = node_id.clone();
    let row = metadata_db::within(&state.pool, "get worker", state.db_timeout, move |c| {
        Box::pin(async move { metadata_db::get_worker(c, &id).await })
    })
    .await
    .map_err(ApiError::db)?;
    match row {
        Some(row) => Ok(Json(Worker::from(row))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "WORKER_NOT_FOUND",
            format!("worker \"{node_id}\" not found"),
        )),
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let ping = metadata_db::within(&state.pool, "readiness ping", state.db_timeout, |c| {
        Box::pin(async move {
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(c)
                .await
                .map_err(|source| DbError::Query {
                    op: "readiness ping",
                    source,
                })
        })
    })
    .await;
    match ping {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metadata DB unreachable: {err}"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Worker gauges are judged by the database clock, in one query per scrape.
    let stale_secs = state.stale_after.as_secs_f64();
    let counts: Result<(i64, i64), _> =
        metadata_db::within(&state.pool, "worker gauges", state.db_timeout, move |c| {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE heartbeat_at < now() - make_interval(secs => $1)) FROM workers",
                )
                .bind(stale_secs)
                .fetch_one(c)
                .await
                .map_err(|source| DbError::Query { op: "worker gauges", source })
            })
        })
        .await;
    match counts {
        Ok((total, stale)) => {
            state.metrics.workers.set(total);
            state.metrics.workers_stale.set(stale);
        }
        Err(err) => tracing::warn!(error = %err, "cannot refresh worker gauges"),
    }
    state.metrics.metrics_response()
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.auth_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(expected.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "missing or invalid bearer token",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn record(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

pub fn router(state: Arc<AppState>) -> Router {
    let workers = Router::new()
        .route("/workers", get(list_workers))
        .route("/workers/{id}", get(get_worker))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(workers)
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// `ampd admin-api`: serve until shutdown. Starts even when the DB is down (`/readyz`
/// says so), so a DB outage never crash-loops the API.
pub async fn main(args: AdminApiArgs, shutdown: CancellationToken) -> Result<(), AdminApiError> {
    let pool = metadata_db::connect_pool_lazy_bounded(
        &args.database_url,
        "ampd-admin-api",
        8,
        args.db_timeout,
    )?;
    let state = Arc::new(AppState {
        pool,
        auth_token: args.auth_token.filter(|t| !t.is_empty()),
        stale_after: args.stale_after,
        metrics: ApiMetrics::new(),
        db_timeout: args.db_timeout,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AdminApiError::Listen {
            addr: args.listen,
            source,
        })?;
    tracing::info!(
        listen = %args.listen,
        database = %metadata_db::redact_url(&args.database_url),
        auth = state.auth_token.is_some(),
        "admin API serving"
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(AdminApiError::Serve)
}
