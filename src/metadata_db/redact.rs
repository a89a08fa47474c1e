//! Database URLs carry passwords; nothing we log or print may show one.
//!
//! A password can hide in four places, and every one is covered: the userinfo
//! (`postgres://amp:pw@db/amp`), the query (`?password=pw`, which sqlx accepts too),
//! a libpq key=value DSN (`host=db password=pw`; sqlx refuses it, but the error that
//! says so must not print it), and percent-encoded forms of any of these (`p%40ss`),
//! which error texts may show decoded.

use std::fmt;

use url::Url;
use url::form_urlencoded;

const UNPARSEABLE: &str = "<unparseable database URL>";
const MASK: &str = "***";

/// Query / DSN keys whose values are secrets (libpq's and sqlx's names).
fn is_secret_key(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "sslpassword" | "passwd" | "pass" | "pwd"
    )
}

/// A secret value: under a secret key, or a private key given inline as PEM (sqlx takes
/// `sslkey=-----BEGIN PRIVATE KEY-----...`). A key file's path is no secret and stays
/// visible: messages about an unreadable key name it.
fn is_secret(key: &str, value: &str) -> bool {
    is_secret_key(key)
        || (matches!(key.to_ascii_lowercase().as_str(), "sslkey" | "ssl-key")
            && value.contains("PRIVATE KEY"))
}

/// The URL with any password replaced by `***`. Unparseable input is replaced whole,
/// since we cannot tell which part is secret.
pub fn redact_url(raw: &str) -> String {
    if raw.contains("://") {
        return match Url::parse(raw) {
            Ok(url) => redact_parsed(url),
            Err(_) => UNPARSEABLE.to_owned(),
        };
    }
    match parse_kv_dsn(raw) {
        Some(pairs) if !pairs.is_empty() => pairs
            .iter()
            .map(|p| {
                if is_secret(&p.key, &p.value) {
                    format!("{}={MASK}", p.key)
                } else {
                    format!("{}={}", p.key, p.raw_value)
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => UNPARSEABLE.to_owned(),
    }
}

fn redact_parsed(mut url: Url) -> String {
    if url.password().is_some() {
        let _ = url.set_password(Some(MASK));
    }
    let has_secret_param = url.query_pairs().any(|(k, v)| is_secret(&k, &v));
    if has_secret_param {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret(&k, &v) {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `***` is percent-encoded by the serializer in the query; show it plainly.
    url.to_string().replace("%2A%2A%2A", MASK)
}

/// Every text under which a password of `raw` could show up in an error message:
/// as written (percent-encoded or quoted) and decoded. Longest first, so replacing
/// them in order never leaves a tail of a longer one behind.
pub(crate) fn secrets(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if raw.contains("://") {
        // By hand first: this also covers URLs the url crate refuses (a bad port, ...).
        if let Some((_, after_scheme)) = raw.split_once("://") {
            let authority = after_scheme
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default();
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && let Some((_, pw)) = userinfo.split_once(':')
            {
                out.push(pw.to_owned());
                out.push(percent_decode(pw));
            }
            if let Some((_, query)) = after_scheme.split_once('?') {
                for piece in query.split(['&', '#']) {
                    if let Some((k, v)) = piece.split_once('=')
                        && is_secret(&percent_decode(k), &percent_decode(v))
                    {
                        out.push(v.to_owned());
                        out.push(percent_decode(v));
                    }
                }
            }
        }
        if let Ok(url) = Url::parse(raw) {
            if let Some(pw) = url.password() {
                out.push(pw.to_owned());
                out.push(percent_decode(pw));
            }
            if let Some(query) = url.query() {
                for piece in query.split('&') {
                    if let Some((k, v)) = piece.split_once('=')
                        && is_secret(&percent_decode(k), &percent_decode(v))
                    {
                        out.push(v.to_owned());
                    }
                }
                for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                    if is_secret(&k, &v) {
                        out.push(v.into_owned());
                    }
                }
            }
        }
    } else if let Some(pairs) = parse_kv_dsn(raw) {
        for p in pairs.into_iter().filter(|p| is_secret(&p.key, &p.value)) {
            out.push(p.raw_value);
            out.push(p.value);
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// `text` with the URL and every form of its password replaced.
pub fn scrub_text(text: &str, raw_url: &str) -> String {
    let mut text = if raw_url.is_empty() {
        text.to_owned()
    } else {
        text.replace(raw_url, &redact_url(raw_url))
    };
    for secret in secrets(raw_url) {
        text = text.replace(&secret, MASK);
    }
    text
}

/// sqlx errors can echo the URL (or its password) back; strip it before the error travels.
pub(crate) fn scrub_error(err: sqlx::Error, raw_url: &str) -> sqlx::Error {
    let text = err.to_string();
    let scrubbed = scrub_text(&text, raw_url);
    if scrubbed == text {
        err
    } else {
        sqlx::Error::Configuration(scrubbed.into())
    }
}

struct KvPair {
    key: String,
    /// As written (quotes and escapes kept).
    raw_value: String,
    /// Unquoted and unescaped.
    value: String,
}

/// A libpq key=value connection string (`host=db user=amp password='a b'`), or None when
/// `raw` is not one.
fn parse_kv_dsn(raw: &str) -> Option<Vec<KvPair>> {
    let mut pairs = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace())?;
        let key = &rest[..key_end];
        if key.is_empty() {
            return None;
        }
        rest = rest[key_end..].trim_start();
        rest = rest.strip_prefix('=')?.trim_start();
        let (raw_value, value, tail) = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end?;
            (&rest[..end + 2], value, &quoted[end + 1..])
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let mut value = String::new();
            let mut chars = rest[..end].chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
            (&rest[..end], value, &rest[end..])
        };
        pairs.push(KvPair {
            key: key.to_owned(),
            raw_value: raw_value.to_owned(),
            value,
        });
        rest = tail.trim_start();
    }
    Some(pairs)
}

/// A database URL whose `Debug` and `Display` show it redacted: argument and config
/// structs derive `Debug`, and a `{:?}` of one must never print the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", redact_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "S3cr3tPw";

    fn assert_hidden(raw: &str, secret: &str) {
        let redacted = redact_url(raw);
        assert!(!redacted.contains(secret), "{raw} -> {redacted}");
        assert!(!format!("{:?}", DatabaseUrl::new(raw)).contains(secret));
        assert!(!DatabaseUrl::new(raw).to_string().contains(secret));
        let err = sqlx::Error::Configuration(format!("failed for {raw}: {secret}").into());
        let scrubbed = scrub_error(err, raw).to_string();
        assert!(!scrubbed.contains(secret), "{scrubbed}");
    }

    #[test]
    fn password_is_hidden() {
        assert_eq!(
            redact_url("postgres://amp:s3cr3t@db:5432/amp?sslmode=disable"),
            "postgres://amp:***@db:5432/amp?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://amp@db/amp"), "postgres://amp@db/amp");
        assert_eq!(redact_url("not a url s3cr3t"), "<unparseable database URL>");
    }

    #[test]
    fn userinfo_password() {
        assert_hidden(&format!("postgres://amp:{S}@db:5432/amp"), S);
    }

    #[test]
    fn query_password() {
        let raw = format!("postgres://amp@db/amp?sslmode=disable&password={S}");
        assert_eq!(
            redact_url(&raw),
            "postgres://amp@db/amp?sslmode=disable&password=***"
        );
        assert_hidden(&raw, S);
        // Any case, and libpq's sslpassword.
        assert_hidden(&format!("postgresql://amp@db/amp?PassWord={S}"), S);
        assert_hidden(&format!("postgres://amp@db/amp?sslpassword={S}"), S);
    }

    #[test]
    fn key_material_is_hidden_and_key_paths_are_not() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
        let body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";
        let mut url = url::Url::parse("postgres://amp@db/amp?sslmode=verify-full").expect("url");
        url.query_pairs_mut().append_pair("sslkey", pem);
        assert_hidden(url.as_str(), pem);
        assert!(!redact_url(url.as_str()).contains(body));
        assert_eq!(
            redact_url(url.as_str()),
            "postgres://amp@db/amp?sslmode=verify-full&sslkey=***"
        );
        let dsn = format!("host=db sslkey='{pem}' dbname=amp");
        assert_hidden(&dsn, pem);
        assert_eq!(redact_url(&dsn), "host=db sslkey=*** dbname=amp");
        // Paths stay: they are what a person needs to fix an unreadable key.
        let raw = format!("postgres://amp@db/amp?sslkey=/etc/amp/db-tls/tls.key&sslpassword={S}");
        assert_eq!(
            redact_url(&raw),
            "postgres://amp@db/amp?sslkey=%2Fetc%2Famp%2Fdb-tls%2Ftls.key&sslpassword=***"
        );
        assert_hidden(&raw, S);
    }

    #[test]
    fn percent_encoded_passwords() {
        // Userinfo: error texts may show the decoded `p@ss/w:rd`.
        let raw = "postgres://amp:p%40ss%2Fw%3Ard@db/amp";
        assert_hidden(raw, "p@ss/w:rd");
        assert_hidden(raw, "p%40ss%2Fw%3Ard");
        // Query, with `+` and `%20` for spaces.
        let raw = "postgres://amp@db/amp?password=pa%26ss+wo%20rd";
        assert_hidden(raw, "pa&ss wo rd");
        assert_hidden(raw, "pa%26ss+wo%20rd");
    }

    #[test]
    fn key_value_dsn_password() {
        let raw = format!("host=db port=5432 user=amp password={S} dbname=amp");
        assert_eq!(
            redact_url(&raw),
            "host=db port=5432 user=amp password=*** dbname=amp"
        );
        assert_hidden(&raw, S);
        // Quoted, with spaces and escapes; spaces around `=`.
        let raw = r"host=db password = 'my s\'ecret pw' dbname=amp";
        assert_eq!(redact_url(raw), "host=db password=*** dbname=amp");
        assert_hidden(raw, "my s'ecret pw");
        assert_hidden(raw, r"'my s\'ecret pw'");
        // Malformed: replaced whole.
        assert_eq!(redact_url(&format!("host=db password='{S}")), UNPARSEABLE);
    }

    #[test]
    fn unparseable_urls_are_replaced_whole() {
        assert_eq!(
            redact_url(&format!("postgres://amp:{S}@db:notaport/amp")),
            UNPARSEABLE
        );
        assert_hidden(&format!("postgres://amp:{S}@db:notaport/amp"), S);
    }

    #[test]
    fn debug_of_the_argument_structs_hides_the_password() {
        // Each role's whole command line: `cli::ampd`'s tests.
        let raw = format!("postgres://amp:{S}@db/amp?password={S}");
        let args = crate::worker::WorkerArgs {
            node_id: "w1".into(),
            credentials: super::super::DbCredentialArgs {
                database_url: Some(DatabaseUrl::new(raw.clone())),
                database_url_file: None,
                database_password_file: None,
            },
            heartbeat_interval: std::time::Duration::from_secs(1),
            lock_wait: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(1),
            db_timeout: std::time::Duration::from_secs(1),
            listen: None,
        };
        let config =
            crate::worker::WorkerConfig::from_args(&args, crate::build_info::BuildInfo::current())
                .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains(S), "{debug}");
    }
}
