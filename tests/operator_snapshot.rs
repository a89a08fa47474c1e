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
    // Generous on a shared machine; `node_id = ANY(5,000 ids)` took seconds here.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
