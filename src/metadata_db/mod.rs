//! The metadata DB: the worker registry in PostgreSQL.
//!
//! Every query binds its parameters; every timestamp is the database's `now()`.

#[macro_use]
mod lock_probe;
mod connect_error;
pub mod credentials;
mod db_time;
mod jobs;
mod migrations;
mod redact;
mod rows;
pub mod schema;
mod snapshot;
mod tls;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, Postgres};

use crate::build_info::BuildInfo;
use crate::node_id::NodeId;

pub use credentials::{Credentials, DbCredentialArgs};
pub use jobs::{
    JobCounts, JobsRead, JobsSnapshot, NodeJobs, ScheduledJob, jobs_read_sql, jobs_within,
    node_jobs_within, nodes_jobs_within,
};
pub use migrations::{MIGRATOR, MigrateOutcome, migrate};
pub use redact::{DatabaseUrl, redact_url, scrub_text};
pub use rows::{LockState, MAX_INFO_FIELD_BYTES, Placement, WorkerInfo, WorkerRow};
pub use schema::{Flavour, ForeignSchema, JobSchema, JobTables, SchemaReport};
pub use snapshot::{
    InfoCache, OPERATOR_SNAPSHOT_SQL, OperatorSnapshot, SnapshotRow, operator_snapshot_within,
};
pub use tls::TlsConfigError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL {url}: {source}")]
    InvalidUrl { url: String, source: sqlx::Error },
    #[error("invalid TLS settings for the metadata DB: {0}")]
    Tls(#[from] TlsConfigError),
    #[error(
        "cannot connect to the metadata DB at {url}: {}",
        connect_error::describe(source)
    )]
    Connect { url: String, source: sqlx::Error },
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `op` names the call for logs (a field of their own), not for people.
    #[error("metadata DB: {}", connect_error::describe(source))]
    Query {
        op: &'static str,
        source: sqlx::Error,
    },
    #[error("the metadata DB did not answer within {}", humantime::format_duration(*after))]
    Timeout { op: &'static str, after: Duration },
    #[error(
        "found {} that cannot be served: {} (the Admin API and the operator read node_id, info, created_at, registered_at and heartbeat_at; Amp v0.0.23 and later have them)",
        .0.describe(),
        .0.unservable.join(", ")
    )]
    UnservableSchema(ForeignSchema),
    #[error(transparent)]
    Credentials(#[from] crate::secret_file::SecretFileError),
}

impl DbError {
    /// Which call failed, for a log field (`None` when not a single call).
    pub fn op(&self) -> Option<&'static str> {
        match self {
            DbError::Query { op, .. } | DbError::Timeout { op, .. } => Some(op),
            _ => None,
        }
    }

    /// The cause without our "metadata DB" prefix, for messages that already say it.
    pub fn cause(&self) -> String {
        match self {
            DbError::Query { source, .. } => connect_error::describe(source),
            DbError::Timeout { after, .. } => {
                format!("no answer within {}", humantime::format_duration(*after))
            }
            other => other.to_string(),
        }
    }

    /// The cause in a few words for answers to clients (`connection refused`, `no answer
    /// within 3s`, `no workers table: run ampd migrate`); the full text is for logs.
    pub fn short_cause(&self) -> String {
        match (self, self.summary()) {
            (DbError::Timeout { .. }, _) | (_, None) => self.cause(),
            (_, Some(summary)) => summary.to_owned(),
        }
    }

    fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |source| DbError::Query { op, source }
    }
}

/// Server-side TCP keepalives for our sessions: if a worker's host vanishes, PostgreSQL
/// notices within ~25 s and drops the session, releasing its advisory lock so the
/// replacement pod can take the node id.
const SESSION_KEEPALIVES: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
];

/// Parses a database URL into connect options with our session settings applied.
pub fn connect_options(url: &str, application_name: &str) -> Result<PgConnectOptions, DbError> {
    let invalid = |source: sqlx::Error| DbError::InvalidUrl {
        url: redact_url(url),
        source: redact::scrub_error(source, url),
    };
    if let Some(why) = not_a_postgres_url(url) {
        return Err(invalid(sqlx::Error::Configuration(why.into())));
    }
    let url = &without_unknown_params(url);
    let options = tls::apply(PgConnectOptions::from_str(url).map_err(invalid)?, url)?;
    Ok(options
        .application_name(application_name)
        .options(SESSION_KEEPALIVES)
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// Why `url` is not a PostgreSQL URL, in words that say what to write instead (sqlx
/// would say "relative URL without a base", or try a `mysql://` URL and report the
/// refused connection).
fn not_a_postgres_url(url: &str) -> Option<String> {
    const SHAPE: &str = "postgres://user:password@host:port/dbname";
    let Some((scheme, _)) = url.split_once("://") else {
        return Some(if url.contains('=') {
            format!("key=value connection strings are not supported; use {SHAPE}")
        } else {
            format!("not a URL; use {SHAPE}")
        });
    };
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => None,
        // Echo only what cannot be a secret (a scheme's own characters, short).
        other
            if other.len() <= 16
                && other
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Some(format!(
                "unsupported scheme {other}://: the metadata DB is PostgreSQL; use {SHAPE}"
            ))
        }
        _ => Some(format!("not a PostgreSQL URL; use {SHAPE}")),
    }
}

/// Query parameters sqlx understands (sqlx-postgres 0.9 `parse_from_url`).
const KNOWN_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Drops query parameters sqlx does not know: it logs each one WITH its value at warn
/// level, and a libpq-only key such as `sslpassword` carries a secret. We log the key only.
fn without_unknown_params(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_owned();
    };
    let (kept, dropped): (Vec<_>, Vec<_>) = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| KNOWN_PARAMS.contains(&k.as_str()) || k.starts_with("options["));
    if dropped.is_empty() {
        return raw.to_owned();
    }
    for (key, _) in &dropped {
        tracing::warn!(%key, "ignoring unrecognized database URL parameter");
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url.to_string()
}

/// A pool for readers (Admin API, operator, migrate).
pub async fn connect_pool(
    url: &str,
    application_name: &str,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    pool_with(
        connect_options(url, application_name)?,
        url,
        max_connections,
    )
    .await
}

async fn pool_with(
    options: PgConnectOptions,
    url: &str,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            url: redact_url(url),
            source: redact::scrub_error(source, url),
        })
}

/// A pool for one-shot commands (`ampd migrate`): waits up to `wait` while connections
/// fail in ways that heal (a server still starting refuses them), stops at once on what
/// waiting cannot fix, and reports the last real cause, never "pool timed out".
pub async fn connect_pool_waiting(
    url: &str,
    application_name: &str,
    max_connections: u32,
    wait: Duration,
) -> Result<PgPool, DbError> {
    let options = connect_options(url, application_name)?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(100);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = bounded(
            "connect",
            left.max(Duration::from_secs(1)),
            connect_one(&options, url),
        )
        .await;
        match attempt {
            Ok(conn) => {
                let _ = conn.close().await;
                // The options parsed above: parsing again would log each ignored URL
                // parameter twice.
                return pool_with(options, url, max_connections).await;
            }
            Err(err) if err.is_permanent() || left <= pause => return Err(err),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// A pool that connects on first use, so a process can start while the DB is down.
pub fn connect_pool_lazy(
    url: &str,
    application_name: &str,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    let options = connect_options(url, application_name)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options))
}

/// Default bound of one metadata DB call (pool acquire included) in the Admin API, the
/// operator and the worker: long enough for any healthy query, short enough that a
/// blackholed connection (no FIN, no RST) turns into an answer within seconds.
pub const DEFAULT_DB_TIMEOUT: Duration = Duration::from_secs(3);

/// A lazy, read-only reader pool (Admin API, operator) whose every call is bounded: `statement_timeout` on the server
/// (a slow query is cancelled there, not left running) and `acquire_timeout`. A dead
/// network path is bounded by [`within`] on the client side, which the server cannot do.
pub fn connect_pool_lazy_bounded(
    url: &str,
    application_name: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, DbError> {
    let options = reader_options(url, application_name, timeout)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeout)
        .connect_lazy_with(options))
}

/// The connect options of a reader pool (see [`connect_pool_lazy_bounded`]).
pub fn reader_options(
    url: &str,
    application_name: &str,
    timeout: Duration,
) -> Result<PgConnectOptions, DbError> {
    let statement_timeout = format!("{}ms", timeout.as_millis().max(1));
    Ok(connect_options(url, application_name)?.options([
        ("statement_timeout", statement_timeout.as_str()),
        // Readers never write: on a DB Amp owns, the server itself guarantees it, even
        // when the URL's role could (docs/amp.md still asks for a read-only role).
        ("default_transaction_read_only", "on"),
    ]))
}

/// Runs `f` on a pooled connection, all within `timeout` (acquiring included).
///
/// On timeout the connection is mid-statement, maybe on a path that silently drops
/// packets: it is detached from the pool and dropped, never handed to the next caller.
pub async fn within<T, F>(
    pool: &PgPool,
    op: &'static str,
    timeout: Duration,
    f: F,
) -> Result<T, DbError>
where
    F: for<'c> FnOnce(&'c mut PgConnection) -> futures::future::BoxFuture<'c, Result<T, DbError>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut conn = match tokio::time::timeout_at(deadline, pool.acquire()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
            return Err(why_no_connection(pool, op, timeout).await);
        }
        Ok(Err(source)) => return Err(DbError::Query { op, source }),
    };
    match tokio::time::timeout_at(deadline, f(&mut conn)).await {
        Ok(result) => result,
        Err(_) => {
            drop(conn.detach());
            Err(DbError::Timeout { op, after: timeout })
        }
    }
}

/// The pool retries refused connections until its deadline and then reports only
/// "pool timed out": one direct attempt (bounded) names the real cause. When that
/// attempt connects, the pool was busy or slow, and the timeout is the answer.
pub async fn why_no_connection(pool: &PgPool, op: &'static str, timeout: Duration) -> DbError {
    // Small against the timeout: a path that drops packets makes the probe time out
    // too, and the answer must still come about when the timeout promises.
    const PROBE_BOUND: Duration = Duration::from_millis(250);
    let options = pool.connect_options();
    let probe = tokio::time::timeout(PROBE_BOUND, PgConnection::connect_with(&*options)).await;
    match probe {
        Ok(Err(source)) => DbError::Connect {
            url: format!(
                "{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            ),
            source,
        },
        Ok(Ok(conn)) => {
            drop(conn.close());
            DbError::Timeout { op, after: timeout }
        }
        Err(_) => DbError::Timeout { op, after: timeout },
    }
}

/// Runs `fut` (a call on a dedicated connection) within `timeout`. The caller must drop
/// that connection on `Timeout`: its protocol state is unknown.
pub async fn bounded<T>(
    op: &'static str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(DbError::Timeout { op, after: timeout }))
}

/// A PostgreSQL session's identity (a pid alone is reused by later sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionId {
    pub pid: i32,
    pub started: DateTime<Utc>,
}

/// This connection's session identity.
pub async fn session_id(conn: &mut PgConnection) -> Result<SessionId, DbError> {
    let (pid, started): (i32, DateTime<Utc>) = sqlx::query_as(
        "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .map_err(DbError::query("read session id"))?;
    Ok(SessionId { pid, started })
}

/// Ends an earlier session of ours that we abandoned after a timeout: across a network
/// that drops packets the server may not notice for a long time, and meanwhile that
/// session still holds our advisory lock. Waits up to 1 s for it to exit. True when it
/// was still there.
pub async fn terminate_session(conn: &mut PgConnection, old: SessionId) -> Result<bool, DbError> {
    sqlx::query_scalar(
        "SELECT COALESCE(bool_or(pg_terminate_backend(pid, 1000)), false)
           FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2",
    )
    .bind(old.pid)
    .bind(old.started)
    .fetch_one(conn)
    .await
    .map_err(DbError::query("pg_terminate_backend"))
}

/// One dedicated connection (the worker's lock-holding session).
pub async fn connect_one(
    options: &PgConnectOptions,
    url_for_errors: &str,
) -> Result<PgConnection, DbError> {
    PgConnection::connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            url: redact_url(url_for_errors),
            source: redact::scrub_error(source, url_for_errors),
        })
}

/// Column list shared by every worker query (a macro so queries stay `&'static str`).
///
/// The casts let one query serve every schema flavour (see [`schema`]): Amp before
/// v0.0.34 stored `heartbeat_at` as `timestamp without time zone` in UTC wall time, and
/// sqlx sessions run with `TimeZone=UTC`, so `::timestamptz` reads it as the right
/// instant; on `timestamptz` columns the cast is a no-op. `json` reads like `jsonb`.
macro_rules! worker_columns {
    () => {
        "node_id::text AS node_id, info::jsonb AS info, created_at::timestamptz AS created_at, \
         registered_at::timestamptz AS registered_at, heartbeat_at::timestamptz AS heartbeat_at"
    };
}

/// Registers (or re-registers) a worker: `created_at` is kept from the first
/// registration; `registered_at` and `heartbeat_at` become now(); `info` is replaced.
pub async fn register<'e>(
    db: impl Executor<'e, Database = Postgres>,
    node_id: &NodeId,
    info: &BuildInfo,
    placement: Option<&Placement>,
) -> Result<WorkerRow, DbError> {
    let mut info = serde_json::to_value(info).expect("BuildInfo serializes to JSON");
    if let (Some(placement), Some(map)) = (placement, info.as_object_mut()) {
        map.insert(
            "placement".into(),
            serde_json::to_value(placement).expect("Placement serializes to JSON"),
        );
    }
    sqlx::query_as::<_, WorkerRow>(concat!(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         VALUES ($1, $2, now(), now(), now())
         ON CONFLICT (node_id) DO UPDATE
           SET info = EXCLUDED.info, registered_at = now(), heartbeat_at = now()
         RETURNING ",
        worker_columns!()
    ))
    .bind(node_id.as_str())
    .bind(sqlx::types::Json(info))
    .fetch_one(db)
    .await
    .map_err(DbError::query("register"))
}

/// A reconnecting worker's heartbeat that keeps `registered_at` (the process did not
/// restart); None when the row vanished and the worker must register again.
pub async fn resume<'e>(
    db: impl Executor<'e, Database = Postgres>,
    node_id: &NodeId,
) -> Result<Option<WorkerRow>, DbError> {
    sqlx::query_as::<_, WorkerRow>(concat!(
        "UPDATE workers SET heartbeat_at = now() WHERE node_id = $1 RETURNING ",
        worker_columns!()
    ))
    .bind(node_id.as_str())
    .fetch_optional(db)
    .await
    .map_err(DbError::query("resume"))
}

/// Sets `heartbeat_at = now()`. Returns false when the row no longer exists (deleted by
/// an administrator), so the caller can re-register.
pub async fn heartbeat<'e>(
    db: impl Executor<'e, Database = Postgres>,
    node_id: &NodeId,
) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE node_id = $1")
        .bind(node_id.as_str())
        .execute(db)
        .await
        .map_err(DbError::query("heartbeat"))?;
    Ok(done.rows_affected() == 1)
}

/// All workers, sorted by node id.
pub async fn list_workers<'e>(
    db: impl Executor<'e, Database = Postgres>,
) -> Result<Vec<WorkerRow>, DbError> {
    sqlx::query_as::<_, WorkerRow>(concat!(
        "SELECT ",
        worker_columns!(),
        " FROM workers ORDER BY node_id"
    ))
    .fetch_all(db)
    .await
    .map_err(DbError::query("list workers"))
}

/// Up to `limit` workers with node ids after `after` (keyset pagination), by node id,
/// each with whether a process holds its node id lock.
pub async fn list_workers_page<'e>(
    db: impl Executor<'e, Database = Postgres>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WorkerRow>, DbError> {
    sqlx::query_as::<_, WorkerRow>(concat!(
        "WITH ",
        held_locks_cte!(),
        " SELECT ",
        worker_columns!(),
        ", ",
        lock_held_column!(),
        " FROM workers WHERE $1::text IS NULL OR node_id > $1 ORDER BY node_id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(DbError::query("list workers page"))
}

/// Every worker by node id, one row at a time from a single statement (one consistent
/// snapshot), so a reader serving 100,000 rows never holds them all.
/// `after` skips node ids up to and including it.
///
/// The pool's `statement_timeout` bounds a query; a stream lasts as long as its client
/// reads, so the statement gets [`STREAM_STATEMENT_TIMEOUT`] instead (in its own
/// read-only transaction), and a slow reader of a large fleet is not cut off at 3 s.
pub fn stream_workers(
    pool: PgPool,
    after: Option<String>,
) -> impl futures::Stream<Item = Result<WorkerRow, DbError>> + Send + 'static {
    async_stream::stream! {
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(sqlx::Error::PoolTimedOut) => {
                let waited = pool.options().get_acquire_timeout();
                yield Err(why_no_connection(&pool, "stream workers", waited).await);
                return;
            }
            Err(e) => {
                yield Err(DbError::Query { op: "stream workers", source: e });
                return;
            }
        };
        // set_config(..., true) is SET LOCAL: it ends with the transaction.
        let set = sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(format!("{}ms", STREAM_STATEMENT_TIMEOUT.as_millis()))
            .execute(&mut *tx)
            .await;
        if let Err(e) = set {
            yield Err(DbError::Query { op: "stream workers", source: e });
            return;
        }
        let mut rows = sqlx::query_as::<_, WorkerRow>(concat!(
            "WITH ",
            held_locks_cte!(),
            " SELECT ",
            worker_columns!(),
            ", ",
            lock_held_column!(),
            " FROM workers WHERE $1::text IS NULL OR node_id > $1 ORDER BY node_id"
        ))
        .bind(after)
        .fetch(&mut *tx);
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await.transpose() {
            yield row.map_err(DbError::query("stream workers"));
        }
    }
}

/// How long one streamed list may take (a slow client reading a large fleet).
pub const STREAM_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads nothing, but as every worker read does (the same columns, `pg_locks`): fails
/// with the cause when this role cannot read `workers` (no grant, no table, columns
/// missing), which a bare `SELECT 1` would not notice. Readiness asks this.
pub async fn can_read_workers<'e>(
    db: impl Executor<'e, Database = Postgres>,
) -> Result<(), DbError> {
    sqlx::query(concat!(
        "WITH ",
        held_locks_cte!(),
        " SELECT ",
        worker_columns!(),
        ", ",
        lock_held_column!(),
        " FROM workers LIMIT 0"
    ))
    .execute(db)
    .await
    .map(drop)
    .map_err(DbError::query("read workers"))
}

/// One worker (with whether a process holds its node id lock), or None when the id is
/// not registered.
pub async fn get_worker<'e>(
    db: impl Executor<'e, Database = Postgres>,
    node_id: &str,
) -> Result<Option<WorkerRow>, DbError> {
    sqlx::query_as::<_, WorkerRow>(concat!(
        "WITH ",
        held_locks_cte!(),
        " SELECT ",
        worker_columns!(),
        ", ",
        lock_held_column!(),
        " FROM workers WHERE node_id = $1"
    ))
    .bind(node_id)
    .fetch_optional(db)
    .await
    .map_err(DbError::query("get worker"))
}

/// The duplicate guard on this session: true when the node id is now ours.
///
/// The key is Amp's, `hashtextextended(node_id, 0)`, so one node id runs once across a
/// fleet mixing Amp's workers and ours. Releases before this one keyed the lock by a
/// SHA-256 prefix ([`NodeId::legacy_advisory_lock_key`]): this release takes that key
/// too, so during a rolling upgrade an old and a new worker exclude each other as well.
/// Both or neither: when the second is held elsewhere, the first is given back.
pub async fn try_advisory_lock(conn: &mut PgConnection, node_id: &NodeId) -> Result<bool, DbError> {
    let amp: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(node_id.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(DbError::query("pg_try_advisory_lock"))?;
    if !amp {
        return Ok(false);
    }
    let legacy: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(node_id.legacy_advisory_lock_key())
        .fetch_one(&mut *conn)
        .await
        .map_err(DbError::query("pg_try_advisory_lock"))?;
    if !legacy {
        sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(node_id.as_str())
            .execute(conn)
            .await
            .map_err(DbError::query("pg_advisory_unlock"))?;
    }
    Ok(legacy)
}

/// Releases both keys taken by [`try_advisory_lock`] on this session.
pub async fn advisory_unlock(conn: &mut PgConnection, node_id: &NodeId) -> Result<bool, DbError> {
    sqlx::query_scalar(
        "SELECT pg_advisory_unlock(hashtextextended($1, 0)) AND pg_advisory_unlock($2)",
    )
    .bind(node_id.as_str())
    .bind(node_id.legacy_advisory_lock_key())
    .fetch_one(conn)
    .await
    .map_err(DbError::query("pg_advisory_unlock"))
}

/// Whether some session (an Amp worker's or ours) holds the node id's lock, by Amp's key.
pub async fn advisory_lock_held<'e>(
    db: impl Executor<'e, Database = Postgres>,
    node_id: &str,
) -> Result<bool, DbError> {
    // The readers' probe (`lock_probe`), for one node id.
    sqlx::query_scalar(concat!(
        "WITH ",
        held_locks_cte!(),
        " SELECT hashtextextended($1, 0) IN (SELECT key FROM held)"
    ))
    .bind(node_id)
    .fetch_one(db)
    .await
    .map_err(DbError::query("inspect pg_locks"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_that_are_not_postgres_say_what_to_write() {
        let shape = "use postgres://user:password@host:port/dbname";
        assert_eq!(not_a_postgres_url("postgres://amp@db/amp"), None);
        assert_eq!(not_a_postgres_url("PostgreSQL://amp@db/amp"), None);
        assert_eq!(
            not_a_postgres_url("mysql://root:hunter2@db/amp"),
            Some(format!(
                "unsupported scheme mysql://: the metadata DB is PostgreSQL; {shape}"
            ))
        );
        assert_eq!(
            not_a_postgres_url("not a url"),
            Some(format!("not a URL; {shape}"))
        );
        assert_eq!(
            not_a_postgres_url("host=db dbname=amp"),
            Some(format!(
                "key=value connection strings are not supported; {shape}"
            ))
        );
        // Never echo what could be a secret written before `://`.
        assert_eq!(
            not_a_postgres_url("user:hunter2@db://x"),
            Some(format!("not a PostgreSQL URL; {shape}"))
        );
    }

    #[test]
    fn messages_carry_the_cause_not_the_query_name() {
        let err = DbError::Query {
            op: "list workers",
            source: sqlx::Error::PoolTimedOut,
        };
        assert_eq!(
            err.to_string(),
            "metadata DB: no connection within the timeout (the server refused or did not answer)"
        );
        assert_eq!(err.op(), Some("list workers"));
        let timeout = DbError::Timeout {
            op: "snapshot",
            after: Duration::from_millis(3000),
        };
        assert_eq!(
            timeout.to_string(),
            "the metadata DB did not answer within 3s"
        );
        assert_eq!(timeout.cause(), "no answer within 3s");
        assert!(!timeout.is_permanent());
        assert_eq!(timeout.summary(), Some("no answer in time"));
    }
}
