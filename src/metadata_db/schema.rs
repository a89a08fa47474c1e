//! Which `workers` schema this metadata DB has, and whether we may write to it.
//!
//! Three flavours exist in the wild: ours (created by `ampd migrate`), the one Amp's own
//! services create and migrate (`id` identity key, history in `_sqlx_migrations` with
//! 14-digit versions), and Amp's before v0.0.34 (`heartbeat_at` without time zone, UTC
//! wall time). Readers serve all three through the same queries (see `READ_COLUMNS` in
//! the parent module); only `migrate` and the worker ask which one they face, here.

use sqlx::PgConnection;

use super::DbError;

/// The table that records OUR migrations. Never `_sqlx_migrations`: Amp's services
/// record theirs there and refuse to start on versions they do not know (and so would
/// we), so two migrators sharing it break each other.
pub const MIGRATIONS_TABLE: &str = "amp_operator_migrations";

/// Where sqlx records migrations by default (Amp's history; ours before this release).
pub const SQLX_DEFAULT_TABLE: &str = "_sqlx_migrations";

/// Columns the Admin API and the operator read, with the types they can decode.
const SERVED_COLUMNS: &[(&str, &[&str])] = &[
    ("node_id", &["text", "character varying"]),
    ("info", &["jsonb", "json"]),
    (
        "created_at",
        &["timestamp with time zone", "timestamp without time zone"],
    ),
    (
        "registered_at",
        &["timestamp with time zone", "timestamp without time zone"],
    ),
    (
        "heartbeat_at",
        &["timestamp with time zone", "timestamp without time zone"],
    ),
];

/// Who manages the `workers` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavour {
    /// No `workers` table yet: ours to create.
    Empty,
    /// Created by our migrations (recorded in [`MIGRATIONS_TABLE`], or in
    /// `_sqlx_migrations` by a release before that table existed).
    Ours { legacy_history: bool },
    /// Someone else's (Amp's services): read it, never write it.
    Foreign(ForeignSchema),
}

/// What we found in a `workers` table we do not manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignSchema {
    /// Highest version in `_sqlx_migrations`, when that table exists (Amp's history).
    pub sqlx_version: Option<i64>,
    /// `_sqlx_migrations` exists but this role may not read it (the reader role
    /// docs/amp.md creates): a `workers` table beside it is not ours to write either way.
    pub history_unreadable: bool,
    /// `heartbeat_at` is `timestamp without time zone` (Amp before v0.0.34).
    pub wall_clock_heartbeat: bool,
    /// Served columns that are missing or of a type we cannot read, e.g.
    /// `heartbeat_at (missing)`; empty when the Admin API and operator can serve it.
    pub unservable: Vec<String>,
}

impl ForeignSchema {
    /// One line for `ampd migrate` and the logs.
    pub fn describe(&self) -> String {
        let history = match self.sqlx_version {
            Some(v) => format!("migration history in {SQLX_DEFAULT_TABLE} up to {v}"),
            None if self.history_unreadable => {
                format!("migration history in {SQLX_DEFAULT_TABLE}, not readable by this role")
            }
            None => "no migration history".to_owned(),
        };
        let clock = if self.wall_clock_heartbeat {
            ", heartbeat_at without time zone (Amp before v0.0.34), read as UTC"
        } else {
            ""
        };
        format!("an Amp-managed workers table ({history}{clock})")
    }
}

/// Everything `migrate` and the worker need to know, from one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReport {
    pub flavour: Flavour,
    /// Amp's job scheduler tables are present: it assigns jobs to any fresh heartbeat.
    pub schedules_jobs: bool,
}

/// Reads the catalog (no writes, no locks beyond catalog reads).
pub async fn inspect(conn: &mut PgConnection) -> Result<SchemaReport, DbError> {
    let columns = workers_columns(conn).await?;
    let schedules_jobs = relation_exists(conn, "jobs").await?;
    let ours_recorded = relation_exists(conn, MIGRATIONS_TABLE).await?;
    let flavour = match sqlx_history(conn).await? {
        // Our own history says it all; without it, a table beside a history we may not
        // read is someone else's (ours moved out of it, see `migrations`).
        SqlxHistory::Unreadable if !ours_recorded => foreign(&columns, None, true),
        SqlxHistory::Versions(versions) => classify(&columns, ours_recorded, Some(&versions)),
        _ => classify(&columns, ours_recorded, None),
    };
    Ok(SchemaReport {
        flavour,
        schedules_jobs,
    })
}

/// Pure decision from what the catalog holds (unit-tested below).
fn classify(
    columns: &[(String, String)],
    ours_recorded: bool,
    sqlx_versions: Option<&[i64]>,
) -> Flavour {
    let only_ours_in_sqlx = sqlx_versions
        .is_some_and(|v| !v.is_empty() && v.iter().all(|version| is_our_version(*version)));
    if ours_recorded {
        return Flavour::Ours {
            legacy_history: false,
        };
    }
    if only_ours_in_sqlx {
        return Flavour::Ours {
            legacy_history: true,
        };
    }
    let foreign_history = sqlx_versions.is_some_and(|v| !v.is_empty());
    if columns.is_empty() && !foreign_history {
        return Flavour::Empty;
    }
    foreign(
        columns,
        sqlx_versions.and_then(|v| v.iter().copied().max()),
        false,
    )
}

fn foreign(
    columns: &[(String, String)],
    sqlx_version: Option<i64>,
    history_unreadable: bool,
) -> Flavour {
    Flavour::Foreign(ForeignSchema {
        sqlx_version,
        history_unreadable,
        wall_clock_heartbeat: columns
            .iter()
            .any(|(n, t)| n == "heartbeat_at" && t == "timestamp without time zone"),
        unservable: unservable(columns),
    })
}

/// Our migration versions are small sequence numbers; Amp's are 14-digit timestamps.
fn is_our_version(version: i64) -> bool {
    super::MIGRATOR.iter().any(|m| m.version == version)
}

fn unservable(columns: &[(String, String)]) -> Vec<String> {
    SERVED_COLUMNS
        .iter()
        .filter_map(
            |(name, types)| match columns.iter().find(|(n, _)| n == name) {
                None => Some(format!("{name} (missing)")),
                Some((_, t)) if !types.contains(&t.as_str()) => Some(format!("{name} ({t})")),
                Some(_) => None,
            },
        )
        .collect()
}

/// `(name, type)` of every column of the `workers` table the search path finds.
async fn workers_columns(conn: &mut PgConnection) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, NULL)
           FROM pg_attribute a
          WHERE a.attrelid = to_regclass('workers') AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
    )
    .fetch_all(conn)
    .await
    .map_err(DbError::query("read the workers table's columns"))
}

async fn relation_exists(conn: &mut PgConnection, name: &str) -> Result<bool, DbError> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(DbError::query("look up a table"))
}

/// What `_sqlx_migrations` holds, as far as this role may see.
enum SqlxHistory {
    Absent,
    /// Amp's grants do not include it for a reader role (docs/amp.md's does not): the
    /// check must not need more than reading `workers` does.
    Unreadable,
    Versions(Vec<i64>),
}

async fn sqlx_history(conn: &mut PgConnection) -> Result<SqlxHistory, DbError> {
    let readable: Option<bool> = sqlx::query_scalar(
        "SELECT has_table_privilege(to_regclass($1)::oid, 'SELECT') WHERE to_regclass($1) IS NOT NULL",
    )
    .bind(SQLX_DEFAULT_TABLE)
    .fetch_optional(&mut *conn)
    .await
    .map_err(DbError::query("look up a table"))?;
    match readable {
        None => Ok(SqlxHistory::Absent),
        Some(false) => Ok(SqlxHistory::Unreadable),
        Some(true) => sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(conn)
            .await
            .map(SqlxHistory::Versions)
            .map_err(DbError::query("read _sqlx_migrations")),
    }
}

/// Which of Amp's job schemas this DB has: the one place that tells them apart (by
/// whether `jobs_status` exists), and what our reader role may see of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSchema {
    /// No `jobs` table (our own DB, or Amp before jobs): no jobs, nothing shown.
    None,
    /// Nightly: `jobs_status` holds each job's current status and assignee; the legacy
    /// `jobs.status` stays `SCHEDULED` forever and is never read.
    Nightly,
    /// Release v0.0.35: `jobs.status` and `jobs.node_id` are current.
    Release0035,
    /// Job tables of a shape we cannot read: what is missing or of which type.
    Unexpected(String),
}

impl JobSchema {
    /// The table holding each job's current state, and its job id column.
    pub fn state_table(&self) -> Option<(&'static str, &'static str)> {
        match self {
            JobSchema::Nightly => Some(("jobs_status", "job_id")),
            JobSchema::Release0035 => Some(("jobs", "id")),
            JobSchema::None | JobSchema::Unexpected(_) => None,
        }
    }

    /// Statuses after which a job never runs again on this schema.
    pub fn terminal_statuses(&self) -> &'static [&'static str] {
        match self {
            JobSchema::Release0035 => &["COMPLETED", "STOPPED", "FAILED"],
            _ => &["COMPLETED", "STOPPED", "FATAL"],
        }
    }
}

/// The job schema and the tables the role reading it lacks `SELECT` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTables {
    pub schema: JobSchema,
    /// Tables the read needs that this role may not select from (e.g. `jobs_status`).
    pub missing_select: Vec<String>,
}

/// Columns the jobs read uses in the state table, with the types it can decode.
const JOB_STATE_COLUMNS: &[(&str, &[&str])] = &[
    ("node_id", &["text", "character varying"]),
    ("status", &["text", "character varying"]),
    (
        "updated_at",
        &["timestamp with time zone", "timestamp without time zone"],
    ),
];

/// Reads the catalog: the job tables' columns and our privileges (catalog reads only;
/// a role without any grant on the job tables can still run it).
pub async fn job_tables(conn: &mut PgConnection) -> Result<JobTables, DbError> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, NULL)
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE a.attrelid IN (to_regclass('jobs'), to_regclass('jobs_status'))
            AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY c.relname, a.attnum",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(DbError::query("read the job tables' columns"))?;
    let schema = classify_jobs(&columns);
    let mut missing_select = Vec::new();
    if let Some((table, _)) = schema.state_table() {
        for needed in [table, "workers"] {
            let granted: bool =
                sqlx::query_scalar("SELECT has_table_privilege(to_regclass($1), 'SELECT')")
                    .bind(needed)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(DbError::query("check the job tables' grants"))?;
            if !granted {
                missing_select.push(needed.to_owned());
            }
        }
    }
    Ok(JobTables {
        schema,
        missing_select,
    })
}

/// Pure decision from `(table, column, type)` of `jobs` and `jobs_status`.
fn classify_jobs(columns: &[(String, String, String)]) -> JobSchema {
    let of = |table: &str| -> Vec<(String, String)> {
        columns
            .iter()
            .filter(|(t, _, _)| t == table)
            .map(|(_, n, ty)| (n.clone(), ty.clone()))
            .collect()
    };
    let (jobs, jobs_status) = (of("jobs"), of("jobs_status"));
    let (schema, table, id, state) = if !jobs_status.is_empty() {
        (JobSchema::Nightly, "jobs_status", "job_id", jobs_status)
    } else if !jobs.is_empty() {
        (JobSchema::Release0035, "jobs", "id", jobs)
    } else {
        return JobSchema::None;
    };
    let id_column: &[(&str, &[&str])] = &[(id, &["bigint", "integer"])];
    let wrong: Vec<String> = id_column
        .iter()
        .chain(JOB_STATE_COLUMNS)
        .filter_map(
            |(name, types)| match state.iter().find(|(n, _)| n == name) {
                None => Some(format!("{table}.{name} (missing)")),
                Some((_, t)) if !types.contains(&t.as_str()) => {
                    Some(format!("{table}.{name} ({t})"))
                }
                Some(_) => None,
            },
        )
        .collect();
    if wrong.is_empty() {
        schema
    } else {
        JobSchema::Unexpected(wrong.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    fn amp_columns(heartbeat_type: &str) -> Vec<(String, String)> {
        cols(&[
            ("id", "bigint"),
            ("node_id", "text"),
            ("heartbeat_at", heartbeat_type),
            ("info", "jsonb"),
            ("created_at", "timestamp with time zone"),
            ("registered_at", "timestamp with time zone"),
        ])
    }

    #[test]
    fn an_empty_database_is_ours_to_create() {
        assert_eq!(classify(&[], false, None), Flavour::Empty);
        assert_eq!(classify(&[], false, Some(&[])), Flavour::Empty);
    }

    #[test]
    fn our_history_wins_wherever_it_is_recorded() {
        let ours = amp_columns("timestamp with time zone");
        assert_eq!(
            classify(&ours, true, None),
            Flavour::Ours {
                legacy_history: false
            }
        );
        assert_eq!(
            classify(&ours, false, Some(&[1, 2])),
            Flavour::Ours {
                legacy_history: true
            }
        );
    }

    #[test]
    fn amp_history_or_an_unrecorded_table_is_foreign() {
        let amp = classify(
            &amp_columns("timestamp with time zone"),
            false,
            Some(&[20241021142330, 20260312000000]),
        );
        assert_eq!(
            amp,
            Flavour::Foreign(ForeignSchema {
                sqlx_version: Some(20260312000000),
                history_unreadable: false,
                wall_clock_heartbeat: false,
                unservable: vec![],
            })
        );
        // A workers table nobody recorded is not ours either.
        assert!(matches!(
            classify(&amp_columns("timestamp with time zone"), false, None),
            Flavour::Foreign(_)
        ));
        // Amp's history without a workers table: foreign, and nothing to serve.
        let Flavour::Foreign(bare) = classify(&[], false, Some(&[20241021142330])) else {
            panic!("foreign expected");
        };
        assert_eq!(bare.unservable.len(), 5);
        // A history this role may not read: foreign, said so.
        let Flavour::Foreign(unread) =
            foreign(&amp_columns("timestamp with time zone"), None, true)
        else {
            panic!("foreign expected");
        };
        assert_eq!(
            unread.describe(),
            "an Amp-managed workers table (migration history in _sqlx_migrations, not readable by this role)"
        );
    }

    #[test]
    fn old_amp_schemas_are_recognised() {
        let Flavour::Foreign(wall) = classify(
            &amp_columns("timestamp without time zone"),
            false,
            Some(&[20250101000000]),
        ) else {
            panic!("foreign expected");
        };
        assert!(wall.wall_clock_heartbeat && wall.unservable.is_empty());
        assert!(
            wall.describe().contains("before v0.0.34"),
            "{}",
            wall.describe()
        );
        // Before v0.0.23: last_heartbeat, no info or lifecycle columns.
        let Flavour::Foreign(ancient) = classify(
            &cols(&[
                ("id", "bigint"),
                ("node_id", "text"),
                ("last_heartbeat", "timestamp without time zone"),
            ]),
            false,
            Some(&[20241021142330]),
        ) else {
            panic!("foreign expected");
        };
        assert_eq!(
            ancient.unservable,
            [
                "info (missing)",
                "created_at (missing)",
                "registered_at (missing)",
                "heartbeat_at (missing)"
            ]
        );
        let Flavour::Foreign(odd) = classify(
            &cols(&[
                ("node_id", "integer"),
                ("info", "jsonb"),
                ("created_at", "timestamp with time zone"),
                ("registered_at", "timestamp with time zone"),
                ("heartbeat_at", "text"),
            ]),
            false,
            None,
        ) else {
            panic!("foreign expected");
        };
        assert_eq!(odd.unservable, ["node_id (integer)", "heartbeat_at (text)"]);
    }

    fn job_cols(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        list.iter()
            .map(|(t, n, ty)| (t.to_string(), n.to_string(), ty.to_string()))
            .collect()
    }

    const NIGHTLY: &[(&str, &str, &str)] = &[
        ("jobs", "id", "bigint"),
        ("jobs", "node_id", "text"),
        ("jobs", "status", "text"),
        ("jobs", "updated_at", "timestamp with time zone"),
        ("jobs_status", "job_id", "bigint"),
        ("jobs_status", "node_id", "text"),
        ("jobs_status", "status", "text"),
        ("jobs_status", "updated_at", "timestamp with time zone"),
        ("jobs_status", "detail", "jsonb"),
    ];

    #[test]
    fn job_schemas_are_told_apart_by_jobs_status() {
        assert_eq!(classify_jobs(&[]), JobSchema::None);
        assert_eq!(classify_jobs(&job_cols(NIGHTLY)), JobSchema::Nightly);
        assert_eq!(
            classify_jobs(&job_cols(&NIGHTLY[..4])),
            JobSchema::Release0035
        );
        // The legacy columns of `jobs` may be dropped upstream: nightly still reads.
        let without_legacy: Vec<_> = NIGHTLY
            .iter()
            .filter(|(t, n, _)| !(*t == "jobs" && (*n == "status" || *n == "updated_at")))
            .copied()
            .collect();
        assert_eq!(
            classify_jobs(&job_cols(&without_legacy)),
            JobSchema::Nightly
        );
        assert_eq!(
            JobSchema::Nightly.state_table(),
            Some(("jobs_status", "job_id"))
        );
        assert_eq!(JobSchema::Release0035.state_table(), Some(("jobs", "id")));
        assert_eq!(JobSchema::None.state_table(), None);
        assert!(
            JobSchema::Release0035
                .terminal_statuses()
                .contains(&"FAILED")
        );
        assert!(!JobSchema::Nightly.terminal_statuses().contains(&"ERROR"));
    }

    #[test]
    fn job_tables_of_an_unexpected_shape_say_what_is_wrong() {
        let odd = job_cols(&[
            ("jobs", "id", "bigint"),
            ("jobs_status", "job_id", "uuid"),
            ("jobs_status", "node_id", "text"),
            ("jobs_status", "status", "integer"),
        ]);
        assert_eq!(
            classify_jobs(&odd),
            JobSchema::Unexpected(
                "jobs_status.job_id (uuid), jobs_status.status (integer), jobs_status.updated_at (missing)"
                    .into()
            )
        );
        assert_eq!(JobSchema::Unexpected(String::new()).state_table(), None);
    }
}
