//! The `error_message` of a 503: why the metadata DB could not be read, in words a
//! person can act on (`metadata DB unavailable: connection refused`). Never our internal
//! name for the statement (`list workers page`), which tells a user nothing.
//!
//! sqlx's pool retries a refused connection until its acquire timeout and then reports
//! only `PoolTimedOut`, losing the cause. In that case one direct connection attempt,
//! bounded by [`PROBE_BUDGET`], finds it: a refused or unresolvable server answers in
//! milliseconds.

use std::time::Duration;

use sqlx::{ConnectOptions, PgPool};

use crate::metadata_db::DbError;

/// Longest a 503 waits for the probe. Small against `--db-timeout`: a server that
/// silently drops packets makes the probe time out too, and the answer must still come
/// about when `--db-timeout` promises (tests/db_timeouts.rs allows 500 ms).
const PROBE_BUDGET: Duration = Duration::from_millis(250);

/// The cause of `err`, for the 503 body; `db_timeout` bounded the failed call.
pub async fn cause(pool: &PgPool, err: DbError, db_timeout: Duration) -> String {
    match err {
        DbError::Timeout { after, .. } => no_answer(after),
        DbError::Query {
            source: sqlx::Error::PoolTimedOut,
            ..
        } => probe(pool, db_timeout).await,
        DbError::Query { op, source } => query_cause(op, source),
        other => other.to_string(),
    }
}

fn no_answer(after: Duration) -> String {
    format!("no answer within {}", humantime::format_duration(after))
}

/// Why a fresh connection cannot be made (the pool only said it had none to give).
async fn probe(pool: &PgPool, db_timeout: Duration) -> String {
    let options = pool.connect_options();
    match tokio::time::timeout(PROBE_BUDGET, options.connect()).await {
        Err(_) => no_answer(db_timeout),
        Ok(Ok(conn)) => {
            drop(conn);
            // The server accepts connections: every pooled one was busy the whole time.
            format!(
                "no free connection within {} (every pooled connection was busy)",
                humantime::format_duration(db_timeout)
            )
        }
        Ok(Err(source)) => query_cause("connect", source),
    }
}

/// The cause part of a failed statement or connection: I/O failures by their kind
/// (`connection refused`), everything else as the metadata DB module describes it
/// (TLS and pg_hba refusals come with the setting that fixes them).
fn query_cause(op: &'static str, source: sqlx::Error) -> String {
    if let sqlx::Error::Io(io) = &source
        && let Some(kind) = network_kind(io)
    {
        return kind;
    }
    // DbError's text is "metadata DB query `OP` failed: CAUSE"; CAUSE is what we want.
    // (metadata_db keeps its describer private; see the report to make it public.)
    let prefix = format!("metadata DB query `{op}` failed: ");
    let text = DbError::Query { op, source }.to_string();
    text.strip_prefix(&prefix)
        .map(str::to_owned)
        .unwrap_or(text)
}

/// `connection refused`, `host unreachable`, ...: the kinds a network failure has; other
/// I/O errors (TLS inside I/O, name resolution) say more in their own text.
fn network_kind(io: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind as K;
    matches!(
        io.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::TimedOut
            | K::BrokenPipe
            | K::UnexpectedEof
    )
    .then(|| io.kind().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_words_without_statement_names() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            query_cause("list workers page", sqlx::Error::Io(refused)),
            "connection refused"
        );
        let dns = std::io::Error::other("failed to lookup address information: no such host");
        assert_eq!(
            query_cause("get worker", sqlx::Error::Io(dns)),
            "error communicating with database: failed to lookup address information: no such host"
        );
        assert_eq!(
            query_cause("get worker", sqlx::Error::RowNotFound),
            "no rows returned by a query that expected to return at least one row"
        );
        assert_eq!(no_answer(Duration::from_secs(3)), "no answer within 3s");
        assert_eq!(
            no_answer(Duration::from_millis(1500)),
            "no answer within 1s 500ms"
        );
    }
}
