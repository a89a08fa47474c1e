//! The operator's per-cycle read on a real PostgreSQL: narrow rows every time, `info`
//! only for registrations the cache has not seen, and the lock of each node id.

mod common;

use std::sync::Arc;
use std::time::Duration;

use amp_operator::metadata_db::{self, InfoCache, LockState, OperatorSnapshot, SnapshotRow};
use sqlx::PgPool;

async fn read(pool: &PgPool, cache: &mut InfoCache) -> OperatorSnapshot {
    metadata_db::operator_snapshot_within(pool, Duration::from_secs(5), cache)
        .await
        .expect("snapshot")
}

fn row<'a>(s: &'a OperatorSnapshot, id: &str) -> &'a SnapshotRow {
    s.rows.iter().find(|r| r.node_id == id).expect("row")
}

#[tokio::test(flavor = "multi_thread")]
async fn info_is_read_once_per_registration_and_shared_after() {
    let (_pg, pool) = common::migrated_db().await;
    common::register_row(&pool, "w1", "v1").await;
    common::register_row_unlocked(&pool, "w2", "v1").await;
    let mut cache = InfoCache::default();

    let first = read(&pool, &mut cache).await;
    assert_eq!(first.rows.len(), 2);
    assert_eq!(row(&first, "w1").info.version.as_deref(), Some("v1"));
    assert_eq!(row(&first, "w1").lock, LockState::Held);
    assert_eq!(row(&first, "w2").lock, LockState::Free);

    // A heartbeat moves the clock columns only: the same `info`, not read again.
    sqlx::query("UPDATE workers SET heartbeat_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let second = read(&pool, &mut cache).await;
    assert!(Arc::ptr_eq(
        &row(&first, "w1").info,
        &row(&second, "w1").info
    ));
    assert!(row(&second, "w1").heartbeat_at >= row(&first, "w1").heartbeat_at);

    // A new registration brings its new `info`; the other row keeps its shared one.
    tokio::time::sleep(Duration::from_millis(20)).await;
    common::register_row(&pool, "w1", "v2").await;
    let third = read(&pool, &mut cache).await;
    assert_eq!(row(&third, "w1").info.version.as_deref(), Some("v2"));
    assert!(Arc::ptr_eq(
        &row(&first, "w2").info,
        &row(&third, "w2").info
    ));

    // A row that is gone is gone from the snapshot (and the cache).
    sqlx::query("DELETE FROM workers WHERE node_id = 'w2'")
        .execute(&pool)
        .await
        .unwrap();
    let fourth = read(&pool, &mut cache).await;
    let ids: Vec<&str> = fourth.rows.iter().map(|r| r.node_id.as_str()).collect();
    assert_eq!(ids, ["w1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_read_of_thousands_of_rows_reads_every_info_at_once() {
    let (_pg, pool) = common::migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         SELECT format('w-%s', i), jsonb_build_object('version', 'v' || (i % 3)), now(), now(), now()
         FROM generate_series(1, 5000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut cache = InfoCache::default();
    let started = std::time::Instant::now();
    let s = read(&pool, &mut cache).await;
    assert_eq!(s.rows.len(), 5000);
    assert!(s.rows.iter().all(|r| r.info.version.is_some()));
    // Three versions, three infos: equal ones are one allocation.
    let distinct: std::collections::HashSet<*const _> =
        s.rows.iter().map(|r| Arc::as_ptr(&r.info)).collect();
    assert_eq!(distinct.len(), 3);
    // Generous on a shared machine; `node_id = ANY(5,000 ids)` took seconds here.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Each row's lock is probed in a hash of the held locks, never by a join PostgreSQL
/// may plan as a nested loop: with `pg_locks` estimated at one row, a `LEFT JOIN`
/// became 50,000 x 50,000 key hashes at 50,000 workers (minutes a read, every read
/// past `--db-timeout`). The plan is checked with a `workers` table estimated huge.
#[tokio::test(flavor = "multi_thread")]
async fn every_lock_is_probed_by_hash_and_read_right_at_thousands_of_rows() {
    let (_pg, pool) = common::migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         SELECT format('w-%s', i), '{}'::jsonb, now(), now(), now()
         FROM generate_series(1, 3000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut locks = pool.acquire().await.unwrap().detach();
    sqlx::query(
        "SELECT count(pg_advisory_lock(hashtextextended(node_id, 0))) FROM workers
          WHERE right(node_id, 1) IN ('0', '2', '4', '6', '8')",
    )
    .execute(&mut locks)
    .await
    .unwrap();

    let s = read(&pool, &mut InfoCache::default()).await;
    let held = s.rows.iter().filter(|r| r.lock == LockState::Held).count();
    assert_eq!((s.rows.len(), held), (3000, 1500));
    assert!(
        s.rows
            .iter()
            .all(|r| (r.lock == LockState::Held) == r.node_id.ends_with(['0', '2', '4', '6', '8']))
    );

    // The statistics of a table of 50,000 bloated rows: still no nested loop.
    sqlx::query(
        "UPDATE pg_class SET reltuples = 50000, relpages = 180000 WHERE relname = 'workers'",
    )
    .execute(&pool)
    .await
    .ok();
    let sql = format!(
        "EXPLAIN (VERBOSE, FORMAT JSON) {}",
        metadata_db::OPERATOR_SNAPSHOT_SQL
    );
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap();
    let text = plan.to_string();
    assert!(!text.contains("Nested Loop"), "{plan:#}");
    assert!(text.contains("hashed SubPlan"), "{plan:#}");
}

/// The clock columns are decoded from PostgreSQL's binary form by hand (see
/// `metadata_db::db_time`): exact to the microsecond on both sides of PostgreSQL's epoch,
/// and a timestamp chrono cannot hold is an error of
/// the read, not a panic.
#[tokio::test(flavor = "multi_thread")]
async fn clock_columns_are_read_exactly_and_out_of_range_ones_fail_the_read() {
    use chrono::{DateTime, Utc};
    let (_pg, pool) = common::migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at) VALUES
         ('w1', '{}', '1999-12-31 23:59:59.999999+00', '2000-01-01 00:00:00+00',
          '2026-12-07 10:11:12.345678+00')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let s = read(&pool, &mut InfoCache::default()).await;
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let w1 = row(&s, "w1");
    assert_eq!(
        (w1.created_at, w1.registered_at, w1.heartbeat_at),
        (
            at("1999-12-31T23:59:59.999999Z"),
            at("2000-01-01T00:00:00Z"),
            at("2026-12-07T10:11:12.345678Z")
        )
    );

    sqlx::query("UPDATE workers SET heartbeat_at = 'infinity'")
        .execute(&pool)
        .await
        .unwrap();
    let err = metadata_db::operator_snapshot_within(
        &pool,
        Duration::from_secs(5),
        &mut InfoCache::default(),
    )
    .await
    .err()
    .expect("an infinite heartbeat fails the read");
    assert!(err.to_string().contains("out of range"), "{err}");
}
