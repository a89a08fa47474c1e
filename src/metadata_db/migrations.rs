//! `ampd migrate`: create or upgrade OUR schema, and leave anyone else's alone.
//!
//! Our history lives in [`MIGRATIONS_TABLE`], never in `_sqlx_migrations` (Amp's). A DB
//! that a release before this one migrated holds our versions in `_sqlx_migrations`;
//! they move over once, in one transaction. A `workers` table we did not create (Amp's)
//! is checked for what the Admin API and operator read, and nothing is written.

use std::sync::LazyLock;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

use super::DbError;
use super::schema::{self, Flavour, ForeignSchema, MIGRATIONS_TABLE};

/// Our migrations (`migrations/`), recorded in [`MIGRATIONS_TABLE`].
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
});

/// Serialises concurrent `ampd migrate` runs (two Helm hook Jobs, a Job and a person)
/// around the inspection and the history move; sqlx's own lock covers only its part.
const MIGRATE_LOCK: &str = "amp-operator/migrate";

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrateOutcome {
    /// Our schema is current; `applied` migrations ran now, `history_moved` when our
    /// versions were taken out of `_sqlx_migrations`.
    Ours { applied: usize, history_moved: bool },
    /// Someone else's `workers` table that we can serve: nothing was written.
    Foreign(ForeignSchema),
}

impl MigrateOutcome {
    /// The one line `ampd migrate` prints.
    pub fn summary(&self) -> String {
        match self {
            MigrateOutcome::Ours {
                applied,
                history_moved,
            } => {
                let moved = if *history_moved {
                    format!(
                        "; our migration history moved from _sqlx_migrations to {MIGRATIONS_TABLE}"
                    )
                } else {
                    String::new()
                };
                format!("migrations applied ({applied} new){moved}")
            }
            MigrateOutcome::Foreign(found) => format!(
                "found {}: nothing to migrate, nothing written; the Admin API and the operator read it as it is",
                found.describe()
            ),
        }
    }
}

/// Applies our migrations where the schema is ours; checks a foreign one.
pub async fn migrate(pool: &PgPool) -> Result<MigrateOutcome, DbError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(DbError::query("acquire connection"))?;
    lock(
        &mut conn,
        "SELECT pg_advisory_lock(hashtextextended($1, 0))",
    )
    .await?;
    let outcome = migrate_locked(&mut conn).await;
    // Closing the session would release it too; unlock so the pooled connection is clean.
    let unlocked = lock(
        &mut conn,
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
    )
    .await;
    let outcome = outcome?;
    unlocked?;
    Ok(outcome)
}

async fn migrate_locked(conn: &mut PgConnection) -> Result<MigrateOutcome, DbError> {
    let report = schema::inspect(conn).await?;
    let history_moved = match report.flavour {
        Flavour::Foreign(found) if found.unservable.is_empty() => {
            return Ok(MigrateOutcome::Foreign(found));
        }
        Flavour::Foreign(found) => return Err(DbError::UnservableSchema(found)),
        Flavour::Ours { legacy_history } => {
            if legacy_history {
                move_history(conn).await?;
            }
            legacy_history
        }
        Flavour::Empty => false,
    };
    let before = applied_count(conn).await?;
    MIGRATOR.run(&mut *conn).await?;
    let applied = applied_count(conn).await? - before;
    Ok(MigrateOutcome::Ours {
        applied: usize::try_from(applied).unwrap_or(0),
        history_moved,
    })
}

async fn lock(conn: &mut PgConnection, statement: &'static str) -> Result<(), DbError> {
    sqlx::query(statement)
        .bind(MIGRATE_LOCK)
        .execute(conn)
        .await
        .map(drop)
        .map_err(DbError::query("migrate lock"))
}

/// Our versions out of `_sqlx_migrations`, into our own table: all or nothing.
async fn move_history(conn: &mut PgConnection) -> Result<(), DbError> {
    let mut tx = conn
        .begin()
        .await
        .map_err(DbError::query("begin history move"))?;
    for statement in [
        "CREATE TABLE amp_operator_migrations (LIKE _sqlx_migrations INCLUDING ALL)",
        "INSERT INTO amp_operator_migrations SELECT * FROM _sqlx_migrations",
        // It held only our versions (see schema::classify): nobody else's history goes.
        "DROP TABLE _sqlx_migrations",
    ] {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(DbError::query("move migration history"))?;
    }
    tx.commit()
        .await
        .map_err(DbError::query("commit history move"))?;
    tracing::info!(
        table = MIGRATIONS_TABLE,
        "moved our migration history out of _sqlx_migrations"
    );
    Ok(())
}

async fn applied_count(conn: &mut PgConnection) -> Result<i64, DbError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut *conn)
        .await
        .map_err(DbError::query("look up a table"))?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT count(*) FROM amp_operator_migrations")
        .fetch_one(conn)
        .await
        .map_err(DbError::query("count applied migrations"))
}
