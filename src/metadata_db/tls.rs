//! TLS to the metadata DB with libpq's meanings, on top of what sqlx already does.
//!
//! sqlx (rustls with ring, system roots) reads `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` from the URL and falls back to `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and
//! `PGSSLKEY`. Where it parts from libpq, or fails late with an unhelpful text, we step
//! in before any connection is attempted:
//!
//! - `sslmode=require` with a root certificate verifies the chain (libpq: "if a root CA
//!   file exists, behave as verify-ca"); sqlx would accept any certificate.
//! - `sslmode=allow` connects like `prefer` (TLS first): sqlx treats `allow` as
//!   `disable`, which fails against servers that only accept TLS.
//! - An unknown `PGSSLMODE` is an error; sqlx silently uses `prefer`.
//! - `sslcert` without `sslkey` (or the reverse), and certificate or key files that
//!   cannot be read, are reported at start-up, naming the setting and the path.
//!
//! Root store: `verify-ca` and `verify-full` trust the operating system's CA store
//! (rustls-native-certs: `SSL_CERT_FILE` / `SSL_CERT_DIR`, else the distribution's
//! bundle, `/etc/ssl/certs` in the image) plus the `sslrootcert` bundle when given.
//! libpq instead trusts only `sslrootcert` (default `~/.postgresql/root.crt`).

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// A TLS setting that cannot work; the message names the setting, never key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsConfigError {
    #[error(
        "{source_name}={value:?} is not an sslmode; use disable, prefer, require, verify-ca or verify-full"
    )]
    UnknownMode { source_name: String, value: String },
    #[error(
        "{given} is set but {missing} is not: a client certificate needs both sslcert and sslkey"
    )]
    HalfClientCert {
        given: &'static str,
        missing: &'static str,
    },
    #[error("{setting} file {path} cannot be read: {reason}")]
    Unreadable {
        setting: String,
        path: String,
        reason: String,
    },
    #[error(
        "sslrootcert=system is not supported; leave sslrootcert out to verify against the system's CA store"
    )]
    SystemRoots,
    #[error(
        "{setting} {path} is an encrypted private key; sslpassword is not supported: store it decrypted (openssl pkey -in KEY -out KEY.plain) in a Secret"
    )]
    EncryptedKey { setting: String, path: String },
    #[error("{setting} file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { setting: String, path: String },
}

/// One libpq TLS setting: its URL keys (sqlx's aliases included) and environment variable.
struct Setting {
    keys: &'static [&'static str],
    env: &'static str,
}

const MODE: Setting = Setting {
    keys: &["sslmode", "ssl-mode"],
    env: "PGSSLMODE",
};
const ROOT_CERT: Setting = Setting {
    keys: &["sslrootcert", "ssl-root-cert", "ssl-ca"],
    env: "PGSSLROOTCERT",
};
const CLIENT_CERT: Setting = Setting {
    keys: &["sslcert", "ssl-cert"],
    env: "PGSSLCERT",
};
const CLIENT_KEY: Setting = Setting {
    keys: &["sslkey", "ssl-key"],
    env: "PGSSLKEY",
};

/// A setting's effective value: the URL's (last one wins, as in sqlx), else the env's.
struct Resolved {
    value: String,
    /// `sslmode` (the URL key) or `PGSSLMODE`, for messages.
    from: String,
}

fn resolve(
    setting: &Setting,
    query: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Resolved> {
    let from_url = query
        .iter()
        .rev()
        .find(|(k, _)| setting.keys.contains(&k.as_str()))
        .map(|(k, v)| Resolved {
            value: v.clone(),
            from: k.clone(),
        });
    from_url.or_else(|| {
        env(setting.env).map(|value| Resolved {
            value,
            from: setting.env.to_owned(),
        })
    })
}

/// Applies libpq's TLS meanings to `options` (parsed by sqlx from `url`).
pub(crate) fn apply(
    options: PgConnectOptions,
    url: &str,
) -> Result<PgConnectOptions, TlsConfigError> {
    apply_with_env(options, url, &|name| std::env::var(name).ok())
}

pub(crate) fn apply_with_env(
    options: PgConnectOptions,
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PgConnectOptions, TlsConfigError> {
    let query: Vec<(String, String)> = url::Url::parse(url)
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mode = match resolve(&MODE, &query, env) {
        None => PgSslMode::Prefer,
        Some(r) => r.value.parse().map_err(|_| TlsConfigError::UnknownMode {
            source_name: r.from,
            value: r.value,
        })?,
    };
    let root = resolve(&ROOT_CERT, &query, env);
    if root.as_ref().is_some_and(|r| r.value == "system") {
        return Err(TlsConfigError::SystemRoots);
    }
    let cert = resolve(&CLIENT_CERT, &query, env);
    let key = resolve(&CLIENT_KEY, &query, env);
    match (&cert, &key) {
        (Some(_), None) => return Err(half("sslcert", "sslkey")),
        (None, Some(_)) => return Err(half("sslkey", "sslcert")),
        _ => {}
    }
    if !matches!(mode, PgSslMode::Disable) {
        for r in [&root, &cert, &key].into_iter().flatten() {
            check_readable(r)?;
        }
        if let Some(key) = &key {
            check_not_encrypted(key)?;
        }
        for r in [&root, &cert].into_iter().flatten() {
            check_has_certificate(r)?;
        }
    }
    Ok(options.ssl_mode(effective_mode(mode, root.is_some())))
}

fn half(given: &'static str, missing: &'static str) -> TlsConfigError {
    TlsConfigError::HalfClientCert { given, missing }
}

/// libpq's `require` verifies the chain once a root certificate is given; `allow` is
/// served as `prefer` (see the module docs).
fn effective_mode(mode: PgSslMode, has_root_cert: bool) -> PgSslMode {
    match mode {
        PgSslMode::Require if has_root_cert => PgSslMode::VerifyCa,
        PgSslMode::Allow => PgSslMode::Prefer,
        other => other,
    }
}

/// A file setting must be readable now: otherwise the first connection fails with a
/// bare "No such file or directory" that names neither the setting nor the path.
/// Inline PEM (sqlx accepts it) is not a path.
fn check_readable(r: &Resolved) -> Result<(), TlsConfigError> {
    if r.value.trim_start().starts_with("-----BEGIN") {
        return Ok(());
    }
    std::fs::File::open(Path::new(&r.value))
        .map(drop)
        .map_err(|e| TlsConfigError::Unreadable {
            setting: r.from.clone(),
            path: r.value.clone(),
            reason: e.kind().to_string(),
        })
}

/// A bundle without a certificate would only show up as "unknown issuer" at the
/// handshake, pointing at the wrong fix.
fn check_has_certificate(r: &Resolved) -> Result<(), TlsConfigError> {
    if r.value.trim_start().starts_with("-----BEGIN") {
        return Ok(());
    }
    let text = std::fs::read(&r.value).unwrap_or_default();
    if String::from_utf8_lossy(&text).contains("-----BEGIN CERTIFICATE-----") {
        return Ok(());
    }
    Err(TlsConfigError::NoCertificate {
        setting: r.from.clone(),
        path: r.value.clone(),
    })
}

/// rustls reads unencrypted keys only; sqlx would say "no keys found pem file".
/// The key's text is only searched, never put into a message.
fn check_not_encrypted(r: &Resolved) -> Result<(), TlsConfigError> {
    let inline = r.value.trim_start().starts_with("-----BEGIN");
    let text = if inline {
        r.value.clone()
    } else {
        std::fs::read(&r.value)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsConfigError::EncryptedKey {
            setting: r.from.clone(),
            path: if inline {
                "(inline PEM)".to_owned()
            } else {
                r.value.clone()
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The effective mode, as `{:?}` (PgSslMode has no PartialEq).
    fn mode_of(url: &str, env: &[(&str, &str)]) -> Result<String, TlsConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let options = PgConnectOptions::from_str("postgres://amp@db/amp").expect("parses");
        apply_with_env(options, url, &lookup).map(|o| format!("{:?}", o.get_ssl_mode()))
    }

    /// A file that looks like a PEM certificate (its content is checked only that far).
    fn ca_file() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            file.path(),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        file
    }

    #[test]
    fn a_bundle_without_a_certificate_is_an_error() {
        let empty = tempfile::NamedTempFile::new().expect("temp file");
        let url = format!(
            "postgres://amp@db/amp?sslmode=verify-full&sslrootcert={}",
            empty.path().display()
        );
        assert_eq!(
            mode_of(&url, &[]).unwrap_err().to_string(),
            format!(
                "sslrootcert file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                empty.path().display()
            )
        );
    }

    #[test]
    fn url_wins_over_env_and_env_applies_otherwise() {
        let url = "postgres://amp@db/amp?sslmode=disable";
        assert_eq!(
            mode_of(url, &[("PGSSLMODE", "verify-full")]),
            Ok("Disable".to_owned())
        );
        let url = "postgres://amp@db/amp";
        assert_eq!(
            mode_of(url, &[("PGSSLMODE", "verify-full")]),
            Ok("VerifyFull".to_owned())
        );
        assert_eq!(mode_of(url, &[]), Ok("Prefer".to_owned()));
    }

    #[test]
    fn unknown_env_mode_is_an_error() {
        let err = mode_of("postgres://amp@db/amp", &[("PGSSLMODE", "verify_full")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PGSSLMODE=\"verify_full\" is not an sslmode; use disable, prefer, require, verify-ca or verify-full"
        );
    }

    #[test]
    fn require_with_a_root_cert_verifies_the_chain() {
        let ca = ca_file();
        let url = format!(
            "postgres://amp@db/amp?sslmode=require&sslrootcert={}",
            ca.path().display()
        );
        assert_eq!(mode_of(&url, &[]), Ok("VerifyCa".to_owned()));
        let ca_path = ca.path().to_string_lossy().into_owned();
        let env = [
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", ca_path.as_str()),
        ];
        assert_eq!(
            mode_of("postgres://amp@db/amp", &env),
            Ok("VerifyCa".to_owned())
        );
        assert_eq!(
            mode_of("postgres://amp@db/amp?sslmode=require", &[]),
            Ok("Require".to_owned())
        );
        assert_eq!(
            mode_of("postgres://amp@db/amp?sslmode=allow", &[]),
            Ok("Prefer".to_owned())
        );
    }

    #[test]
    fn half_a_client_certificate_is_an_error() {
        let err = mode_of("postgres://amp@db/amp?sslcert=/x.crt", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sslcert is set but sslkey is not: a client certificate needs both sslcert and sslkey"
        );
        let err = mode_of("postgres://amp@db/amp", &[("PGSSLKEY", "/k.key")]).unwrap_err();
        assert_eq!(err, half("sslkey", "sslcert"));
    }

    #[test]
    fn unreadable_files_name_the_setting_and_path() {
        let url = "postgres://amp@db/amp?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt";
        assert_eq!(
            mode_of(url, &[]).unwrap_err().to_string(),
            "sslrootcert file /nonexistent/ca.crt cannot be read: entity not found"
        );
        // Not read at all when TLS is off.
        let url = "postgres://amp@db/amp?sslmode=disable&sslrootcert=/nonexistent/ca.crt";
        assert_eq!(mode_of(url, &[]), Ok("Disable".to_owned()));
        let url = "postgres://amp@db/amp?sslrootcert=system";
        assert_eq!(mode_of(url, &[]), Err(TlsConfigError::SystemRoots));
    }

    #[test]
    fn encrypted_keys_are_refused_without_showing_them() {
        let cert = ca_file();
        let key = ca_file();
        let body = "MIIFHzBJBgkqhkiG9w0BBQ0wPDAbBgkqhkiG9w0BBQwwDgQI";
        let pem = format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----\n"
        );
        std::fs::write(key.path(), &pem).expect("write key");
        let url = format!(
            "postgres://amp@db/amp?sslcert={}&sslkey={}&sslpassword=pw",
            cert.path().display(),
            key.path().display()
        );
        let err = mode_of(&url, &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "sslkey {} is an encrypted private key; sslpassword is not supported: store it decrypted (openssl pkey -in KEY -out KEY.plain) in a Secret",
                key.path().display()
            )
        );
        let env = [("PGSSLCERT", "/dev/null"), ("PGSSLKEY", pem.as_str())];
        let err = mode_of("postgres://amp@db/amp", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PGSSLKEY (inline PEM) is an encrypted"),
            "{err}"
        );
        assert!(!err.contains(body), "{err}");
    }
}
