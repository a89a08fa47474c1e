//! One line a person can act on for a failed connection to the metadata DB.
//!
//! sqlx reports a refused certificate as an I/O error wrapping rustls' error ("invalid
//! peer certificate: UnknownIssuer"), and pg_hba's refusal as a bare server message.
//! [`describe`] names the cause (`certificate`, `hostname`, `expired`, `pg_hba`, ...)
//! and the setting that fixes it. It only reads error kinds and server messages, which
//! carry neither the password nor key material.

use rustls::{AlertDescription, CertificateError};

/// The error's text for logs and messages: a classified cause when we know it.
pub fn describe(err: &sqlx::Error) -> String {
    cause(err)
        .map(|c| c.line)
        .unwrap_or_else(|| err.to_string())
}

/// A short, stable summary of a TLS failure (for Kubernetes conditions, which must not
/// change text from one attempt to the next), or None when `err` is not one.
pub fn tls_summary(err: &sqlx::Error) -> Option<&'static str> {
    cause(err).and_then(|c| c.tls_summary)
}

impl super::DbError {
    /// [`tls_summary`] of the underlying connection error, if this is a TLS failure.
    pub fn tls_summary(&self) -> Option<&'static str> {
        match self {
            super::DbError::Connect { source, .. } | super::DbError::Query { source, .. } => {
                tls_summary(source)
            }
            super::DbError::Tls(_) => Some("invalid TLS settings"),
            _ => None,
        }
    }
}

struct Cause {
    line: String,
    tls_summary: Option<&'static str>,
}

fn tls(summary: &'static str, line: String) -> Option<Cause> {
    Some(Cause {
        line: format!("TLS failed: {line}"),
        tls_summary: Some(summary),
    })
}

fn cause(err: &sqlx::Error) -> Option<Cause> {
    match err {
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(rustls_cause),
        sqlx::Error::Tls(inner) => match inner.downcast_ref::<rustls::Error>() {
            Some(e) => rustls_cause(e),
            None if inner.to_string() == "server does not support TLS" => tls(
                "the server does not accept TLS",
                "the server does not accept TLS connections (sslmode=require or stricter needs ssl=on on the server; sslmode=prefer connects without TLS)".to_owned(),
            ),
            None => tls("TLS handshake failed", inner.to_string()),
        },
        sqlx::Error::Database(db) if db.code().as_deref() == Some("28000") => {
            pg_hba_cause(db.message())
        }
        _ => None,
    }
}

fn rustls_cause(err: &rustls::Error) -> Option<Cause> {
    match err {
        rustls::Error::InvalidCertificate(cert) => Some(certificate_cause(cert)),
        rustls::Error::AlertReceived(alert) => Some(alert_cause(*alert)),
        other => tls(
            "TLS handshake failed",
            format!("handshake with the server: {other}"),
        ),
    }
}

fn certificate_cause(err: &CertificateError) -> Cause {
    let (summary, line) = match err {
        CertificateError::UnknownIssuer => (
            "server certificate not signed by a trusted CA",
            "certificate: the server's certificate is not signed by a trusted CA (unknown issuer); set sslrootcert to the CA bundle that signed it".to_owned(),
        ),
        CertificateError::NotValidForName => (
            "server certificate hostname mismatch",
            "hostname: the server's certificate is not valid for the host in the URL; connect by a name the certificate lists, or use sslmode=verify-ca".to_owned(),
        ),
        CertificateError::NotValidForNameContext { expected, presented } => (
            "server certificate hostname mismatch",
            format!(
                "hostname: the server's certificate is not valid for {} (it lists {}); connect by a name the certificate lists, or use sslmode=verify-ca",
                expected.to_str(),
                listed_names(presented)
            ),
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            "server certificate expired",
            format!("certificate expired: the server's certificate is past its validity{}; renew it on the server", at(err)),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "server certificate not valid yet",
            "certificate not valid yet: the server's certificate starts in the future; check the clocks".to_owned(),
        ),
        other => (
            "server certificate rejected",
            format!("certificate: the server's certificate was rejected ({other:?})"),
        ),
    };
    Cause {
        line: format!("TLS failed: {line}"),
        tls_summary: Some(summary),
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
            "server rejected the client certificate",
            format!(
                "certificate: the server rejected our client certificate ({alert:?}); check sslcert/sslkey and that the server trusts their CA"
            ),
        )
    } else {
        (
            "TLS handshake failed",
            format!("the server ended the handshake ({alert:?})"),
        )
    };
    Cause {
        line: format!("TLS failed: {line}"),
        tls_summary: Some(summary),
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
        tls_summary: None,
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
            tls_summary(&err),
            Some("server certificate not signed by a trusted CA")
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
        assert_eq!(tls_summary(&err), None);
    }
}
