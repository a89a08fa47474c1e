//! A metadata DB shaped as Amp's own services leave it, for tests that attach to one.
//!
//! Written from the facts in `shared/amp-upstream.md` (our own SQL; nothing of Amp's is
//! copied): migration history in `_sqlx_migrations` with 14-digit versions, the
//! `workers` table in Amp's column order with an identity key, the job tables, and
//! workers that register, lock and heartbeat the way Amp's worker does.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

/// Which Amp release's schema to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmpSchema {
    /// v0.0.34 and later: `heartbeat_at timestamptz`.
    Current,
    /// v0.0.23 up to v0.0.34: `heartbeat_at timestamp without time zone` (UTC wall time).
    WallClockHeartbeat,
    /// Before v0.0.23: `last_heartbeat`, no `info` or lifecycle columns.
    Ancient,
}

/// Versions recorded as Amp's sqlx records them (14-digit timestamps).
pub const AMP_VERSIONS: [i64; 3] = [20241021142330, 20250301120000, 20260312000000];

/// Creates Amp's tables in the database behind `pool` (nightly's job tables, none
/// before v0.0.23).
pub async fn create(pool: &PgPool, schema: AmpSchema) -> Result<(), sqlx::Error> {
    let jobs = (schema != AmpSchema::Ancient).then_some(AmpJobs::Nightly);
    create_with_jobs(pool, schema, jobs).await
}

fn history_ddl() -> [&'static str; 1] {
    // The shape sqlx gives its history table.
    ["CREATE TABLE _sqlx_migrations (
        version BIGINT PRIMARY KEY,
        description TEXT NOT NULL,
        installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
        success BOOLEAN NOT NULL,
        checksum BYTEA NOT NULL,
        execution_time BIGINT NOT NULL)"]
}

fn workers_ddl(schema: AmpSchema) -> &'static str {
    match schema {
        AmpSchema::Current => {
            "CREATE TABLE workers (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id TEXT NOT NULL UNIQUE,
                heartbeat_at TIMESTAMPTZ NOT NULL,
                info JSONB NOT NULL DEFAULT '{}',
                created_at TIMESTAMPTZ NOT NULL DEFAULT timezone('UTC', now()),
                registered_at TIMESTAMPTZ NOT NULL DEFAULT timezone('UTC', now()))"
        }
        AmpSchema::WallClockHeartbeat => {
            "CREATE TABLE workers (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id TEXT NOT NULL UNIQUE,
                heartbeat_at TIMESTAMP NOT NULL,
                info JSONB NOT NULL DEFAULT '{}',
                created_at TIMESTAMPTZ NOT NULL DEFAULT timezone('UTC', now()),
                registered_at TIMESTAMPTZ NOT NULL DEFAULT timezone('UTC', now()))"
        }
        AmpSchema::Ancient => {
            "CREATE TABLE workers (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id TEXT NOT NULL UNIQUE,
                last_heartbeat TIMESTAMP NOT NULL)"
        }
    }
}

/// Which of Amp's job schemas to build (see `shared/amp-upstream.md`, "Jobs").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmpJobs {
    /// Nightly: `jobs_status` holds the current state; `jobs.status` is legacy.
    Nightly,
    /// Release v0.0.35: `jobs.status` and `jobs.node_id` are current; `job_attempts`.
    Release0035,
}

/// [`create`] with the given job schema (or none).
pub async fn create_with_jobs(
    pool: &PgPool,
    schema: AmpSchema,
    jobs: Option<AmpJobs>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for statement in history_ddl() {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    for version in AMP_VERSIONS {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES ($1, $2, true, sha384(convert_to($2, 'UTF8')), 1000)",
        )
        .bind(version)
        .bind(format!("amp migration {version}"))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(workers_ddl(schema)).execute(&mut *tx).await?;
    for statement in jobs.map(jobs_ddl).unwrap_or_default() {
        sqlx::query(*statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn jobs_ddl(jobs: AmpJobs) -> &'static [&'static str] {
    match jobs {
        AmpJobs::Nightly => &[
            "CREATE TABLE jobs (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id TEXT NOT NULL REFERENCES workers (node_id),
                status TEXT NOT NULL DEFAULT 'SCHEDULED',
                descriptor JSONB,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                idempotency_key TEXT NOT NULL UNIQUE)",
            "CREATE TABLE jobs_status (
                job_id BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
                node_id TEXT NOT NULL,
                status TEXT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                detail JSONB)",
            "CREATE INDEX jobs_status_by_status ON jobs_status (status)",
            "CREATE INDEX jobs_status_by_node ON jobs_status (node_id, status)",
            "CREATE TABLE job_events (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                job_id BIGINT NOT NULL,
                node_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                detail JSONB)",
            "CREATE INDEX job_events_by_job ON job_events (job_id, id)",
        ],
        AmpJobs::Release0035 => &[
            "CREATE TABLE jobs (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                node_id TEXT NOT NULL REFERENCES workers (node_id),
                status TEXT NOT NULL,
                descriptor JSONB NOT NULL DEFAULT '{}',
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            "CREATE INDEX jobs_by_status ON jobs (status)",
            "CREATE INDEX jobs_by_node ON jobs (node_id, status)",
            "CREATE TABLE job_attempts (
                job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                retry_index INTEGER NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (job_id, retry_index))",
        ],
    }
}

/// A job as Amp's controller leaves it: assigned first to `first` (a registered node id),
/// now on `current` with `status`, its status set `age` ago. On nightly the legacy
/// `jobs.status` stays `SCHEDULED`, as Amp leaves it; v0.0.35 has no separate first
/// assignee (`current` is written to `jobs.node_id`). Returns the job id.
pub async fn add_job(
    pool: &PgPool,
    jobs: AmpJobs,
    first: &str,
    current: &str,
    status: &str,
    age: Duration,
) -> Result<i64, sqlx::Error> {
    let age = format!("{} milliseconds", age.as_millis());
    let mut tx = pool.begin().await?;
    let id = match jobs {
        AmpJobs::Nightly => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (node_id, idempotency_key) VALUES ($1, md5(random()::text))
                 RETURNING id",
            )
            .bind(first)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO jobs_status (job_id, node_id, status, updated_at, detail)
                 VALUES ($1, $2, $3, now() - $4::interval, '{}')",
            )
            .bind(id)
            .bind(current)
            .bind(status)
            .bind(&age)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO job_events (job_id, node_id, event_type) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(current)
                .bind(status)
                .execute(&mut *tx)
                .await?;
            id
        }
        AmpJobs::Release0035 => {
            sqlx::query_scalar(
                "INSERT INTO jobs (node_id, status, updated_at)
                 VALUES ($1, $2, now() - $3::interval) RETURNING id",
            )
            .bind(current)
            .bind(status)
            .bind(&age)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    tx.commit().await?;
    Ok(id)
}

/// A worker that behaves as Amp's: registers first (upsert, UTC wall-clock timestamps),
/// then locks with Amp's key on its own session, then heartbeats every second. Dropping
/// it ends the session (and so the lock), as a killed Amp worker does.
pub struct AmpWorkerSim {
    heartbeats: tokio::task::JoinHandle<()>,
    pub locked: bool,
}

impl AmpWorkerSim {
    pub async fn start(
        url: &str,
        node_id: &str,
        info: serde_json::Value,
    ) -> Result<Self, sqlx::Error> {
        let mut conn = PgConnection::connect(url).await?;
        register(&mut conn, node_id, &info).await?;
        let locked = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(node_id)
            .fetch_one(&mut conn)
            .await?;
        let node_id = node_id.to_owned();
        let heartbeats = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                // The column type decides how the wall-clock value is stored.
                let beat = sqlx::query(
                    "UPDATE workers SET heartbeat_at = timezone('UTC', now()) WHERE node_id = $1",
                )
                .bind(&node_id)
                .execute(&mut conn)
                .await;
                if beat.is_err() {
                    return; // Amp's worker exits on a heartbeat error.
                }
            }
        });
        Ok(Self { heartbeats, locked })
    }
}

impl Drop for AmpWorkerSim {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// Amp's registration: insert sets every timestamp; a conflict replaces `info`,
/// `registered_at` and `heartbeat_at` and keeps `created_at`.
pub async fn register(
    conn: &mut PgConnection,
    node_id: &str,
    info: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workers (node_id, info, heartbeat_at, created_at, registered_at)
         VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()), timezone('UTC', now()))
         ON CONFLICT (node_id) DO UPDATE
           SET info = EXCLUDED.info, registered_at = EXCLUDED.registered_at,
               heartbeat_at = EXCLUDED.heartbeat_at",
    )
    .bind(node_id)
    .bind(sqlx::types::Json(info))
    .execute(conn)
    .await
    .map(drop)
}

/// Holds Amp's lock for `node_id` on a session of its own (what a running Amp worker
/// does), until the returned connection is dropped.
pub async fn hold_amp_lock(url: &str, node_id: &str) -> Result<(PgConnection, bool), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let locked = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(node_id)
        .fetch_one(&mut conn)
        .await?;
    Ok((conn, locked))
}

/// `info` as Amp's build writes it.
pub fn amp_info(version: &str) -> serde_json::Value {
    serde_json::json!({
        "version": version,
        "commit_sha": "188bfd41c0ffee00c0ffee00c0ffee00c0ffee00",
        "commit_timestamp": "2026-03-12T10:38:36.123456789+01:00",
        "build_date": "2026-03-12",
    })
}
