//! Where secrets come from: the database URL and password (a flag, an environment
//! variable or a file; `PGPASSFILE` as libpq reads it) and the Admin API's auth token.
//!
//! Files are read again for every new connection (the worker) or every
//! [`RELOAD_PERIOD`] (reader pools, the auth token), so a rotated file (a Kubernetes
//! Secret volume, a Vault agent, the Secrets Store CSI driver) is used without a restart.
//! Established sessions are kept: PostgreSQL's `ALTER ROLE ... PASSWORD` does not end
//! them, so the worker keeps its session and its lock across a rotation.
//!
//! Nothing here logs or formats a file's content: errors name the file and the I/O cause;
//! a password read from a file is placed into the URL, whose redaction
//! ([`super::redact`]) then covers it in every message, as a password written there.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use super::{DatabaseUrl, DbError};
use crate::secret_file::{SecretFile, SecretFileError};

/// How often reader pools and the auth token look at their files again.
pub const RELOAD_PERIOD: Duration = Duration::from_secs(1);

/// The database credential flags every role takes (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct DbCredentialArgs {
    /// Metadata DB URL, e.g. postgres://user:pass@host:5432/amp (the Admin API and the
    /// operator need only a read-only role); this or --database-url-file is required.
    /// Visible to anything that reads the process environment or the Pod spec: prefer
    /// --database-url-file.
    #[arg(
        long,
        env = "AMP_DATABASE_URL",
        hide_env_values = true,
        required_unless_present = "database_url_file",
        conflicts_with = "database_url_file"
    )]
    pub database_url: Option<DatabaseUrl>,
    /// File holding the metadata DB URL (trailing whitespace ignored). Read again for
    /// every new connection, so a rotated file is used without a restart.
    #[arg(long, env = "AMP_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// File holding the password of the URL's user (trailing newline ignored); it
    /// replaces any password in the URL and is read again for every new connection.
    /// Without it and without a password in the URL, PGPASSFILE (else ~/.pgpass, mode
    /// 0600) is read as libpq does, also for every new connection.
    #[arg(long, env = "AMP_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,
}

/// Where the database URL and password come from; [`Credentials::read`] gives their
/// content now.
#[derive(Debug, Clone)]
pub struct Credentials {
    url: UrlSource,
    password_file: Option<SecretFile>,
    /// `PGPASSFILE` as set at start: sqlx reads it when parsing a URL without a password;
    /// watched here so a reader pool notices when it changes.
    passfile: Option<PathBuf>,
}

#[derive(Debug, Clone)]
enum UrlSource {
    Given(DatabaseUrl),
    File(SecretFile),
}

/// The credentials as read at one moment: the URL with the password file's content
/// placed into it. Equal values mean nothing changed (the passfile by a digest).
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved {
    pub url: DatabaseUrl,
    passfile_digest: Option<u64>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn from_args(args: &DbCredentialArgs) -> Self {
        let url = match (&args.database_url_file, &args.database_url) {
            (Some(path), _) => UrlSource::File(SecretFile::new("the database URL file", path)),
            (None, Some(url)) => UrlSource::Given(url.clone()),
            // clap requires one of them; an empty URL fails as an invalid URL.
            (None, None) => UrlSource::Given(DatabaseUrl::new("")),
        };
        Self {
            url,
            password_file: args
                .database_password_file
                .as_ref()
                .map(|path| SecretFile::new("the database password file", path)),
            passfile: std::env::var_os("PGPASSFILE").map(PathBuf::from),
        }
    }

    /// A URL given directly (no files).
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: UrlSource::Given(DatabaseUrl::new(url)),
            password_file: None,
            passfile: None,
        }
    }

    /// Where the URL comes from, for a log line: the URL redacted, or the file's path.
    pub fn describe(&self) -> String {
        match &self.url {
            UrlSource::Given(url) => url.to_string(),
            UrlSource::File(file) => format!("from {}", file.path().display()),
        }
    }

    /// The URL and password as their sources hold them now.
    pub fn read(&self) -> Result<Resolved, SecretFileError> {
        let url = match &self.url {
            UrlSource::Given(url) => url.expose().to_owned(),
            UrlSource::File(file) => file.read()?,
        };
        let url = match &self.password_file {
            Some(file) => with_password(&url, &file.read()?),
            None => url,
        };
        Ok(Resolved {
            url: DatabaseUrl::new(url),
            passfile_digest: self.passfile.as_deref().and_then(digest_of),
        })
    }
}

/// A digest of a file's content (None when unreadable), to notice a change.
fn digest_of(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(hasher.finish())
}

/// `url` with `password` as its password (any password in it replaced). An
/// unparseable URL is returned as is: connecting then reports it, redacted.
fn with_password(url: &str, password: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if others.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(others);
    }
    // `set_password` keeps `%` as is (taken for an escape): encode it all ourselves.
    // byte_serialize writes a space as `+`, which userinfo does not decode.
    let encoded = url::form_urlencoded::byte_serialize(password.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    // A URL without a host (a Unix socket given as `?host=`) has no userinfo.
    if parsed.set_password(Some(&encoded)).is_err() {
        parsed.query_pairs_mut().append_pair("password", password);
    }
    parsed.to_string()
}

/// A lazy, bounded reader pool (see [`super::connect_pool_lazy_bounded`]) whose new
/// connections use the credentials' current content: a task looks at the files every
/// [`RELOAD_PERIOD`] and hands changed options to the pool. Open connections are kept.
pub fn reader_pool(
    credentials: &Credentials,
    application_name: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, DbError> {
    let first = credentials.read()?;
    let pool =
        super::connect_pool_lazy_bounded(&first.url, application_name, max_connections, timeout)?;
    let name = application_name.to_owned();
    keep_current(pool.clone(), credentials.clone(), first, move |url| {
        super::reader_options(url, &name, timeout)
    });
    Ok(pool)
}

/// Spawns the task that gives `pool` new connect options whenever the credentials
/// change; it ends when the pool is closed. A change that cannot be used (an unreadable
/// file, an invalid URL) keeps the previous options and is logged once.
pub fn keep_current(
    pool: PgPool,
    credentials: Credentials,
    mut seen: Resolved,
    rebuild: impl Fn(&str) -> Result<PgConnectOptions, DbError> + Send + 'static,
) {
    tokio::spawn(async move {
        let closed = pool.close_event();
        tokio::pin!(closed);
        let mut unreadable = false;
        loop {
            tokio::select! {
                _ = &mut closed => return,
                _ = tokio::time::sleep(RELOAD_PERIOD) => {}
            }
            let now = match credentials.read() {
                Ok(now) => now,
                Err(err) => {
                    if !unreadable {
                        tracing::warn!(error = %err, "cannot read the database credentials; new connections use the previous ones");
                    }
                    unreadable = true;
                    continue;
                }
            };
            unreadable = false;
            if now == seen {
                continue;
            }
            match rebuild(&now.url) {
                Ok(options) => {
                    pool.set_connect_options(options);
                    tracing::info!(
                        database = %now.url,
                        "the database credentials changed; new connections use them"
                    );
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the changed database credentials are not usable; new connections use the previous ones")
                }
            }
            seen = now;
        }
    });
}

/// The Admin API's bearer token: given, or read from a file (again at most every
/// [`RELOAD_PERIOD`], so a rotated token is accepted without a restart; while the file
/// cannot be read the last token read stays valid). `Debug` never shows it.
pub struct AuthToken {
    source: TokenSource,
}

enum TokenSource {
    Given(String),
    File {
        file: SecretFile,
        /// The last token read and when.
        last: Mutex<(Instant, String, bool)>,
    },
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            TokenSource::Given(_) => f.write_str("AuthToken(***)"),
            TokenSource::File { file, .. } => {
                write!(f, "AuthToken(from {})", file.path().display())
            }
        }
    }
}

impl AuthToken {
    /// The token of `--auth-token` / `--auth-token-file`; None when neither is set (or
    /// the given token is empty). A file must be readable at start.
    pub fn from_flags(
        token: Option<String>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, SecretFileError> {
        if let Some(path) = file {
            let file = SecretFile::new("the auth token file", path);
            let token = file.read()?;
            return Ok(Some(Self {
                source: TokenSource::File {
                    file,
                    last: Mutex::new((Instant::now(), token, false)),
                },
            }));
        }
        Ok(token.filter(|t| !t.is_empty()).map(|t| Self {
            source: TokenSource::Given(t),
        }))
    }

    /// The token valid now.
    pub fn current(&self) -> String {
        match &self.source {
            TokenSource::Given(token) => token.clone(),
            TokenSource::File { file, last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.0.elapsed() >= RELOAD_PERIOD {
                    last.0 = Instant::now();
                    match file.read() {
                        Ok(token) => {
                            last.1 = token;
                            last.2 = false;
                        }
                        Err(err) => {
                            if !last.2 {
                                tracing::warn!(error = %err, "cannot read the auth token file; the last token read stays valid");
                            }
                            last.2 = true;
                        }
                    }
                }
                last.1.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "p@ss/w:rd%20 x";

    #[test]
    fn a_password_file_replaces_the_urls_password_wherever_it_was() {
        for url in [
            "postgres://amp@db:5432/amp?sslmode=disable",
            "postgres://amp:old@db:5432/amp?sslmode=disable",
            "postgres://amp@db:5432/amp?password=old&sslmode=disable",
        ] {
            let merged = with_password(url, PW);
            let options: PgConnectOptions = merged.parse().expect("parses");
            assert_eq!(options.get_host(), "db", "{merged}");
            assert_eq!(options.get_username(), "amp");
            use sqlx::ConnectOptions;
            let password = options.to_url_lossy().password().map(|p| {
                url::form_urlencoded::parse(format!("p={p}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            });
            assert_eq!(password, Some(Some(PW.to_owned())), "{merged}");
            assert!(!merged.contains("old"), "{merged}");
            assert!(merged.contains("sslmode=disable"), "{merged}");
            // The redaction hides it, as a password written in the URL.
            let redacted = super::super::redact_url(&merged);
            assert!(!redacted.contains("p@ss") && !redacted.contains("p%40ss"));
            let err = sqlx::Error::Configuration(format!("bad {PW} in {merged}").into());
            let scrubbed = super::super::redact::scrub_error(err, &merged).to_string();
            assert!(!scrubbed.contains(PW), "{scrubbed}");
        }
        assert_eq!(with_password("not a url", PW), "not a url");
    }

    #[test]
    fn credentials_follow_their_files() {
        let dir = tempfile::tempdir().expect("dir");
        let (url_file, pw_file) = (dir.path().join("url"), dir.path().join("pw"));
        std::fs::write(&url_file, "postgres://amp@db/amp\n").expect("write");
        std::fs::write(&pw_file, "one\n").expect("write");
        let creds = Credentials::from_args(&DbCredentialArgs {
            database_url: None,
            database_url_file: Some(url_file.clone()),
            database_password_file: Some(pw_file.clone()),
        });
        let first = creds.read().expect("read");
        assert_eq!(first.url.expose(), "postgres://amp:one@db/amp");
        assert_eq!(creds.read().expect("read"), first);
        std::fs::write(&pw_file, "two").expect("write");
        let second = creds.read().expect("read");
        assert_ne!(second, first);
        assert_eq!(second.url.expose(), "postgres://amp:two@db/amp");
        assert!(!format!("{second:?}").contains("two"));
        assert_eq!(creds.describe(), format!("from {}", url_file.display()));
    }

    #[test]
    fn an_auth_token_file_is_read_at_start_and_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        assert!(AuthToken::from_flags(None, Some(&path)).is_err());
        std::fs::write(&path, "tok3n\n").expect("write");
        let token = AuthToken::from_flags(None, Some(&path))
            .expect("read")
            .expect("set");
        assert_eq!(token.current(), "tok3n");
        assert!(!format!("{token:?}").contains("tok3n"));
        let given = AuthToken::from_flags(Some("g1ven".into()), None)
            .expect("ok")
            .expect("set");
        assert_eq!(given.current(), "g1ven");
        assert!(!format!("{given:?}").contains("g1ven"));
        assert!(
            AuthToken::from_flags(Some(String::new()), None)
                .expect("ok")
                .is_none()
        );
    }
}
