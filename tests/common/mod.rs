//! Shared helpers for integration tests: real PostgreSQL, real `ampd` processes.
#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use amp_operator::metadata_db;
use amp_operator::testing::postgres::TempPostgres;
use sqlx::PgPool;

pub mod amp_api;
pub mod blackhole;
pub mod cluster;

pub const AMPD: &str = env!("CARGO_BIN_EXE_ampd");

/// A fresh server with the schema applied.
pub async fn migrated_db() -> (TempPostgres, PgPool) {
    let pg = TempPostgres::start().expect("start throwaway PostgreSQL");
    let pool = metadata_db::connect_pool(&pg.url(), "tests", 5)
        .await
        .expect("connect");
    metadata_db::migrate(&pool).await.expect("migrate");
    (pg, pool)
}

/// A child process that is SIGTERMed (then killed) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            child,
            name: name.to_owned(),
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `timeout` for exit; returns status and (stdout, stderr).
    pub fn wait_for_exit(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let out = read_all(self.child.stdout.take());
                let err = read_all(self.child.stderr.take());
                return (status, out, err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = read_all(self.child.stderr.take());
                panic!(
                    "{} did not exit within {timeout:?}; stderr:\n{err}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(self) -> (ExitStatus, String, String) {
        self.signal(libc::SIGTERM);
        self.wait_for_exit(Duration::from_secs(10))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut s = String::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_string(&mut s);
    }
    s
}

/// `ampd operator` on `namespace` of the cluster in `kubeconfig`, probes on a free port,
/// a 3 s lease, warnings only.
pub fn operator(
    kubeconfig: &std::path::Path,
    namespace: &str,
    db_url: &str,
    identity: &str,
) -> Command {
    let mut cmd = Command::new(AMPD);
    cmd.args(["--log-format", "json", "operator", "--namespace", namespace])
        .args(["--listen", &free_addr(), "--lease-duration", "3s"])
        .env("KUBECONFIG", kubeconfig)
        .env("AMP_DATABASE_URL", db_url)
        .env("POD_NAME", identity)
        .env("RUST_LOG", "warn")
        .env_remove("KUBERNETES_SERVICE_HOST");
    cmd
}

/// `ampd worker` for `node_id` with a fixed reported version.
pub fn worker(url: &str, node_id: &str, version: &str) -> Command {
    let mut cmd = Command::new(AMPD);
    cmd.args([
        "--log-format",
        "text",
        "worker",
        &format!("--node-id={node_id}"),
        "--database-url",
        url,
    ])
    .env("AMPD_VERSION", version)
    .env("AMPD_COMMIT_SHA", format!("sha-{version}"))
    .env("AMPD_COMMIT_TIMESTAMP", "2025-10-30T10:00:00Z")
    .env("AMPD_BUILD_DATE", "2025-10-30")
    .env_remove("AMP_NODE_ID")
    .env_remove("AMP_DATABASE_URL");
    cmd
}

pub fn spawn_worker(url: &str, node_id: &str, version: &str) -> Proc {
    Proc::spawn(
        &format!("worker {node_id}"),
        &mut worker(url, node_id, version),
    )
}

/// Polls until the worker row exists and returns it.
pub async fn wait_registered(
    pool: &PgPool,
    node_id: &str,
    timeout: Duration,
) -> metadata_db::WorkerRow {
    let id = amp_operator::node_id::NodeId::parse(node_id).expect("valid id");
    amp_operator::testing::postgres::eventually(timeout, || async {
        metadata_db::get_worker(pool, id.as_str())
            .await
            .ok()
            .flatten()
    })
    .await
    .unwrap_or_else(|| panic!("{node_id} did not register within {timeout:?}"))
}

/// Minimal HTTP/1.0 GET over loopback (status code, body); no client library needed.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A loopback address with a currently free port.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// Registers `id` directly in the DB (no worker process), as version `version`, and holds
/// its node id lock (Amp's key) on a session of its own until the test process ends, as
/// a running worker does: the operator reads a free lock as a stopped worker. Calling it
/// again for the same id is a restart: the previous "process" session ends first.
pub async fn register_row(pool: &PgPool, id: &str, version: &str) {
    let previous = LIVE_SESSIONS.lock().expect("sessions").remove(id);
    if let Some(old) = previous {
        use sqlx::Connection;
        let _ = old.close().await;
    }
    register_row_unlocked(pool, id, version).await;
    let mut conn = pool.acquire().await.expect("lock session").detach();
    // The ended session's backend may take a moment to exit and free the lock.
    let mut locked = false;
    for _ in 0..50 {
        locked = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .expect("lock");
        if locked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(locked, "{id} is locked by someone else");
    LIVE_SESSIONS
        .lock()
        .expect("sessions")
        .insert(id.to_owned(), conn);
}

/// Sessions that hold the locks of [`register_row`]'s rows, by node id.
static LIVE_SESSIONS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, sqlx::PgConnection>>,
> = std::sync::LazyLock::new(Default::default);

/// One session holding the node id locks (Amp's key) of `ids`, as running worker
/// processes would, for as long as the returned connection lives.
pub async fn hold_node_id_locks(url: &str, ids: &[&str]) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("lock session");
    for id in ids {
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .expect("lock");
        assert!(locked, "{id} is locked by someone else");
    }
    conn
}

/// [`register_row`] without the lock: a worker that registered and is gone.
pub async fn register_row_unlocked(pool: &PgPool, id: &str, version: &str) {
    let info = amp_operator::build_info::BuildInfo {
        version: version.into(),
        commit_sha: "8b065bde".into(),
        commit_timestamp: "2025-10-30T09:00:00Z".into(),
        build_date: "2025-10-30".into(),
    };
    let id = amp_operator::node_id::NodeId::parse(id).expect("valid id");
    metadata_db::register(pool, &id, &info, None)
        .await
        .expect("register");
}

/// `ampd admin-api` on a free loopback port, once it answers `/healthz`.
pub async fn start_admin_api(url: &str, extra: &[&str]) -> (Proc, String) {
    let addr = free_addr();
    let api = Proc::spawn(
        "admin-api",
        Command::new(AMPD)
            .args([
                "--log-format",
                "json",
                "admin-api",
                "--listen",
                &addr,
                "--database-url",
                url,
            ])
            .args(extra),
    );
    let up = amp_operator::testing::postgres::eventually(Duration::from_secs(15), || async {
        http_get(&addr, "/healthz").ok().map(|_| ())
    });
    assert!(up.await.is_some(), "admin API listening");
    (api, addr)
}

/// The commands of the ```bash blocks of the `## heading` section of `doc` (a path from
/// the crate root), one per line, in order: docs tests run each of them.
pub fn doc_section_commands(doc: &str, heading: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("{doc} has no section {heading:?}"));
    let section = &text[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut commands = Vec::new();
    let mut in_bash = false;
    for line in section.lines().map(str::trim) {
        match line {
            "```bash" => in_bash = true,
            "```" => in_bash = false,
            l if in_bash && !l.is_empty() && !l.starts_with('#') => commands.push(l.to_owned()),
            _ => {}
        }
    }
    commands
}
