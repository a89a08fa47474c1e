//! The operator's per-cycle read: every row's clock columns and lock, narrow; `info` only
//! for rows whose registration changed since the last read (a worker writes `info` only
//! when it registers), decoded once and shared from then on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, PgPool, Row};

use super::db_time::DbTime;
use super::rows::{LockState, WorkerInfo};
use super::{DbError, within};

/// The narrow statement of every cycle: no `info`, no `ORDER BY` (the planner indexes
/// rows by node id and sorts what it creates; public so the benchmark can `EXPLAIN` it).
/// Locks: one scan of this database's advisory locks in `pg_locks`, probed per row by
/// Amp's key (the fragment every reader shares, see `lock_probe`). One row of five
/// arrays (the columns, in the same row order): decoding 10,000 rows one by one cost
/// the operator more CPU than decoding the same values as arrays.
pub const OPERATOR_SNAPSHOT_SQL: &str = concat!(
    "WITH ",
    held_locks_cte!(),
    "
     SELECT coalesce(array_agg(node_id::text), '{}') AS node_id,
            coalesce(array_agg(created_at::timestamptz), '{}') AS created_at,
            coalesce(array_agg(registered_at::timestamptz), '{}') AS registered_at,
            coalesce(array_agg(heartbeat_at::timestamptz), '{}') AS heartbeat_at,
            coalesce(array_agg(",
    lock_held_column_expr!(),
    "), '{}') AS lock_held
       FROM workers"
);

/// The settings of the snapshot's transaction, with the DB clock in the same round trip.
/// `statement_timeout` is the read's bound: a read the operator gave up on stops on the
/// server too, instead of running on (and holding back vacuum) until it next writes to
/// the dropped connection. No JIT: a statement run every second gains nothing from
/// compiling, and a large (or bloated) `workers` table crosses `jit_above_cost`
/// (about 50 ms of compiling a read, measured at 50,000 workers).
pub(super) const SNAPSHOT_SETUP_SQL: &str =
    "SELECT now(), set_config('statement_timeout', $1, true),
        set_config('jit', 'off', true)";

const INFO_SQL: &str =
    "SELECT node_id::text AS node_id, registered_at::timestamptz AS registered_at,
        info::jsonb AS info FROM workers WHERE node_id = ANY($1::text[])";

/// One row of the operator's snapshot: a [`super::WorkerRow`] whose `info` is shared
/// with the previous cycles' rows as long as the registration is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub node_id: String,
    pub info: Arc<WorkerInfo>,
    pub created_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub lock: LockState,
}

/// foldhash: looked up once per row per cycle (SipHash was a visible share of a cycle).
/// Node ids inline in the table (short ones, as node ids are): the key compare of a
/// lookup reads no other allocation.
type InfoMap = foldhash::HashMap<CompactString, (DateTime<Utc>, Arc<WorkerInfo>)>;

/// `info` as last read, by node id, with the registration it belongs to. Shared with
/// the read while it runs (the read may be dropped at its bound; the cache is not).
/// Equal infos are one allocation: an Amp fleet reports a build info per version, and
/// every row of every cycle holds one (raising a count in one of a few objects, not in
/// one of 10,000 spread over the heap).
#[derive(Debug, Default)]
pub struct InfoCache {
    by_node: Arc<InfoMap>,
    infos: crate::shared::Shared<WorkerInfo>,
}

fn cached(map: &InfoMap, node_id: &str, registered_at: DateTime<Utc>) -> Option<Arc<WorkerInfo>> {
    map.get(node_id)
        .filter(|(at, _)| *at == registered_at)
        .map(|(_, info)| info.clone())
}

/// Rows plus `now()`, from one REPEATABLE READ transaction: the narrow statement and
/// the `info` of changed registrations see the same rows.
pub struct OperatorSnapshot {
    pub db_now: DateTime<Utc>,
    pub rows: Vec<SnapshotRow>,
}

/// [`OperatorSnapshot`] bounded by `timeout` (see [`within`]); `cache` carries `info`
/// from one call to the next.
pub async fn operator_snapshot_within(
    pool: &PgPool,
    timeout: Duration,
    cache: &mut InfoCache,
) -> Result<OperatorSnapshot, DbError> {
    let known = cache.by_node.clone();
    let read = within(pool, "fleet snapshot", timeout, move |conn| {
        Box::pin(operator_snapshot_on(conn, known, timeout))
    })
    .await?;
    // The read is over and dropped its handle: the map is ours alone again.
    let map = Arc::make_mut(&mut cache.by_node);
    for (node_id, registered_at, info) in read.fresh {
        map.insert(node_id.into(), (registered_at, cache.infos.share(info)));
    }
    Ok(OperatorSnapshot {
        db_now: read.db_now,
        rows: with_info(read.narrow, map),
    })
}

/// What one read brings back: every row narrow, and the `info` the cache lacked.
struct Read {
    db_now: DateTime<Utc>,
    narrow: Vec<Narrow>,
    fresh: Vec<(String, DateTime<Utc>, WorkerInfo)>,
}

struct Narrow {
    node_id: String,
    created_at: DateTime<Utc>,
    registered_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
    lock: LockState,
    /// The cached `info` of this registration, if any (found while reading: one lookup
    /// per row).
    info: Option<Arc<WorkerInfo>>,
}

/// The columns of [`OPERATOR_SNAPSHOT_SQL`], in its order.
type Columns = (
    Vec<String>,
    Vec<DbTime>,
    Vec<DbTime>,
    Vec<DbTime>,
    Vec<Option<bool>>,
);

/// The rows of the arrays (all of one length, the statement aggregates them together).
fn narrow(
    (node_ids, created, registered, heartbeats, locks): Columns,
    known: &InfoMap,
) -> Result<Vec<Narrow>, DbError> {
    let n = node_ids.len();
    if [
        created.len(),
        registered.len(),
        heartbeats.len(),
        locks.len(),
    ] != [n; 4]
    {
        return Err(DbError::Query {
            op: "list workers",
            source: sqlx::Error::Protocol("the snapshot's columns differ in length".into()),
        });
    }
    let columns = node_ids.into_iter().zip(created).zip(registered);
    Ok(columns
        .zip(heartbeats)
        .zip(locks)
        .map(
            |((((node_id, created_at), registered_at), heartbeat_at), lock)| Narrow {
                info: cached(known, &node_id, registered_at.0),
                node_id,
                created_at: created_at.0,
                registered_at: registered_at.0,
                heartbeat_at: heartbeat_at.0,
                lock: LockState::from_probe(lock),
            },
        )
        .collect())
}

async fn operator_snapshot_on(
    conn: &mut PgConnection,
    known: Arc<InfoMap>,
    timeout: Duration,
) -> Result<Read, DbError> {
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(DbError::query("begin snapshot"))?;
    let (db_now, _, _): (DateTime<Utc>, String, String) = sqlx::query_as(SNAPSHOT_SETUP_SQL)
        .bind(format!("{}ms", timeout.as_millis().max(1)))
        .fetch_one(&mut *tx)
        .await
        .map_err(DbError::query("read database clock"))?;
    let columns: Columns = sqlx::query_as(OPERATOR_SNAPSHOT_SQL)
        .fetch_one(&mut *tx)
        .await
        .map_err(DbError::query("list workers"))?;
    let narrow = narrow(columns, &known)?;
    let changed: Vec<&str> = narrow
        .iter()
        .filter(|r| r.info.is_none())
        .map(|r| r.node_id.as_str())
        .collect();
    let mut fresh = Vec::new();
    if !changed.is_empty() {
        let rows = sqlx::query(INFO_SQL)
            .bind(&changed)
            .fetch_all(&mut *tx)
            .await
            .map_err(DbError::query("read worker info"))?;
        for r in rows {
            fresh.push(info_of(&r).map_err(DbError::query("read worker info"))?);
        }
    }
    tx.commit()
        .await
        .map_err(DbError::query("commit snapshot"))?;
    Ok(Read {
        db_now,
        narrow,
        fresh,
    })
}

fn info_of(row: &PgRow) -> Result<(String, DateTime<Utc>, WorkerInfo), sqlx::Error> {
    let info: Option<sqlx::types::Json<serde_json::Value>> = row.try_get("info")?;
    Ok((
        row.try_get("node_id")?,
        row.try_get("registered_at")?,
        info.map(|j| WorkerInfo::from_json(&j.0))
            .unwrap_or_default(),
    ))
}

/// The rows with their (shared) `info`; the cache forgets rows that are gone.
fn with_info(narrow: Vec<Narrow>, map: &mut InfoMap) -> Vec<SnapshotRow> {
    let rows: Vec<SnapshotRow> = narrow
        .into_iter()
        .map(|r| SnapshotRow {
            info: r
                .info
                .or_else(|| cached(map, &r.node_id, r.registered_at))
                .unwrap_or_default(),
            node_id: r.node_id,
            created_at: r.created_at,
            registered_at: r.registered_at,
            heartbeat_at: r.heartbeat_at,
            lock: r.lock,
        })
        .collect();
    if map.len() > rows.len() {
        let live: foldhash::HashSet<&str> = rows.iter().map(|r| r.node_id.as_str()).collect();
        map.retain(|node, _| live.contains(node.as_str()));
    }
    rows
}
