//! One line a person can act on for a failed call to the metadata DB, and whether
//! waiting can fix it.
//!
//! sqlx reports a refused certificate as an I/O error wrapping rustls' error ("invalid
//! peer certificate: UnknownIssuer"), pg_hba's refusal as a bare server message, and a
//! server error with the line of PostgreSQL's own C source that raised it. [`describe`]
//! names the cause (`connection refused`, `authentication failed`, `certificate`,
//! `pg_hba`, a missing table, ...) and the setting or command that fixes it. It only
//! reads error kinds and server messages, which carry neither the password nor key
//! material.

use rustls::{AlertDescription, CertificateError};
use sqlx::error::DatabaseError;

/// The error's text for logs and messages: a classified cause when we know it, else the
/// server's message (without PostgreSQL's source line) or sqlx's text.
pub fn describe(err: &sqlx::Error) -> String {
    cause(err).map(|c| c.line).unwrap_or_else(|| match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    })
}

/// A short, stable summary of the cause (for Kubernetes conditions and `/readyz`, which
/// must not change text from one attempt to the next), or None when we cannot name it.
pub fn summary(err: &sqlx::Error) -> Option<&'static str> {
    cause(err).and_then(|c| c.summary)
}

/// Whether waiting cannot fix `err` (a wrong password, a missing database or table, a
/// certificate the client refuses): only network-level failures heal by themselves.
pub fn is_permanent(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Configuration(_) => true,
        other => cause(other).is_some_and(|c| c.permanent),
    }
}

/// What a read lacked, as the statement that grants it: `permission denied: grant SELECT
/// on workers to amp_reader` (or `grant USAGE on SCHEMA public to ...`), from the
/// server's `permission denied for table|relation|schema NAME`; None for other errors.
/// `role` is the one the client connected as (the server's message does not name it).
pub fn missing_grant(err: &sqlx::Error, role: &str) -> Option<String> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if db.code().as_deref() != Some("42501") {
        return None;
    }
    let denied = db.message().strip_prefix("permission denied for ")?;
    let role = quoted_ident(role);
    if let Some(schema) = denied.strip_prefix("schema ") {
        return Some(format!(
            "permission denied: grant USAGE on SCHEMA {schema} to {role}"
        ));
    }
    // PostgreSQL 15 and later say `table`, older ones `relation`.
    let table = denied
        .strip_prefix("table ")
        .or_else(|| denied.strip_prefix("relation "))?;
    Some(format!(
        "permission denied: grant SELECT on {table} to {role}"
    ))
}

/// `name` as SQL writes an identifier: as is when it needs no quotes.
fn quoted_ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

impl super::DbError {
    /// [`missing_grant`] of the underlying error.
    pub fn missing_grant(&self, role: &str) -> Option<String> {
        use super::DbError;
        match self {
            DbError::Connect { source, .. } | DbError::Query { source, .. } => {
                missing_grant(source, role)
            }
            _ => None,
        }
    }

    /// [`summary`] of the underlying error: what the conditions and `/readyz` say.
    pub fn summary(&self) -> Option<&'static str> {
        use super::DbError;
        match self {
            DbError::Connect { source, .. } | DbError::Query { source, .. } => summary(source),
            DbError::Tls(_) => Some("TLS failed: invalid TLS settings"),
            DbError::InvalidUrl { .. } => Some("invalid database URL"),
            DbError::Timeout { .. } => Some("no answer in time"),
            DbError::UnservableSchema(_) => Some("its workers table lacks columns we read"),
            DbError::Migrate(_) => None,
            DbError::Credentials(_) => Some("cannot read the credentials file"),
        }
    }

    /// Whether waiting cannot fix this: the worker and one-shot commands stop at once.
    pub fn is_permanent(&self) -> bool {
        use super::DbError;
        match self {
            DbError::Connect { source, .. } | DbError::Query { source, .. } => is_permanent(source),
            DbError::InvalidUrl { .. }
            | DbError::Tls(_)
            | DbError::UnservableSchema(_)
            | DbError::Migrate(_)
            | DbError::Credentials(_) => true,
            DbError::Timeout { .. } => false,
        }
    }
}

struct Cause {
    line: String,
    summary: Option<&'static str>,
    permanent: bool,
}

fn tls(summary: &'static str, line: String) -> Option<Cause> {
    Some(Cause {
        line: format!("TLS failed: {line}"),
        summary: Some(summary),
        // A handshake cut short is a network failure; a refused certificate is not.
        permanent: summary != "TLS failed: handshake failed",
    })
}

fn cause(err: &sqlx::Error) -> Option<Cause> {
    match err {
        sqlx::Error::Io(io) => match io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => rustls_cause(tls),
            None => Some(io_cause(io)),
        },
        sqlx::Error::Tls(inner) => match inner.downcast_ref::<rustls::Error>() {
            Some(e) => rustls_cause(e),
            None if inner.to_string() == "server does not support TLS" => tls(
                "TLS failed: the server does not accept TLS",
                "the server does not accept TLS connections (sslmode=require or stricter needs ssl=on on the server; sslmode=prefer connects without TLS)".to_owned(),
            ),
            None => tls("TLS failed: handshake failed", inner.to_string()),
        },
        sqlx::Error::Database(db) => server_cause(db.as_ref()),
        // The pool retries refused connections until its deadline, then says only this.
        sqlx::Error::PoolTimedOut => Some(transient(
            "no connection in time",
            "no connection within the timeout (the server refused or did not answer)".to_owned(),
        )),
        _ => None,
    }
}

fn transient(summary: &'static str, line: String) -> Cause {
    Cause {
        line,
        summary: Some(summary),
        permanent: false,
    }
}

fn permanent(summary: &'static str, line: String) -> Cause {
    Cause {
        line,
        summary: Some(summary),
        permanent: true,
    }
}

/// Network-level failures: all of them may heal.
fn io_cause(io: &std::io::Error) -> Cause {
    use std::io::ErrorKind;
    let (summary, what) = match io.kind() {
        ErrorKind::ConnectionRefused => (
            "connection refused",
            "connection refused (is PostgreSQL running and listening on that host and port?)",
        ),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            ("connection reset", "the server closed the connection")
        }
        ErrorKind::UnexpectedEof => ("connection reset", "the server closed the connection"),
        ErrorKind::TimedOut => ("connect timed out", "the connection timed out"),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            ("host unreachable", "no route to the host")
        }
        _ if io.to_string().contains("lookup address") => {
            ("host not found", "the host name does not resolve")
        }
        _ => ("network error", "network error"),
    };
    transient(summary, format!("{what}: {io}"))
}

/// A server error: its message (never PostgreSQL's source line) and the fix. SQLSTATEs
/// from the PostgreSQL manual's Appendix A.
fn server_cause(db: &dyn DatabaseError) -> Option<Cause> {
    let message = db.message();
    let code = db.code();
    let cause = match code.as_deref()? {
        "28P01" => permanent(
            "authentication failed",
            format!(
                "authentication failed: {message}; check the user and password in the database URL"
            ),
        ),
        "28000" if message.starts_with("role ") => permanent(
            "role does not exist",
            format!("{message}; create the role or fix the user in the database URL"),
        ),
        "28000" => {
            return pg_hba_cause(message).or_else(|| {
                Some(permanent(
                    "connection not authorized",
                    format!("connection not authorized: {message}"),
                ))
            });
        }
        "3D000" => permanent(
            "database does not exist",
            format!("{message}; create it or fix the database name in the URL"),
        ),
        "42P01" => permanent(
            "no workers table: run ampd migrate",
            format!(
                "{message}: this metadata DB has no workers table yet; run `ampd migrate` against it first"
            ),
        ),
        "42703" => permanent(
            "schema out of date: run ampd migrate",
            format!("{message}: the workers table is older than this release; run `ampd migrate`"),
        ),
        "42501" => permanent(
            "permission denied",
            format!("{message}; grant the database role the privileges docs/amp.md lists"),
        ),
        "25006" => permanent(
            "read-only",
            format!("{message}: the role or server only allows reads"),
        ),
        "57P03" => transient("the server is starting up", message.to_owned()),
        "53300" => transient("too many connections", message.to_owned()),
        c if c.starts_with("08") || c.starts_with("57") => {
            transient("connection lost", message.to_owned())
        }
        _ => return None,
    };
    Some(cause)
}

fn rustls_cause(err: &rustls::Error) -> Option<Cause> {
    match err {
        rustls::Error::InvalidCertificate(cert) => Some(certificate_cause(cert)),
        rustls::Error::AlertReceived(alert) => Some(alert_cause(*alert)),
        other => tls(
            "TLS failed: handshake failed",
            format!("handshake with the server: {other}"),
        ),
    }
}

fn certificate_cause(err: &CertificateError) -> Cause {
    let (summary, line) = match err {
        CertificateError::UnknownIssuer => (
            "TLS failed: server certificate not signed by a trusted CA",
            "certificate: the server's certificate is not signed by a trusted CA (unknown issuer); set sslrootcert to the CA bundle that signed it".to_owned(),
        ),
        CertificateError::NotValidForName => (
            "TLS failed: server certificate hostname mismatch",
            "hostname: the server's certificate is not valid for the host in the URL; connect by a name the certificate lists, or use sslmode=verify-ca".to_owned(),
        ),
        CertificateError::NotValidForNameContext { expected, presented } => (
            "TLS failed: server certificate hostname mismatch",
            format!(
                "hostname: the server's certificate is not valid for {} (it lists {}); connect by a name the certificate lists, or use sslmode=verify-ca",
                expected.to_str(),
                listed_names(presented)
            ),
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            "TLS failed: server certificate expired",
            format!("certificate expired: the server's certificate is past its validity{}; renew it on the server", at(err)),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "TLS failed: server certificate not valid yet",
            "certificate not valid yet: the server's certificate starts in the future; check the clocks".to_owned(),
        ),
        other => (
            "TLS failed: server certificate rejected",
            format!("certificate: the server's certificate was rejected ({other:?})"),
        ),
    };
    Cause {
        line: format!("TLS failed: {line}"),
        summary: Some(summary),
        permanent: true,
    }
}

/// ` (expired 2024-01-01T00:00:00Z)` when rustls says when.
fn at(err: &CertificateError) -> String {
    match err {
        CertificateError::ExpiredContext { not_after, .. } => {
            chrono::DateTime::from_timestamp(not_after.as_secs() as i64, 0)
                .map(|t| format!(" (expired {})", t.format("%Y-%m-%dT%H:%M:%SZ")))
                .unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// webpki's `DnsName("db")` / `IpAddress(10.0.0.1)` as `db, 10.0.0.1`.
fn listed_names(presented: &[String]) -> String {
    if presented.is_empty() {
        return "no names".to_owned();
    }
    presented
        .iter()
        .map(|n| {
            n.trim_start_matches("DnsName(\"")
                .trim_start_matches("IpAddress(")
                .trim_end_matches("\")")
                .trim_end_matches(')')
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn alert_cause(alert: AlertDescription) -> Cause {
    let client_cert = matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
    );
    let (summary, line) = if client_cert {
        (
            "TLS failed: server rejected the client certificate",
            format!(
                "certificate: the server rejected our client certificate ({alert:?}); check sslcert/sslkey and that the server trusts their CA"
            ),
        )
    } else {
        (
            "TLS failed: handshake failed",
            format!("the server ended the handshake ({alert:?})"),
        )
    };
    Cause {
        line: format!("TLS failed: {line}"),
        permanent: summary != "TLS failed: handshake failed",
        summary: Some(summary),
    }
}

/// The server's `invalid_authorization_specification` texts that a TLS setting fixes.
fn pg_hba_cause(message: &str) -> Option<Cause> {
    let line = if message.starts_with("no pg_hba.conf entry") && message.ends_with("no encryption")
    {
        format!(
            "pg_hba: the server refused a connection without TLS ({message}); set sslmode=verify-full (or require)"
        )
    } else if message.contains("requires a valid client certificate") {
        format!(
            "pg_hba: the server requires a client certificate ({message}); set sslcert and sslkey"
        )
    } else if message.starts_with("certificate authentication failed") {
        format!("pg_hba: {message}; the client certificate's CN must be the database user name")
    } else {
        return None;
    };
    Some(Cause {
        line,
        summary: Some("pg_hba refused the connection"),
        permanent: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_tls(e: rustls::Error) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn certificate_causes() {
        let err = io_tls(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            describe(&err),
            "TLS failed: certificate: the server's certificate is not signed by a trusted CA (unknown issuer); set sslrootcert to the CA bundle that signed it"
        );
        assert_eq!(
            summary(&err),
            Some("TLS failed: server certificate not signed by a trusted CA")
        );
        let err = io_tls(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("db.amp.svc").expect("name"),
                presented: vec![
                    "DnsName(\"pg.example\")".into(),
                    "IpAddress(10.0.0.1)".into(),
                ],
            },
        ));
        assert_eq!(
            describe(&err),
            "TLS failed: hostname: the server's certificate is not valid for db.amp.svc (it lists pg.example, 10.0.0.1); connect by a name the certificate lists, or use sslmode=verify-ca"
        );
    }

    #[test]
    fn other_errors_keep_their_text() {
        let err = sqlx::Error::Protocol("odd".into());
        assert_eq!(describe(&err), err.to_string());
        assert_eq!(summary(&err), None);
        assert!(!is_permanent(&err));
    }

    fn io(kind: std::io::ErrorKind) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(kind, "os says no"))
    }

    #[test]
    fn network_failures_are_named_and_transient() {
        use std::io::ErrorKind;
        for (kind, summary_text) in [
            (ErrorKind::ConnectionRefused, "connection refused"),
            (ErrorKind::ConnectionReset, "connection reset"),
            (ErrorKind::UnexpectedEof, "connection reset"),
            (ErrorKind::TimedOut, "connect timed out"),
            (ErrorKind::HostUnreachable, "host unreachable"),
            (ErrorKind::Other, "network error"),
        ] {
            let err = io(kind);
            assert_eq!(summary(&err), Some(summary_text), "{kind:?}");
            assert!(!is_permanent(&err), "{kind:?} may heal");
        }
        assert_eq!(
            describe(&io(ErrorKind::ConnectionRefused)),
            "connection refused (is PostgreSQL running and listening on that host and port?): os says no"
        );
        assert_eq!(
            summary(&sqlx::Error::PoolTimedOut),
            Some("no connection in time")
        );
        assert!(!is_permanent(&sqlx::Error::PoolTimedOut));
    }

    #[test]
    fn refused_certificates_are_permanent_and_cut_handshakes_are_not() {
        let refused = io_tls(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert!(is_permanent(&refused));
        let cut = io_tls(rustls::Error::General("connection closed".into()));
        assert_eq!(summary(&cut), Some("TLS failed: handshake failed"));
        assert!(!is_permanent(&cut));
        assert!(is_permanent(&sqlx::Error::Configuration("bad".into())));
    }
}
