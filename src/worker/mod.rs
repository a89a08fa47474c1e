//! The worker agent (`ampd worker`): lock the node id, register, heartbeat every second.
//!
//! One dedicated PostgreSQL session carries the advisory lock and the heartbeats, so
//! losing the session loses both together, and a worker can never heartbeat without
//! holding its lock. There is exactly one loop; reconnecting restarts it from the top.

mod probes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::build_info::BuildInfo;
use crate::metadata_db::{self, DbError};
use crate::node_id::{InvalidNodeId, NodeId};

pub use crate::backoff::Backoff;
pub use probes::WorkerProbes;

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// This worker's node id (letters, digits, '_', '-', '.'; starts with a letter).
    #[arg(long, env = "AMP_NODE_ID")]
    pub node_id: String,
    #[command(flatten)]
    pub credentials: metadata_db::DbCredentialArgs,
    /// Heartbeat period.
    #[arg(long, env = "AMP_HEARTBEAT_INTERVAL", default_value = "1s", value_parser = crate::bounds::bounded::<100, 60_000>)]
    pub heartbeat_interval: Duration,
    /// How long to keep retrying when another session holds this node id's lock
    /// (a replaced pod's session can linger until PostgreSQL's keepalives drop it).
    #[arg(long, env = "AMP_LOCK_WAIT", default_value = "60s", value_parser = crate::bounds::bounded::<0, 3_600_000>)]
    pub lock_wait: Duration,
    /// Upper bound of the reconnect backoff: bounds how long a worker takes to resume
    /// after the database returns.
    #[arg(long, env = "AMP_MAX_BACKOFF", default_value = "3s", value_parser = crate::bounds::bounded::<100, 300_000>)]
    pub max_backoff: Duration,
    /// Bound of every metadata DB call (connect, lock, register, heartbeat). A call that
    /// takes longer means a dead path (a network that drops packets sends no FIN and no
    /// RST): the session is dropped and a new one made.
    #[arg(long, env = "AMP_DB_TIMEOUT", default_value = "3s", value_parser = crate::bounds::bounded::<100, 600_000>)]
    pub db_timeout: Duration,
    /// Address for /healthz, /readyz and /metrics; none when omitted.
    #[arg(long, env = "AMP_WORKER_LISTEN")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    InvalidNodeId(#[from] InvalidNodeId),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "failed to acquire advisory lock for node id {node_id:?}: another worker (Amp's or ours) holds it; gave up after {waited:?}"
    )]
    LockHeld { node_id: String, waited: Duration },
    #[error(
        "refusing to register: this metadata DB has Amp's job scheduler (a `jobs` table), which assigns jobs to every worker with a fresh heartbeat, and `ampd worker` of amp-operator runs no jobs, so they would never run; run Amp's own `ampd worker` here and observe it with `ampd operator` / `ampd admin-api`"
    )]
    AmpSchedulesJobs,
    #[error(
        "refusing to register: found {0}, which amp-operator did not create and does not write; run Amp's own `ampd worker` against it, or point this worker at a DB prepared by `ampd migrate`"
    )]
    ForeignSchema(String),
    #[error(
        "this metadata DB has no workers table yet: run `ampd migrate` against it first (the Helm chart does, before the workers start)"
    )]
    NotMigrated,
    #[error("cannot serve probes on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl WorkerError {
    /// Exit code: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            WorkerError::InvalidNodeId(_)
            | WorkerError::Db(DbError::InvalidUrl { .. } | DbError::Credentials(_))
            | WorkerError::AmpSchedulesJobs
            | WorkerError::ForeignSchema(_) => 2,
            _ => 1,
        }
    }
}

/// Validated worker settings. `Debug` is written out: `credentials` can hold a password.
#[derive(Clone)]
pub struct WorkerConfig {
    pub node_id: NodeId,
    /// Read again for every new session: a rotated password file is used without a restart.
    pub credentials: metadata_db::Credentials,
    /// The URL as read at start (for logs, redacted).
    pub database_url: crate::metadata_db::DatabaseUrl,
    /// The credentials as read at start and the session options made from them (made
    /// once: making them logs each ignored URL parameter).
    pub first_session: (metadata_db::credentials::Resolved, PgConnectOptions),
    pub heartbeat_interval: Duration,
    pub lock_wait: Duration,
    pub max_backoff: Duration,
    pub db_timeout: Duration,
    pub info: BuildInfo,
    /// Pod, namespace, node and IP from the downward API, reported in `info.placement`.
    pub placement: Option<metadata_db::Placement>,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("node_id", &self.node_id)
            .field("database_url", &self.database_url)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("lock_wait", &self.lock_wait)
            .field("max_backoff", &self.max_backoff)
            .field("db_timeout", &self.db_timeout)
            .field("info", &self.info)
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

impl WorkerConfig {
    /// Validates everything before any connection is attempted.
    pub fn from_args(args: &WorkerArgs, info: BuildInfo) -> Result<Self, WorkerError> {
        let node_id = NodeId::parse(&args.node_id)?;
        let credentials = metadata_db::Credentials::from_args(&args.credentials);
        let first = credentials.read().map_err(DbError::from)?;
        // Checked now, so an invalid URL stops the worker before any connection.
        let options = session_options(&first.url, &node_id)?;
        Ok(Self {
            node_id,
            credentials,
            database_url: first.url.clone(),
            first_session: (first, options),
            heartbeat_interval: args.heartbeat_interval,
            lock_wait: args.lock_wait,
            max_backoff: args.max_backoff,
            db_timeout: args.db_timeout,
            info,
            placement: metadata_db::Placement::from_env(),
        })
    }
}

/// The options of the worker's session for `url`.
fn session_options(url: &str, node_id: &NodeId) -> Result<PgConnectOptions, DbError> {
    Ok(
        metadata_db::connect_options(url, &format!("ampd-worker/{node_id}"))?
            // A lost heartbeat is harmless (the next one follows in a second), so
            // heartbeats do not wait for the WAL flush.
            .options([("synchronous_commit", "off")]),
    )
}

/// Runs the agent until `shutdown` is cancelled (Ok), the lock is held elsewhere or an
/// error that waiting cannot fix (Err). Network-level failures are waited out with capped
/// backoff.
pub async fn run(
    config: WorkerConfig,
    probes: Arc<WorkerProbes>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let node = config.node_id.as_str();
    let mut backoff = Backoff::with_jitter_seed(
        Duration::from_millis(250),
        config.max_backoff,
        config.node_id.legacy_advisory_lock_key() as u64,
    );
    let mut memory = SessionMemory {
        used: Some(config.first_session.clone()),
        ..SessionMemory::default()
    };
    loop {
        probes.set_ready(false);
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // A failed attempt that already took long (a timeout) has waited its backoff.
        let attempt_started = Instant::now();
        match session(&config, &probes, &shutdown, &mut memory, &mut backoff).await {
            Ended::Shutdown => return Ok(()),
            Ended::Fatal(err) => return Err(err),
            // Reported once, by the caller's `error:` line (and termination message).
            // A rotation may have refused the credentials this session was made with:
            // when their files changed since, the next attempt uses the new ones.
            Ended::Failed { err, .. } | Ended::Lost(err)
                if err.is_permanent() && !memory.credentials_changed(&config.credentials) =>
            {
                return Err(WorkerError::Db(err));
            }
            Ended::Failed { step, err } => {
                let delay = backoff
                    .next_delay()
                    .saturating_sub(attempt_started.elapsed());
                warn!(node_id = node, step, op = err.op(), error = %err, retry_in = ?delay, "metadata DB call failed; retrying");
                if sleep_or_cancel(&shutdown, delay).await {
                    return Ok(());
                }
            }
            Ended::Lost(err) => {
                // Dropping the connection is enough: the server releases session locks.
                warn!(node_id = node, op = err.op(), error = %err, "lost the metadata DB session; reconnecting");
            }
        }
    }
}

/// What one session leaves for the next.
#[derive(Default)]
struct SessionMemory {
    /// Our last session: after a timeout we drop it, but the server may keep it (and our
    /// lock) alive for a long time when the network lost our FIN.
    previous: Option<metadata_db::SessionId>,
    /// `registered_at` means "this process started" (the seeds detect restarts by it): a
    /// reconnect after a DB blip resumes the row instead of registering again.
    registered: bool,
    /// The credentials of the last connection attempt and the options made from them.
    used: Option<(metadata_db::credentials::Resolved, PgConnectOptions)>,
}

impl SessionMemory {
    /// The options for a new session from the credentials as they are now (made again
    /// only when they changed: making them logs each ignored URL parameter).
    fn session_options(&mut self, config: &WorkerConfig) -> Result<PgConnectOptions, DbError> {
        let now = config.credentials.read()?;
        if let Some((used, options)) = &self.used
            && *used == now
        {
            return Ok(options.clone());
        }
        let options = session_options(&now.url, &config.node_id)?;
        info!(
            node_id = config.node_id.as_str(),
            database = %now.url,
            "the database credentials changed; the new session uses them"
        );
        self.used = Some((now, options.clone()));
        Ok(options)
    }

    /// Whether the credentials' sources hold something else than the last attempt used.
    fn credentials_changed(&self, credentials: &metadata_db::Credentials) -> bool {
        match (&self.used, credentials.read()) {
            (Some((used, _)), Ok(now)) => *used != now,
            _ => false,
        }
    }
}

/// How a session ended.
enum Ended {
    Shutdown,
    /// Refused before any write (another holder of the lock, a schema not ours).
    Fatal(WorkerError),
    /// A step before the heartbeats failed.
    Failed {
        step: &'static str,
        err: DbError,
    },
    /// The heartbeating session broke.
    Lost(DbError),
}

/// Runs `fut` unless shutdown comes first; a failure names its step.
async fn step<T>(
    shutdown: &CancellationToken,
    step: &'static str,
    fut: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, Ended> {
    match cancellable(shutdown, fut).await {
        None => Err(Ended::Shutdown),
        Some(Ok(v)) => Ok(v),
        Some(Err(err)) => Err(Ended::Failed { step, err }),
    }
}

/// One session: connect, end our stale session, check the schema, lock, register,
/// heartbeat until the session breaks or shutdown.
async fn session(
    config: &WorkerConfig,
    probes: &WorkerProbes,
    shutdown: &CancellationToken,
    memory: &mut SessionMemory,
    backoff: &mut Backoff,
) -> Ended {
    let mut conn = match prepare(config, probes, shutdown, memory).await {
        Ok(conn) => conn,
        Err(ended) => return ended,
    };
    backoff.reset();
    probes.set_ready(true);
    match heartbeat_loop(&mut conn, config, probes, shutdown).await {
        SessionEnd::Shutdown => {
            probes.set_ready(false);
            if tokio::time::timeout(config.db_timeout, release(conn, &config.node_id))
                .await
                .is_err()
            {
                warn!(
                    node_id = config.node_id.as_str(),
                    "unlock timed out; the server releases the lock when it drops the session"
                );
            }
            Ended::Shutdown
        }
        SessionEnd::Lost(err) => Ended::Lost(err),
    }
}

/// Every step before the first heartbeat; the lock comes before any write.
async fn prepare(
    config: &WorkerConfig,
    probes: &WorkerProbes,
    shutdown: &CancellationToken,
    memory: &mut SessionMemory,
) -> Result<PgConnection, Ended> {
    let (node, timeout) = (config.node_id.as_str(), config.db_timeout);
    let options = memory
        .session_options(config)
        .map_err(|err| Ended::Failed {
            step: "read the credentials",
            err,
        })?;
    let url = memory
        .used
        .as_ref()
        .map_or_else(|| config.database_url.clone(), |(used, _)| used.url.clone());
    let connect = metadata_db::connect_one(&options, &url);
    let mut conn = step(
        shutdown,
        "connect",
        metadata_db::bounded("connect", timeout, connect),
    )
    .await?;
    if let Some(old) = memory.previous {
        end_previous_session(&mut conn, old, node, timeout).await;
    }
    let inspect = metadata_db::schema::inspect(&mut conn);
    let report = step(
        shutdown,
        "inspect schema",
        metadata_db::bounded("inspect schema", timeout, inspect),
    )
    .await?;
    refuse_foreign(&report).map_err(Ended::Fatal)?;
    match step(
        shutdown,
        "take the node id lock",
        acquire_lock(&mut conn, config, shutdown),
    )
    .await?
    {
        LockOutcome::Acquired => {}
        LockOutcome::Cancelled => return Err(Ended::Shutdown),
        LockOutcome::HeldElsewhere(waited) => {
            return Err(Ended::Fatal(WorkerError::LockHeld {
                node_id: node.to_owned(),
                waited,
            }));
        }
    }
    let id = metadata_db::session_id(&mut conn);
    memory.previous = Some(
        step(
            shutdown,
            "read the session id",
            metadata_db::bounded("session id", timeout, id),
        )
        .await?,
    );
    let row = step(
        shutdown,
        "register",
        join_registry(&mut conn, config, memory.registered),
    )
    .await?;
    if memory.registered {
        probes.count_reconnect();
    }
    memory.registered = true;
    info!(
        node_id = node,
        version = %config.info.version,
        created_at = %crate::timestamps::format_timestamp(&row.created_at),
        registered_at = %crate::timestamps::format_timestamp(&row.registered_at),
        "registered"
    );
    Ok(conn)
}

/// Ends our previous session if the server still keeps it (and so our lock).
async fn end_previous_session(
    conn: &mut PgConnection,
    old: metadata_db::SessionId,
    node: &str,
    timeout: Duration,
) {
    let terminate = metadata_db::terminate_session(conn, old);
    match metadata_db::bounded("pg_terminate_backend", timeout, terminate).await {
        Ok(true) => info!(
            node_id = node,
            old_pid = old.pid,
            "ended our previous session, which the server still kept"
        ),
        Ok(false) => {}
        // The lock wait still bounds how long that session can block us.
        Err(err) => {
            warn!(node_id = node, old_pid = old.pid, error = %err, "cannot end our previous session")
        }
    }
}

/// Our worker writes only to a schema of ours, and never where Amp schedules jobs.
fn refuse_foreign(report: &metadata_db::SchemaReport) -> Result<(), WorkerError> {
    if report.schedules_jobs {
        return Err(WorkerError::AmpSchedulesJobs);
    }
    match &report.flavour {
        metadata_db::Flavour::Foreign(found) => Err(WorkerError::ForeignSchema(found.describe())),
        metadata_db::Flavour::Empty => Err(WorkerError::NotMigrated),
        metadata_db::Flavour::Ours { .. } => Ok(()),
    }
}

/// Registers on a process's first session; on a reconnect, resumes the existing row
/// (heartbeat only) and registers only when the row vanished meanwhile.
async fn join_registry(
    conn: &mut PgConnection,
    config: &WorkerConfig,
    registered: bool,
) -> Result<metadata_db::WorkerRow, DbError> {
    let timeout = config.db_timeout;
    if registered
        && let Some(row) = metadata_db::bounded(
            "resume",
            timeout,
            metadata_db::resume(&mut *conn, &config.node_id),
        )
        .await?
    {
        return Ok(row);
    }
    metadata_db::bounded(
        "register",
        timeout,
        metadata_db::register(
            conn,
            &config.node_id,
            &config.info,
            config.placement.as_ref(),
        ),
    )
    .await
}

enum LockOutcome {
    Acquired,
    HeldElsewhere(Duration),
    Cancelled,
}

/// Takes the lock BEFORE any write, retrying for `lock_wait` while another session has it.
async fn acquire_lock(
    conn: &mut PgConnection,
    config: &WorkerConfig,
    shutdown: &CancellationToken,
) -> Result<LockOutcome, DbError> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        let locked = metadata_db::bounded(
            "pg_try_advisory_lock",
            config.db_timeout,
            metadata_db::try_advisory_lock(conn, &config.node_id),
        )
        .await?;
        if locked {
            return Ok(LockOutcome::Acquired);
        }
        let waited = started.elapsed();
        if waited >= config.lock_wait {
            return Ok(LockOutcome::HeldElsewhere(waited));
        }
        if !warned {
            warn!(
                node_id = config.node_id.as_str(),
                lock_wait = ?config.lock_wait,
                "node id is locked by another session; retrying until the lock wait runs out"
            );
            warned = true;
        }
        let pause = Duration::from_secs(1).min(config.lock_wait - waited);
        if sleep_or_cancel(shutdown, pause).await {
            return Ok(LockOutcome::Cancelled);
        }
    }
}

enum SessionEnd {
    Shutdown,
    Lost(DbError),
}

async fn heartbeat_loop(
    conn: &mut PgConnection,
    config: &WorkerConfig,
    probes: &WorkerProbes,
    shutdown: &CancellationToken,
) -> SessionEnd {
    // A heartbeat that takes this long means the session is unusable (half-open TCP).
    let deadline = config.db_timeout;
    let mut ticker = tokio::time::interval(config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // registration just set heartbeat_at
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            deadline,
            metadata_db::heartbeat(&mut *conn, &config.node_id),
        )
        .await;
        match outcome {
            Ok(Ok(true)) => probes.observe_heartbeat(started.elapsed()),
            Ok(Ok(false)) => {
                // Someone deleted our row; we still hold the lock, so re-register.
                warn!(
                    node_id = config.node_id.as_str(),
                    "worker row vanished; re-registering"
                );
                if let Err(err) = metadata_db::bounded(
                    "register",
                    deadline,
                    metadata_db::register(
                        &mut *conn,
                        &config.node_id,
                        &config.info,
                        config.placement.as_ref(),
                    ),
                )
                .await
                {
                    return SessionEnd::Lost(err);
                }
            }
            Ok(Err(err)) => return SessionEnd::Lost(err),
            Err(_) => {
                return SessionEnd::Lost(DbError::Timeout {
                    op: "heartbeat",
                    after: deadline,
                });
            }
        }
    }
}

async fn release(mut conn: PgConnection, node_id: &NodeId) {
    match metadata_db::advisory_unlock(&mut conn, node_id).await {
        Ok(_) => info!(node_id = node_id.as_str(), "released advisory lock"),
        Err(err) => {
            warn!(node_id = node_id.as_str(), error = %err, "unlock failed; closing the session releases it")
        }
    }
    let _ = conn.close().await;
}

async fn cancellable<F: std::future::Future>(
    shutdown: &CancellationToken,
    fut: F,
) -> Option<F::Output> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        out = fut => Some(out),
    }
}

/// Sleeps; true when shutdown interrupted the sleep.
async fn sleep_or_cancel(shutdown: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

/// `ampd worker`: validate, serve probes, run until a signal.
pub async fn main(args: WorkerArgs, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let config = WorkerConfig::from_args(&args, BuildInfo::current())?;
    let probes = Arc::new(WorkerProbes::new());
    if let Some(addr) = args.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WorkerError::Listen { addr, source })?;
        let app = probes::router(probes.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = crate::http_server::serve(
                listener,
                app,
                crate::http_server::Limits::default(),
                stop,
            )
            .await;
        });
    }
    info!(
        node_id = config.node_id.as_str(),
        database = %metadata_db::redact_url(&config.database_url),
        version = %config.info.version,
        "starting worker"
    );
    run(config, probes, shutdown).await
}
