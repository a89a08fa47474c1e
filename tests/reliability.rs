//! Fault tests with figures (see docs/reliability.md): database outages under a live fleet.

mod common;

use std::time::{Duration, Instant};

use amp_operator::metadata_db;
use amp_operator::testing::postgres::eventually;
use chrono::{DateTime, Utc};
use common::*;

const FLEET: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_workers_resume_within_five_seconds_of_a_20s_outage() {
    let (mut pg, pool) = migrated_db().await;
    let workers: Vec<Proc> = (0..FLEET)
        .map(|i| spawn_worker(&pg.url(), &format!("worker-{i:02}"), "v1"))
        .collect();
    let registered = eventually(Duration::from_secs(30), || async {
        let rows = metadata_db::list_workers(&pool).await.ok()?;
        (rows.len() == FLEET).then_some(rows)
    })
    .await
    .expect("all workers register");
    pool.close().await;

    pg.stop().expect("stop");
    tokio::time::sleep(Duration::from_secs(20)).await;
    pg.restart_after_stop().expect("start again");
    let back = Instant::now();

    let pool = metadata_db::connect_pool(&pg.url(), "tests", 2)
        .await
        .unwrap();
    let db_back: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(15), || async {
        let rows = metadata_db::list_workers(&pool).await.ok()?;
        rows.iter().all(|r| r.heartbeat_at >= db_back).then_some(())
    })
    .await
    .expect("every worker heartbeats again");
    let took = back.elapsed();
    eprintln!(
        "RELIABILITY: {FLEET} workers all heartbeating {took:.1?} after a 20 s PostgreSQL outage ended"
    );
    assert!(took <= Duration::from_secs(5), "resumed after {took:?}");

    let rows = metadata_db::list_workers(&pool).await.unwrap();
    for (before, after) in registered.iter().zip(&rows) {
        assert_eq!(before.node_id, after.node_id);
        assert_eq!(
            before.created_at, after.created_at,
            "no data lost for {}",
            after.node_id
        );
        assert!(
            after.registered_at > before.registered_at,
            "{} re-registered",
            after.node_id
        );
    }
    let locks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(locks, FLEET as i64, "every worker holds its lock again");
    drop(workers);
}
