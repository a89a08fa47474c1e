//! The worker agent against a real PostgreSQL: lifecycle timestamps, the advisory lock,
//! input validation and surviving a database restart.

mod common;

use std::time::Duration;

use amp_operator::metadata_db;
use amp_operator::testing::postgres::eventually;
use chrono::{DateTime, Utc};
use common::*;

async fn heartbeat_at(pool: &sqlx::PgPool, id: &str) -> DateTime<Utc> {
    metadata_db::get_worker(pool, id)
        .await
        .unwrap()
        .expect("row")
        .heartbeat_at
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_timestamps_follow_the_contract() {
    let (pg, pool) = migrated_db().await;
    let first = spawn_worker(&pg.url(), "worker-01", "v0.0.21-8-ga1b2c3d4");
    let row1 = wait_registered(&pool, "worker-01", Duration::from_secs(10)).await;
    assert_eq!(row1.info.version.as_deref(), Some("v0.0.21-8-ga1b2c3d4"));
    assert_eq!(row1.info.build_date.as_deref(), Some("2025-10-30"));
    assert_eq!(row1.created_at, row1.registered_at);

    // heartbeat_at advances about once a second.
    let h0 = heartbeat_at(&pool, "worker-01").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h1 = heartbeat_at(&pool, "worker-01").await;
    let advanced = (h1 - h0).num_milliseconds();
    assert!(
        (1_500..=4_500).contains(&advanced),
        "heartbeat advanced {advanced} ms in 3 s"
    );

    let (status, _, stderr) = first.terminate();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{stderr}"
    );

    // Restart with a new version: created_at kept, registered_at moves, info replaced.
    let second = spawn_worker(&pg.url(), "worker-01", "v0.0.22-15-g8b065bde");
    let row2 = eventually(Duration::from_secs(10), || async {
        let row = metadata_db::get_worker(&pool, "worker-01").await.ok()??;
        (row.registered_at > row1.registered_at).then_some(row)
    })
    .await
    .expect("re-registration moves registered_at");
    assert_eq!(row2.created_at, row1.created_at, "created_at never changes");
    assert_eq!(row2.info.version.as_deref(), Some("v0.0.22-15-g8b065bde"));
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_node_id_is_refused_without_touching_the_row() {
    let (pg, pool) = migrated_db().await;
    let first = spawn_worker(&pg.url(), "worker-dup", "v1");
    let before = wait_registered(&pool, "worker-dup", Duration::from_secs(10)).await;

    let dup = Proc::spawn(
        "duplicate",
        worker(&pg.url(), "worker-dup", "v2").args(["--lock-wait", "2s"]),
    );
    let (status, _, stderr) = dup.wait_for_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(1),
        "duplicate exits non-zero; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("failed to acquire advisory lock"),
        "stderr:\n{stderr}"
    );

    // The running worker is untouched: same info, same registered_at, still heartbeating.
    let after = metadata_db::get_worker(&pool, "worker-dup")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.info.version.as_deref(), Some("v1"));
    assert_eq!(after.registered_at, before.registered_at);
    let h0 = after.heartbeat_at;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        heartbeat_at(&pool, "worker-dup").await > h0,
        "first worker keeps heartbeating"
    );

    // Once the first exits, the id can be taken again.
    let (status, _, _) = first.terminate();
    assert!(status.success());
    assert!(
        !metadata_db::advisory_lock_held(&pool, "worker-dup")
            .await
            .unwrap(),
        "lock released on shutdown"
    );
    let _next = spawn_worker(&pg.url(), "worker-dup", "v2");
    eventually(Duration::from_secs(10), || async {
        let row = metadata_db::get_worker(&pool, "worker-dup").await.ok()??;
        (row.info.version.as_deref() == Some("v2")).then_some(())
    })
    .await
    .expect("a new worker takes over the id");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_node_ids_are_refused_before_any_db_access() {
    let (pg, pool) = migrated_db().await;
    let long = "a".repeat(10_000);
    for bad in [
        "",
        "1worker",
        "wor ker",
        "a/b",
        "wörker",
        "-x",
        long.as_str(),
    ] {
        let start = std::time::Instant::now();
        let out = worker(&pg.url(), bad, "v1").output().expect("run ampd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("invalid node id"), "{bad:?}: {stderr}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    let rows = metadata_db::list_workers(&pool).await.unwrap();
    assert!(rows.is_empty(), "nothing written: {rows:?}");
    // No session other than ours ever appeared for a worker.
    let workers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ampd-worker/%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(workers, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_survives_a_postgres_restart() {
    let (mut pg, pool) = migrated_db().await;
    let probes = free_addr();
    let mut w = Proc::spawn(
        "worker-r",
        worker(&pg.url(), "worker-r", "v1").args(["--listen", &probes]),
    );
    let before = wait_registered(&pool, "worker-r", Duration::from_secs(10)).await;
    pool.close().await;

    pg.stop().expect("stop postgres");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.is_running(), "worker keeps running while the DB is down");
    pg.restart_after_stop().expect("start postgres again");
    let back = std::time::Instant::now();

    let pool = metadata_db::connect_pool(&pg.url(), "tests", 2)
        .await
        .unwrap();
    let resumed = eventually(Duration::from_secs(10), || async {
        let row = metadata_db::get_worker(&pool, "worker-r").await.ok()??;
        let db_now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&pool)
            .await
            .ok()?;
        (row.heartbeat_at > before.heartbeat_at + chrono::Duration::seconds(3)
            && (db_now - row.heartbeat_at).num_seconds() < 2)
            .then_some(row)
    })
    .await
    .expect("heartbeats resume after the restart");
    let took = back.elapsed();
    assert!(took < Duration::from_secs(10), "resumed after {took:?}");
    // A reconnect is not a restart: the process kept running, so `registered_at` (which
    // the seeds and RESTARTS read as "the process started") stays; it is counted apart.
    assert_eq!(resumed.created_at, before.created_at);
    assert_eq!(resumed.registered_at, before.registered_at);
    assert_eq!(resumed.info, before.info);
    let (_, metrics) = http_get(&probes, "/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "amp_worker_reconnects_total 1"),
        "{metrics}"
    );
    assert!(
        metadata_db::advisory_lock_held(&pool, "worker-r")
            .await
            .unwrap(),
        "lock re-taken"
    );
    eprintln!("worker resumed {took:?} after PostgreSQL came back");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_is_idempotent_and_version_prints_build_info() {
    let pg = amp_operator::testing::postgres::TempPostgres::start().unwrap();
    for _ in 0..2 {
        let out = std::process::Command::new(AMPD)
            .args(["migrate", "--database-url", &pg.url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new(AMPD)
        .arg("--version")
        .env("AMPD_VERSION", "v0.0.22-15-g8b065bde")
        .env("AMPD_COMMIT_SHA", "8b065bde")
        .env("AMPD_COMMIT_TIMESTAMP", "2025-10-29T09:00:00Z")
        .env("AMPD_BUILD_DATE", "2025-10-30")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ampd v0.0.22-15-g8b065bde\ncommit_sha: 8b065bde\ncommit_timestamp: 2025-10-29T09:00:00Z\nbuild_date: 2025-10-30"
    );

    let out = std::process::Command::new(AMPD)
        .args([
            "migrate",
            "--connect-wait=0s",
            "--database-url",
            "postgres://amp:hunter2@127.0.0.1:1/amp",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot connect to the metadata DB at postgres://amp:***@127.0.0.1:1/amp"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_racing_workers_with_one_id_leave_exactly_one_holder() {
    let (pg, pool) = migrated_db().await;
    let racers: Vec<Proc> = (0..20)
        .map(|i| {
            Proc::spawn(
                &format!("racer {i}"),
                worker(&pg.url(), "worker-race", &format!("v{i}")).args(["--lock-wait", "0s"]),
            )
        })
        .collect();
    wait_registered(&pool, "worker-race", Duration::from_secs(20)).await;
    // Losers exit promptly with the lock error; wait until all but one have, then make
    // sure the last one stays.
    let mut racers = racers;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while racers
        .iter_mut()
        .map(|r| r.is_running())
        .filter(|&up| up)
        .count()
        > 1
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut running, mut refused) = (Vec::new(), 0);
    for mut racer in racers {
        if racer.is_running() {
            running.push(racer);
        } else {
            let (status, _, stderr) = racer.wait_for_exit(Duration::from_secs(1));
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("failed to acquire advisory lock"),
                "{stderr}"
            );
            refused += 1;
        }
    }
    assert_eq!(
        (running.len(), refused),
        (1, 19),
        "exactly one holds the id"
    );
    // One session holds both keys: Amp's and the one releases before this one used.
    let (holders, locks): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT l.pid), count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'ampd-worker/worker-race'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((holders, locks), (1, 2));
    // The row carries the winner's version and is still heartbeating.
    let row = metadata_db::get_worker(&pool, "worker-race")
        .await
        .unwrap()
        .unwrap();
    let h0 = row.heartbeat_at;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(heartbeat_at(&pool, "worker-race").await > h0);
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_follow_the_session_and_logs_never_show_the_password() {
    let (mut pg, pool) = migrated_db().await;
    // Trust auth ignores the password, so the URL works and we can watch for leaks.
    let url = pg.url().replace("amp@", "amp:hunter2@");
    let addr = free_addr();
    let mut w = Proc::spawn(
        "worker with probes",
        worker(&url, "worker-p", "v1").args(["--listen", &addr, "--log-format", "json"]),
    );
    wait_registered(&pool, "worker-p", Duration::from_secs(10)).await;
    let ready = eventually(Duration::from_secs(5), || async {
        (http_get(&addr, "/readyz").ok()?.0 == 200).then_some(())
    });
    assert!(ready.await.is_some(), "/readyz turns 200 once registered");
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (code, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("amp_worker_heartbeats_total "),
        "{metrics}"
    );
    assert!(metrics.contains("amp_worker_session_up 1"), "{metrics}");

    pool.close().await;
    pg.stop().unwrap();
    let not_ready = eventually(Duration::from_secs(15), || async {
        (http_get(&addr, "/readyz").ok()?.0 == 503).then_some(())
    });
    assert!(
        not_ready.await.is_some(),
        "/readyz turns 503 when the session is lost"
    );
    assert_eq!(
        http_get(&addr, "/healthz").unwrap().0,
        200,
        "liveness stays up during a DB outage"
    );
    assert!(w.is_running());

    let (status, _, stderr) = w.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("amp:***@127.0.0.1"),
        "the redacted URL is logged: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "password leaked into logs:\n{stderr}"
    );
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}

/// Text logs written to a pipe carry no colour codes, and a fatal error is reported once
/// (one `error:` line, not a log line as well), in text and in JSON mode.
#[test]
fn piped_text_logs_have_no_ansi_and_a_fatal_error_is_printed_once() {
    for format in ["text", "json"] {
        let out = std::process::Command::new(common::AMPD)
            .args(["--log-format", format, "migrate", "--connect-wait=0s"])
            .arg("--database-url")
            .arg("postgres://amp@127.0.0.1:1/amp")
            .env("RUST_LOG", "debug")
            .output()
            .expect("run ampd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.lines().count() > 1,
            "expected debug logs too: {stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: ANSI escapes in piped logs: {stderr:?}"
        );
        assert_eq!(
            stderr.matches("cannot connect to the metadata DB").count(),
            1,
            "{format}: the fatal error must appear once: {stderr}"
        );
        assert!(
            stderr
                .lines()
                .last()
                .unwrap()
                .starts_with("error: cannot connect"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_reports_where_it_runs_from_the_downward_api() {
    let (pg, pool) = migrated_db().await;
    let _w = Proc::spawn(
        "worker-p",
        worker(&pg.url(), "worker-p", "v1")
            .env("POD_NAME", "amp-worker-0")
            .env("POD_NAMESPACE", "amp")
            .env("NODE_NAME", "node-a")
            .env("POD_IP", "10.0.0.7"),
    );
    wait_registered(&pool, "worker-p", Duration::from_secs(10)).await;
    let info: serde_json::Value =
        sqlx::query_scalar("SELECT info FROM workers WHERE node_id = 'worker-p'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        info["placement"],
        serde_json::json!({"pod": "amp-worker-0", "namespace": "amp", "node": "node-a", "pod_ip": "10.0.0.7"})
    );
}
