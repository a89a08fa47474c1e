//! A throwaway PostgreSQL server: initdb into a temp dir, start on a free loopback port,
//! stop and delete on drop. Finds the binaries via `AMP_PG_BIN`, `pg_config --bindir`,
//! `/usr/lib/postgresql/*/bin` (newest) or PATH. When running as root (CI containers),
//! the server runs as the `postgres` system user, since PostgreSQL refuses root.
//!
//! The server serves TLS by default (a per-run CA, see [`super::pg_tls`]) and still
//! accepts plain connections, so sqlx's default `sslmode=prefer` exercises TLS in every
//! test; [`PgAccess`] makes it TLS-only, certificate-authenticated or plain.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use super::pg_tls::{PgAccess, PgTlsError, PgTlsFiles, ServerCert, unrelated_ca_pem};

#[derive(Debug, thiserror::Error)]
pub enum PgHarnessError {
    #[error(
        "PostgreSQL server binaries not found (looked at $AMP_PG_BIN, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); install them with `apt-get install -y postgresql`"
    )]
    BinariesNotFound,
    #[error("running as root but there is no `postgres` system user to run the server as")]
    NoServiceUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("making test certificates: {0}")]
    Certificates(#[from] PgTlsError),
    #[error("{command} failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgHarnessError {
    let what = what.into();
    move |source| PgHarnessError::Io { what, source }
}

/// Extra `postgres -c name=value` settings, e.g. `max_connections`.
#[derive(Debug, Clone, Default)]
pub struct PgSettings(pub Vec<(String, String)>);

impl PgSettings {
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.0.push((name.to_owned(), value.to_string()));
        self
    }
}

/// Everything [`TempPostgres::start_opts`] can vary.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    pub settings: PgSettings,
    pub access: PgAccess,
    pub server_cert: ServerCert,
}

pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    settings: PgSettings,
    tls: Option<PgTlsFiles>,
    /// [`Self::url_for`] gives verify-full URLs (`AMP_TEST_PG_TLS=verify-full`).
    verify_by_default: bool,
    running: bool,
}

impl TempPostgres {
    /// initdb + start with test-friendly settings (fsync off).
    pub fn start() -> Result<Self, PgHarnessError> {
        Self::start_with(
            PgSettings::default()
                .set("fsync", "off")
                .set("max_connections", 200),
        )
    }

    /// `AMP_TEST_PG_TLS=verify-full` makes these servers TLS-only (`hostssl`) and their
    /// [`Self::url`] verify-full, so a whole suite (e.g. `e2e/run.sh`) runs with TLS
    /// required; by default TLS is offered and plain connections are accepted.
    pub fn start_with(settings: PgSettings) -> Result<Self, PgHarnessError> {
        let required = std::env::var("AMP_TEST_PG_TLS").is_ok_and(|v| v == "verify-full");
        let mut pg = Self::start_opts(PgOptions {
            settings,
            access: if required {
                PgAccess::TlsOnly
            } else {
                PgAccess::TlsOffered
            },
            ..PgOptions::default()
        })?;
        pg.verify_by_default = required;
        Ok(pg)
    }

    /// The default settings (fsync off) with the given access rules.
    pub fn start_access(access: PgAccess) -> Result<Self, PgHarnessError> {
        Self::start_opts(PgOptions {
            settings: PgSettings::default()
                .set("fsync", "off")
                .set("max_connections", 200),
            access,
            ..PgOptions::default()
        })
    }

    /// A server for a benchmark and the URL to reach it: plain by default, so figures
    /// stay comparable with earlier ones; `AMP_BENCH_DB_TLS=verify-full` makes it
    /// TLS-only and the URL verify-full (the production setting for managed databases).
    pub fn start_bench(settings: PgSettings) -> Result<(Self, String), PgHarnessError> {
        let tls = std::env::var("AMP_BENCH_DB_TLS").is_ok_and(|v| v == "verify-full");
        let pg = Self::start_opts(PgOptions {
            settings,
            access: if tls {
                PgAccess::TlsOnly
            } else {
                PgAccess::Plain
            },
            ..PgOptions::default()
        })?;
        let url = if tls {
            pg.url_verify_full("postgres")
        } else {
            pg.base_url("postgres")
        };
        Ok((pg, url))
    }

    pub fn start_opts(opts: PgOptions) -> Result<Self, PgHarnessError> {
        let bin = find_bin_dir().ok_or(PgHarnessError::BinariesNotFound)?;
        let run_as = service_user()?;
        let dir = tempfile::Builder::new()
            .prefix("amp-pg-")
            .tempdir()
            .map_err(io("create temp dir"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(io("chown temp dir"))?;
        }
        let mut pg = Self {
            dir,
            bin,
            port: free_port()?,
            run_as,
            settings: opts.settings,
            tls: None,
            verify_by_default: false,
            running: false,
        };
        pg.initdb()?;
        pg.configure_access(opts.access, &opts.server_cert)?;
        pg.start_server()?;
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the default database, as the superuser `amp` (trust auth on loopback).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// With `AMP_TEST_PG_TLS=verify-full` (see [`TempPostgres::start_with`]) the URL
    /// verifies the server as libpq's `verify-full` against this run's CA.
    pub fn url_for(&self, database: &str) -> String {
        if self.verify_by_default {
            self.url_verify_full(database)
        } else {
            self.base_url(database)
        }
    }

    fn base_url(&self, database: &str) -> String {
        format!("postgres://amp@127.0.0.1:{}/{database}", self.port)
    }

    /// `url_for(database)` verified as libpq's `verify-full` against this run's CA.
    pub fn url_verify_full(&self, database: &str) -> String {
        let ca = self.tls.as_ref().map(|t| t.ca.display().to_string());
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.base_url(database),
            ca.unwrap_or_default()
        )
    }

    /// This run's certificates (None for [`PgAccess::Plain`]).
    pub fn tls_files(&self) -> Option<&PgTlsFiles> {
        self.tls.as_ref()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates a database and returns its URL (isolates tests sharing one server).
    pub fn create_database(&self, name: &str) -> Result<String, PgHarnessError> {
        // Over the Unix socket (`local ... trust`): TCP may demand a client certificate.
        let socket_dir = self.dir.path().to_string_lossy().into_owned();
        self.run(Command::new(self.bin.join("psql")).args([
            "-h",
            &socket_dir,
            "-p",
            &self.port.to_string(),
            "-U",
            "amp",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE \"{name}\""),
        ]))?;
        Ok(self.url_for(name))
    }

    /// Fast shutdown (clients are disconnected, as in a real DB restart or failover).
    pub fn stop(&mut self) -> Result<(), PgHarnessError> {
        if self.running {
            self.pg_ctl(&["stop", "-m", "fast", "-w"])?;
            self.running = false;
        }
        Ok(())
    }

    /// Starts the stopped server again on the same port and data.
    pub fn restart_after_stop(&mut self) -> Result<(), PgHarnessError> {
        self.start_server()
    }

    fn initdb(&self) -> Result<(), PgHarnessError> {
        self.run(Command::new(self.bin.join("initdb")).args([
            "-D",
            &self.data_dir().to_string_lossy(),
            "-U",
            "amp",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]))
        .map(drop)
    }

    /// Writes certificates and `pg_hba.conf` for `access` and adds the `ssl` settings.
    fn configure_access(
        &mut self,
        access: PgAccess,
        server: &ServerCert,
    ) -> Result<(), PgHarnessError> {
        if access == PgAccess::Plain {
            self.settings = std::mem::take(&mut self.settings).set("ssl", "off");
            return Ok(());
        }
        let files = PgTlsFiles::generate(&self.dir.path().join("tls"), server)?;
        // PostgreSQL refuses a key file others can read, or one it does not own.
        std::fs::set_permissions(&files.server_key, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod server.key"))?;
        if let Some((uid, gid)) = self.run_as {
            for path in [&files.server_key, &files.server_cert, &files.ca] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(io(format!("chown {}", path.display())))?;
            }
        }
        let hba = match access {
            PgAccess::TlsOffered | PgAccess::Plain => None,
            PgAccess::TlsOnly => Some("hostssl all all 127.0.0.1/32 trust\n"),
            PgAccess::ClientCert => Some("hostssl all all 127.0.0.1/32 cert\n"),
        };
        if let Some(rule) = hba {
            // Unix socket: the harness's own psql. TCP: the rule alone, so plain TCP
            // connections find no entry (as on a managed server that forces TLS).
            let conf = format!("local all all trust\n{rule}");
            std::fs::write(self.data_dir().join("pg_hba.conf"), conf)
                .map_err(io("write pg_hba.conf"))?;
        }
        self.settings = std::mem::take(&mut self.settings)
            .set("ssl", "on")
            .set("ssl_cert_file", files.server_cert.display())
            .set("ssl_key_file", files.server_key.display())
            .set("ssl_ca_file", files.ca.display());
        self.tls = Some(files);
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), PgHarnessError> {
        let mut opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        for (name, value) in &self.settings.0 {
            opts.push_str(&format!(" -c {name}={value}"));
        }
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "30",
            "-l",
            &log.to_string_lossy(),
            "-o",
            &opts,
        ])?;
        self.running = true;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, PgHarnessError> {
        self.run(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .args(args),
        )
    }

    fn run(&self, cmd: &mut Command) -> Result<Output, PgHarnessError> {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(self.dir.path());
        let rendered = format!("{cmd:?}");
        let out = cmd.output().map_err(io(format!("run {rendered}")))?;
        if out.status.success() {
            Ok(out)
        } else {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            Err(PgHarnessError::CommandFailed {
                command: rendered,
                status: out.status.to_string(),
                stderr: format!("{}{}", String::from_utf8_lossy(&out.stderr), log),
            })
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

fn free_port() -> Result<u16, PgHarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("find a free port"))?;
    let port = listener.local_addr().map_err(io("read bound port"))?.port();
    Ok(port)
}

/// The directory holding initdb, pg_ctl and postgres.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("AMP_PG_BIN").map(PathBuf::from) {
        return has_server(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| has_server(dir))
}

/// (uid, gid) of the `postgres` user when we are root; None otherwise.
fn service_user() -> Result<Option<(u32, u32)>, PgHarnessError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("read /etc/passwd"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .map(Some)
        .ok_or(PgHarnessError::NoServiceUser)
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
