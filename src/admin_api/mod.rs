//! `ampd admin-api`: a read-only HTTP API over the metadata DB.
//!
//! `GET /workers`, `GET /workers/{id}`, `/openapi.json`, `/healthz`, `/readyz`, `/metrics`.
//! Optional bearer-token auth guards the worker endpoints.

pub mod jobs;
mod metrics;
pub mod paging;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::metadata_db::{self, DbError};
use crate::node_id::AmpNodeId;

pub use metrics::ApiMetrics;
use wire::{ErrorBody, Worker, WorkerList};

#[derive(Debug, clap::Args)]
pub struct AdminApiArgs {
    /// Address to listen on.
    #[arg(long, env = "AMP_ADMIN_LISTEN", default_value = "127.0.0.1:1610")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub credentials: metadata_db::DbCredentialArgs,
    /// Require `Authorization: Bearer TOKEN` on /workers endpoints.
    #[arg(long, env = "AMP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// File holding the bearer token (instead of --auth-token; trailing newline
    /// ignored). Read again every second, so a rotated token is accepted without a restart.
    #[arg(long, env = "AMP_AUTH_TOKEN_FILE", conflicts_with = "auth_token")]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// Also require the token on /metrics and /openapi.json (the probes /healthz and
    /// /readyz stay open: kubelets cannot send tokens).
    #[arg(long, env = "AMP_AUTH_METRICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub auth_metrics: bool,
    /// Time a client has to send its request headers before it is dropped.
    #[arg(long, env = "AMP_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = crate::bounds::bounded::<1_000, 600_000>)]
    pub http_header_timeout: Duration,
    /// Time a request may take before it is answered 408.
    #[arg(long, env = "AMP_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = crate::bounds::bounded::<1_000, 600_000>)]
    pub http_request_timeout: Duration,
    /// Open connections served at once (more wait in the listen backlog).
    #[arg(long, env = "AMP_HTTP_MAX_CONNECTIONS", default_value_t = 4096, value_parser = crate::bounds::count::<1, 1_000_000>)]
    pub http_max_connections: usize,
    /// Heartbeat age after which a worker counts as stale in `amp_admin_workers_stale`.
    #[arg(long, env = "AMP_STALE_AFTER", default_value = "30s", value_parser = crate::bounds::bounded::<1_000, 2_592_000_000>)]
    pub stale_after: Duration,
    /// Bound of every metadata DB call (pool acquire included; also the server-side
    /// statement_timeout): past it the request answers 503 instead of hanging.
    #[arg(long, env = "AMP_DB_TIMEOUT", default_value = "3s", value_parser = crate::bounds::bounded::<100, 600_000>)]
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
    pub auth_token: Option<metadata_db::credentials::AuthToken>,
    /// /metrics and /openapi.json need the token too.
    pub auth_metrics: bool,
    pub stale_after: Duration,
    pub metrics: ApiMetrics,
    /// Bound of every DB call a request makes (see [`metadata_db::within`]).
    pub db_timeout: Duration,
    /// The last `/readyz` verdict: its log line is written once per change.
    pub readiness: VerdictLog,
    /// The database role we connect as: a missing grant names it (`grant SELECT on
    /// workers to ROLE`).
    pub role: String,
}

/// Remembers the last verdict of a repeated check (a probe every few seconds) so its
/// log says each change once.
#[derive(Default)]
pub struct VerdictLog(std::sync::Mutex<Option<Result<(), &'static str>>>);

impl VerdictLog {
    /// Records `verdict`; true when it differs from the previous one.
    pub fn changed(&self, verdict: Result<(), &'static str>) -> bool {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        last.replace(verdict) != Some(verdict)
    }
}

/// Declares the bearer scheme the worker endpoints use (`--auth-token`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Amp Admin API", description = "Read-only view of the Amp worker registry."),
    modifiers(&BearerAuth),
    paths(list_workers, get_worker, healthz, readyz, metrics),
    components(schemas(
        Worker,
        wire::WorkerInfo,
        WorkerList,
        ErrorBody,
        jobs::WorkerDetail,
        jobs::WorkerJobs,
        jobs::OldestScheduled
    )),
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

    /// A failed DB call: a missing grant says which (`permission denied: grant SELECT on
    /// workers to ROLE`); anything else is the short cause.
    fn db(err: DbError, role: &str) -> Self {
        tracing::warn!(op = err.op(), error = %err, "metadata DB query failed");
        if let Some(grant) = err.missing_grant(role) {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "METADATA_DB_PERMISSION_DENIED",
                format!("metadata DB: {grant}"),
            );
        }
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "METADATA_DB_UNAVAILABLE",
            format!("metadata DB unavailable: {}", err.short_cause()),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Query parameters of `GET /workers`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size (1 to 10000). Without it, every worker in one streamed answer.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// The `continue` value of the previous page (a node id).
    // No `pattern`: Amp's rule needs Unicode classes (`\p{L}`) that many OpenAPI tools'
    // regex engines lack; the description and the 400 answer carry the rule.
    #[serde(rename = "continue")]
    // Only NUL is excluded: PostgreSQL text cannot hold it, so no node id has it.
    #[param(rename = "continue", min_length = 1, pattern = r"^[^\x00]+$")]
    continue_token: Option<String>,
}

/// List workers, sorted by node id: all of them, or a page with `?limit=N`.
#[utoipa::path(
    get, path = "/workers", tag = "workers",
    params(ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Registered workers (a page when `limit` is given; `continue` names the next), each with its jobs where the metadata DB has Amp's job tables", body = WorkerList),
        (status = 400, description = "Invalid `limit` or `continue`", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Metadata DB unavailable", body = ErrorBody),
    )
)]
async fn list_workers(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", e.body_text()))?;
    let invalid = |e: paging::PagingError| {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PAGE", e.to_string())
    };
    let after = query
        .continue_token
        .as_deref()
        .map(paging::decode_token)
        .transpose()
        .map_err(invalid)?;
    let Some(limit) = query
        .limit
        .as_deref()
        .map(paging::parse_limit)
        .transpose()
        .map_err(invalid)?
    else {
        return stream_all(state.pool.clone(), after, state.db_timeout, &state.role).await;
    };
    // One row more than asked says whether another page follows.
    let page = metadata_db::within(
        &state.pool,
        "list workers page",
        state.db_timeout,
        move |c| {
            Box::pin(
                async move { metadata_db::list_workers_page(c, after.as_deref(), limit + 1).await },
            )
        },
    )
    .await;
    let mut rows = match page {
        Ok(rows) => rows,
        Err(err) => return Err(ApiError::db(err, &state.role)),
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let continue_token = more
        .then(|| rows.last().map(|r| paging::encode_token(&r.node_id)))
        .flatten();
    let node_ids = rows.iter().map(|r| r.node_id.clone()).collect();
    let jobs = jobs::read_list(&state.pool, state.db_timeout, Some(node_ids)).await;
    Ok(Json(WorkerList {
        workers: rows.into_iter().map(|row| with_jobs(row, &jobs)).collect(),
        continue_token,
    })
    .into_response())
}

/// A list entry: the worker and its jobs (absent where unknown).
fn with_jobs(row: metadata_db::WorkerRow, jobs: &jobs::ListJobs) -> jobs::WorkerDetail {
    jobs::WorkerDetail {
        jobs: jobs.of(&row.node_id),
        worker: Worker::from(row),
    }
}

/// Rows serialised per body chunk: big enough to keep chunks efficient, small enough to
/// keep memory flat.
const ROWS_PER_CHUNK: usize = 256;

/// Every worker (after `after`, if a client combined `continue` without `limit`) as one
/// JSON document built row by row from a single statement. The first row is read before
/// answering, so an unreachable DB is still a 503 with a JSON body; a failure after that
/// ends the body early (the client sees truncated JSON, never a wrong list). The jobs of
/// the whole fleet are read once, after the first row (one bounded statement; the
/// operator's read), and joined in by node id.
async fn stream_all(
    pool: PgPool,
    after: Option<String>,
    db_timeout: Duration,
    role: &str,
) -> Result<Response, ApiError> {
    use futures::StreamExt;
    let mut rows = Box::pin(metadata_db::stream_workers(pool.clone(), after));
    let first = match tokio::time::timeout(db_timeout, rows.next()).await {
        Ok(first) => first.transpose(),
        // No first row in time: a refused connection (the pool hides it) or a slow DB.
        Err(_) => Err(metadata_db::why_no_connection(&pool, "stream workers", db_timeout).await),
    };
    let first = match first {
        Ok(first) => first,
        Err(err) => return Err(ApiError::db(err, role)),
    };
    let jobs = match first {
        Some(_) => jobs::read_list(&pool, db_timeout, None).await,
        None => jobs::read_list(&pool, db_timeout, Some(Vec::new())).await,
    };
    let body = async_stream::stream! {
        let mut chunk = String::from("{\"workers\":[");
        let mut n = 0usize;
        let mut next = first;
        while let Some(row) = next {
            if n > 0 {
                chunk.push(',');
            }
            match serde_json::to_string(&with_jobs(row, &jobs)) {
                Ok(json) => chunk.push_str(&json),
                Err(e) => {
                    yield Err(std::io::Error::other(e));
                    return;
                }
            }
            n += 1;
            if n.is_multiple_of(ROWS_PER_CHUNK) {
                yield Ok::<Bytes, std::io::Error>(Bytes::from(std::mem::take(&mut chunk)));
            }
            next = match rows.next().await {
                None => None,
                Some(Ok(row)) => Some(row),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, rows = n, "worker list ended early");
                    yield Err(std::io::Error::other(e));
                    return;
                }
            };
        }
        chunk.push_str("]}");
        yield Ok(Bytes::from(chunk));
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Path parameters of `GET /workers/{id}`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read through the raw path (to control the 400 body); declared for the document
struct WorkerPath {
    /// Node id, as Amp accepts it: a letter (any script) first, then letters, digits,
    /// '_', '-' and '.'; no length limit. Ids our own workers write are ASCII.
    #[param(min_length = 1, example = "worker-01")]
    id: String,
}

/// One worker by node id.
#[utoipa::path(
    get, path = "/workers/{id}", tag = "workers",
    params(WorkerPath),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The worker, with its jobs where the metadata DB has Amp's job tables", body = jobs::WorkerDetail),
        (status = 400, description = "Invalid node id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No worker with this node id", body = ErrorBody),
        (status = 503, description = "Metadata DB unavailable", body = ErrorBody),
    )
)]
async fn get_worker(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<jobs::WorkerDetail>, ApiError> {
    let Path(raw) =
        id.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_NODE_ID", e.body_text()))?;
    // Whatever Amp accepts (Unicode letters, any length): the row may be Amp's.
    let node_id = AmpNodeId::parse(&raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_NODE_ID", e.to_string()))?;
    let id = node_id.clone();
    let row = metadata_db::within(&state.pool, "get worker", state.db_timeout, move |c| {
        Box::pin(async move { metadata_db::get_worker(c, id.as_str()).await })
    })
    .await;
    match row {
        Err(err) => Err(ApiError::db(err, &state.role)),
        Ok(Some(row)) => Ok(Json(jobs::WorkerDetail {
            jobs: jobs::read(&state.pool, state.db_timeout, node_id.as_str()).await,
            worker: Worker::from(row),
        })),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "WORKER_NOT_FOUND",
            format!("worker \"{node_id}\" not found"),
        )),
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the workers can be read, as `/workers` reads them (a DB that answers but
/// whose `workers` this role cannot read, or that has none, is not ready), like the
/// operator's. A 503 says why in a fixed summary (connection refused, permission denied,
/// no workers table, ...), never the server's own text, which an unauthenticated client
/// has no business reading.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "The workers can be read", body = String, content_type = "text/plain"),
        (status = 503, description = "They cannot: `metadata DB unavailable: <cause>`", body = String, content_type = "text/plain"),
    ))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let ping = metadata_db::within(&state.pool, "read workers", state.db_timeout, |c| {
        Box::pin(metadata_db::can_read_workers(c))
    })
    .await;
    let verdict = ping
        .as_ref()
        .map(drop)
        .map_err(|err| err.summary().unwrap_or("unknown cause"));
    if state.readiness.changed(verdict) {
        match &ping {
            Ok(_) => tracing::info!("readiness: metadata DB answers"),
            Err(err) => tracing::warn!(error = %err, "readiness: metadata DB unavailable"),
        }
    }
    match verdict {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(cause) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metadata DB unavailable: {cause}"),
        )
            .into_response(),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "probes",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Missing or wrong bearer token (with --auth-metrics)", body = ErrorBody),
    ))]
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

/// The token of an `Authorization: Bearer <token>` header; the scheme is
/// case-insensitive (RFC 7235).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Constant-time comparison: how much of a guess matched must not show in the timing.
fn token_matches(presented: Option<&str>, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.auth_token
        && !token_matches(bearer_token(&headers), &expected.current())
    {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or invalid bearer token",
        )
        .into_response();
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

/// Any path no route matches: counted under the one route label `unmatched` (route
/// layers see only matched routes), so junk paths cannot grow the metric series.
async fn not_found(State(state): State<Arc<AppState>>, method: axum::http::Method) -> ApiError {
    state
        .metrics
        .observe(method.as_str(), "unmatched", 404, Duration::ZERO);
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

pub fn router(state: Arc<AppState>) -> Router {
    let mut protected = Router::new()
        .route("/workers", get(list_workers))
        .route("/workers/{id}", get(get_worker));
    let mut open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let documents = Router::new()
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route("/metrics", get(metrics));
    if state.auth_metrics {
        protected = protected.merge(documents);
    } else {
        open = open.merge(documents);
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(protected)
        .merge(open)
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// `ampd admin-api`: serve until shutdown. Starts even when the DB is down (`/readyz`
/// says so), so a DB outage never crash-loops the API.
pub async fn main(args: AdminApiArgs, shutdown: CancellationToken) -> Result<(), AdminApiError> {
    let credentials = metadata_db::Credentials::from_args(&args.credentials);
    let pool =
        metadata_db::credentials::reader_pool(&credentials, "ampd-admin-api", 8, args.db_timeout)?;
    let auth_token = metadata_db::credentials::AuthToken::from_flags(
        args.auth_token,
        args.auth_token_file.as_deref(),
    )
    .map_err(DbError::from)?;
    let state = Arc::new(AppState {
        role: pool.connect_options().get_username().to_owned(),
        pool,
        auth_token,
        auth_metrics: args.auth_metrics,
        stale_after: args.stale_after,
        metrics: ApiMetrics::new(),
        db_timeout: args.db_timeout,
        readiness: VerdictLog::default(),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AdminApiError::Listen {
            addr: args.listen,
            source,
        })?;
    tracing::info!(
        listen = %args.listen,
        database = %credentials.describe(),
        auth = state.auth_token.is_some(),
        "admin API serving"
    );
    let limits = crate::http_server::Limits {
        header_read_timeout: args.http_header_timeout,
        request_timeout: args.http_request_timeout,
        max_connections: args.http_max_connections.max(1),
        ..crate::http_server::Limits::default()
    };
    crate::http_server::serve(listener, router(state), limits, shutdown)
        .await
        .map_err(AdminApiError::Serve)
}

#[cfg(test)]
mod tests {
    use super::VerdictLog;

    #[test]
    fn a_verdict_is_logged_once_per_change() {
        let log = VerdictLog::default();
        assert!(log.changed(Err("connection refused")));
        assert!(!log.changed(Err("connection refused")));
        assert!(log.changed(Err("authentication failed")));
        assert!(log.changed(Ok(())));
        assert!(!log.changed(Ok(())));
    }
}
