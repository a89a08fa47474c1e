//! The Admin API and ampctl as a user sees them: exact JSON, error bodies, exit codes.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::*;
use regex::Regex;
use serde_json::{Value, json};

const AMPCTL: &str = env!("CARGO_BIN_EXE_ampctl");

fn ampctl(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(AMPCTL)
        .args(["--admin-url", url])
        .args(args)
        .env_remove("AMP_AUTH_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn start_api(url: &str, extra: &[&str]) -> (Proc, String) {
    common::start_admin_api(url, extra).await
}

#[tokio::test(flavor = "multi_thread")]
async fn json_shapes_errors_and_exit_codes() {
    let (mut pg, pool) = migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at) VALUES
         ('worker-02', '{\"version\":\"v2\",\"commit_sha\":\"bbb\",\"commit_timestamp\":\"2025-10-29T09:00:00Z\",\"build_date\":\"2025-10-30\"}',
          '2026-11-22T10:00:00.123456Z', '2026-11-22T11:00:00.999Z', '2026-11-22T12:00:00.5Z'),
         ('legacy', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_api, addr) = start_api(&pg.url(), &[]).await;
    let url = format!("http://{addr}");

    let (code, body) = http_get(&addr, "/workers").unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"workers": [
            {"node_id": "legacy",
             "info": {"version": "unknown", "commit_sha": "unknown", "commit_timestamp": "unknown", "build_date": "unknown"},
             "created_at": "2026-01-01T00:00:00Z", "registered_at": "2026-01-01T00:00:00Z", "heartbeat_at": "2026-01-01T00:00:00Z",
             "running": false},
            {"node_id": "worker-02",
             "info": {"version": "v2", "commit_sha": "bbb", "commit_timestamp": "2025-10-29T09:00:00Z", "build_date": "2025-10-30"},
             "created_at": "2026-11-22T10:00:00Z", "registered_at": "2026-11-22T11:00:00Z", "heartbeat_at": "2026-11-22T12:00:00Z",
             "running": false}
        ]}),
        "sorted by node id, whole seconds (truncated), \"unknown\" for missing info, no process holds either node id"
    );
    // A row whose info is `{}`, byte for byte: every info field is the string "unknown",
    // as Amp's Admin API answers it (Amp's own ampctl fails on null there).
    assert_eq!(
        http_get(&addr, "/workers/legacy").unwrap(),
        (
            200,
            r#"{"node_id":"legacy","info":{"version":"unknown","commit_sha":"unknown","commit_timestamp":"unknown","build_date":"unknown"},"created_at":"2026-01-01T00:00:00Z","registered_at":"2026-01-01T00:00:00Z","heartbeat_at":"2026-01-01T00:00:00Z","running":false}"#
                .to_owned()
        )
    );
    let ts = Regex::new(r#""\w+_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ""#).unwrap();
    assert_eq!(ts.find_iter(&body).count(), 6, "{body}");

    assert_eq!(
        http_get(&addr, "/workers/nobody").unwrap(),
        (
            404,
            r#"{"error_code":"WORKER_NOT_FOUND","error_message":"worker \"nobody\" not found"}"#
                .to_owned()
        )
    );
    let (code, body) = http_get(&addr, "/workers/1bad").unwrap();
    assert_eq!(code, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_code"],
        "INVALID_NODE_ID"
    );
    assert_eq!(http_get(&addr, "/nope").unwrap().0, 404);
    let (code, doc) = http_get(&addr, "/openapi.json").unwrap();
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(
        doc["paths"]["/workers"]["get"].is_object()
            && doc["paths"]["/workers/{id}"]["get"].is_object()
    );
    assert_eq!(
        doc,
        serde_json::to_value(amp_operator::admin_api::openapi()).unwrap()
    );

    // ampctl: --json is the API body byte for byte; table shows unknown; exit codes.
    let (code, out, _) = ampctl(&url, &["worker", "list", "--json"]);
    assert_eq!(
        (code, out.trim_end()),
        (Some(0), http_get(&addr, "/workers").unwrap().1.as_str())
    );
    let (code, out, _) = ampctl(&url, &["worker", "inspect", "worker-02", "--json"]);
    assert_eq!(
        (code, out.trim_end()),
        (
            Some(0),
            http_get(&addr, "/workers/worker-02").unwrap().1.as_str()
        )
    );
    let (code, out, _) = ampctl(&url, &["worker", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        Regex::new(r"(?m)^legacy\s+Stopped\s+unknown\s+\d+d ago")
            .unwrap()
            .is_match(&out),
        "{out}"
    );
    let (code, _, err) = ampctl(&url, &["worker", "inspect", "nobody"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "error: worker \"nobody\" not found\n")
    );
    let (code, _, err) = ampctl(&url, &["worker", "inspect", "1bad"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: invalid node id \"1bad\""), "{err}");
    let (code, _, _) = ampctl(&url, &["worker", "list", "--bogus"]);
    assert_eq!(code, Some(2));

    let (code, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "amp_admin_workers 2",
        "amp_admin_workers_stale 2",
        r#"amp_admin_http_requests_total{method="GET",route="/workers/{id}",status="404"} 2"#,
        "amp_admin_http_request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }

    // DB down: readiness fails, the API answers 503 JSON with the real cause (not our
    // statement's name), ampctl exits 2 with it in one line naming the URL.
    pool.close().await;
    pg.stop().unwrap();
    assert_eq!(http_get(&addr, "/readyz").unwrap().0, 503);
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    let refused = r#"{"error_code":"METADATA_DB_UNAVAILABLE","error_message":"metadata DB unavailable: connection refused"}"#;
    for path in ["/workers", "/workers?limit=10", "/workers/worker-02"] {
        assert_eq!(
            http_get(&addr, path).unwrap(),
            (503, refused.to_owned()),
            "{path}"
        );
    }
    for (args, path) in [
        (&["worker", "list"][..], "workers"),
        (&["worker", "inspect", "worker-02"], "workers/worker-02"),
        (&["worker", "check"], "workers"),
    ] {
        let (code, out, err) = ampctl(&url, args);
        assert_eq!(
            (code, out.as_str(), err),
            (
                Some(2),
                "",
                format!(
                    "error: metadata DB unavailable: connection refused (503 METADATA_DB_UNAVAILABLE from {url}/{path})\n"
                )
            ),
            "{args:?}"
        );
    }
}

/// What a person reads from `list`, `inspect` and `check`: STATUS and the verdict judged
/// by the same threshold, one age format (`10m ago`), thresholds in units (`30s`), exit
/// codes; and the reported commit time in the whole-second form, like every timestamp.
#[tokio::test(flavor = "multi_thread")]
async fn text_output_states_health_in_one_age_format() {
    let (pg, pool) = migrated_db().await;
    // Ages that read the same for the whole test, except the fresh heartbeat (masked).
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at) VALUES
         ('worker-01', '{\"version\":\"v2\",\"commit_sha\":\"aaa\",\"commit_timestamp\":\"2026-11-23T10:38:36.000000000Z\",\"build_date\":\"2026-11-23\"}',
          now() - interval '3 days 1 minute', now() - interval '150 minutes', now()),
         ('worker-02', '{\"version\":\"v1\",\"commit_timestamp\":\"2026-11-23T11:38:36.5+01:00\"}',
          now() - interval '3 days 1 minute', now() - interval '3 days 1 minute', now() - interval '10 minutes 30 seconds')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Both worker processes run (they hold their node id locks); only heartbeats differ.
    let _processes = hold_node_id_locks(&pg.url(), &["worker-01", "worker-02"]).await;
    let (_api, addr) = start_api(&pg.url(), &[]).await;
    let url = format!("http://{addr}");
    let fresh = Regex::new(r"\b\d{1,2}s ago").unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = ampctl(&url, args);
        (code, fresh.replace_all(&out, "Ns ago").into_owned(), err)
    };

    // Commit times as reported by vergen (nine digits) and with an offset: whole seconds, Z.
    let (code, body) = http_get(&addr, "/workers/worker-02").unwrap();
    assert_eq!(code, 200);
    let info = &serde_json::from_str::<Value>(&body).unwrap()["info"];
    assert_eq!(
        info,
        &json!({"version": "v1", "commit_sha": "unknown", "commit_timestamp": "2026-11-23T10:38:36Z", "build_date": "unknown"})
    );
    let (_, body) = http_get(&addr, "/workers?limit=1").unwrap();
    assert!(
        body.contains(r#""info":{"version":"v2","commit_sha":"aaa","commit_timestamp":"2026-11-23T10:38:36Z","build_date":"2026-11-23"}"#),
        "{body}"
    );

    assert_eq!(
        run(&["worker", "list"]),
        (
            Some(0),
            "NODE ID     STATUS    VERSION   JOBS   HEARTBEAT   REGISTERED   CREATED\n\
             worker-01   Healthy   v2               Ns ago      2h ago       3d ago\n\
             worker-02   Stale     v1               10m ago     3d ago       3d ago\n"
                .to_owned(),
            String::new()
        )
    );
    // --stale-after filters and judges: only the stale worker, with its STATUS.
    let (code, out, _) = run(&["worker", "list", "--stale-after", "5m"]);
    assert_eq!(
        (code, out.lines().collect::<Vec<_>>()),
        (
            Some(0),
            vec![
                "NODE ID     STATUS   VERSION   JOBS   HEARTBEAT   REGISTERED   CREATED",
                "worker-02   Stale    v1               10m ago     3d ago       3d ago"
            ]
        )
    );
    // A filter that keeps nobody says so, not "no workers registered".
    let (code, out, _) = run(&["worker", "list", "--stale-after", "1h"]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "NODE ID   STATUS   VERSION   JOBS   HEARTBEAT   REGISTERED   CREATED\n\
             (no worker's heartbeat is older than 1h; 2 registered)\n"
        )
    );

    let (code, out, _) = run(&["worker", "inspect", "worker-02"]);
    assert_eq!(code, Some(0), "a stale worker is an answer, not an error");
    assert_eq!(
        out.lines().take(5).collect::<Vec<_>>(),
        [
            "Node ID:          worker-02",
            "Status:           Stale (heartbeat 10m ago, threshold 30s)",
            "Version:          v1",
            "Commit SHA:       unknown",
            "Commit Timestamp: 2026-11-23T10:38:36Z",
        ]
    );
    let (code, out, _) = run(&["worker", "get", "worker-02", "--stale-after", "1h"]);
    assert_eq!(
        (code, out.lines().nth(1)),
        (
            Some(0),
            Some("Status:           Healthy (heartbeat 10m ago, threshold 1h)")
        )
    );
    let (_, out, _) = run(&["worker", "inspect", "worker-01"]);
    assert_eq!(
        out.lines().nth(1),
        Some("Status:           Healthy (heartbeat Ns ago, threshold 30s)")
    );

    assert_eq!(
        run(&["worker", "check"]),
        (
            Some(1),
            "✓ worker-01: healthy, heartbeat Ns ago, v2\n❌ worker-02: stale, heartbeat 10m ago (threshold 30s)\n".to_owned(),
            "1 problem(s) across 2 worker(s)\n".to_owned()
        )
    );
    assert_eq!(
        run(&["worker", "check", "--stale-after", "15m", "--expect-version", "v2"]),
        (
            Some(1),
            "✓ worker-01: healthy, heartbeat Ns ago, v2\n❌ worker-02: wrong version, v1 (expected v2)\n".to_owned(),
            "1 problem(s) across 2 worker(s)\n".to_owned()
        )
    );
    let (code, out, err) = run(&["worker", "check", "--stale-after", "15m"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            Some(0),
            "✓ worker-01: healthy, heartbeat Ns ago, v2\n✓ worker-02: healthy, heartbeat 10m ago, v1\n",
            ""
        )
    );
}

/// Whether a worker process runs is the node id lock (read from `pg_locks` by the API in
/// the same statement): a stopped worker is `Stopped` whatever its heartbeat, fails
/// `check` while recently stopped (a crash is a failure), and is retired, counted in one
/// line, once stopped longer than `--forget-stopped-after` (`--all` judges it again).
#[tokio::test(flavor = "multi_thread")]
async fn stopped_workers_are_named_judged_then_retired() {
    let (pg, pool) = migrated_db().await;
    register_row(&pool, "worker-01", "v2").await; // running
    register_row_unlocked(&pool, "worker-02", "v2").await; // crashed just now
    register_row_unlocked(&pool, "worker-03", "v1").await; // stopped an hour ago
    sqlx::query(
        "UPDATE workers SET heartbeat_at = now() - interval '1 hour' WHERE node_id = 'worker-03'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_api, addr) = start_api(&pg.url(), &[]).await;
    let url = format!("http://{addr}");
    let fresh = Regex::new(r"\b\d{1,2}s ago").unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = ampctl(&url, args);
        (code, fresh.replace_all(&out, "Ns ago").into_owned(), err)
    };

    let running = |path: &str| {
        let (code, body) = http_get(&addr, path).unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    assert_eq!(running("/workers/worker-01")["running"], true);
    assert_eq!(running("/workers/worker-02")["running"], false);
    let listed: Vec<Value> = ["/workers", "/workers?limit=2"]
        .iter()
        .map(|p| running(p)["workers"].clone())
        .collect();
    for list in &listed {
        let flags: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|w| &w["running"])
            .collect();
        assert_eq!(flags[..2], [&json!(true), &json!(false)], "{list}");
    }

    let (code, out, err) = run(&["worker", "list"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            Some(0),
            "NODE ID     STATUS    VERSION   JOBS   HEARTBEAT   REGISTERED   CREATED\n\
             worker-01   Healthy   v2               Ns ago      Ns ago       Ns ago\n\
             worker-02   Stopped   v2               Ns ago      Ns ago       Ns ago\n\
             worker-03   Stopped   v1               60m ago     Ns ago       Ns ago\n",
            ""
        ),
        "list keeps every worker; our API says who runs, so no note"
    );
    let (_, out, _) = run(&["worker", "inspect", "worker-02"]);
    assert_eq!(
        out.lines().nth(1),
        Some("Status:           Stopped (no process holds its node id; last heartbeat Ns ago)")
    );

    let stopped = "❌ worker-02: stopped, no process holds its node id (last heartbeat Ns ago)\n";
    assert_eq!(
        run(&["worker", "check"]),
        (
            Some(1),
            format!("✓ worker-01: healthy, heartbeat Ns ago, v2\n{stopped}"),
            "1 worker(s) stopped more than 15m ago: retired, not judged (--all includes them)\n\
             1 problem(s) across 2 worker(s)\n"
                .to_owned()
        )
    );
    assert_eq!(
        run(&["worker", "check", "--all"]),
        (
            Some(1),
            format!(
                "✓ worker-01: healthy, heartbeat Ns ago, v2\n{stopped}\
                 ❌ worker-03: stopped, no process holds its node id (last heartbeat 60m ago)\n"
            ),
            "2 problem(s) across 3 worker(s)\n".to_owned()
        )
    );
    // A longer delay judges the hour-old stop as well.
    assert_eq!(
        run(&["worker", "check", "--forget-stopped-after", "2h"]).2,
        "2 problem(s) across 3 worker(s)\n"
    );
    let (code, out, _) = run(&["worker", "check", "--json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            code,
            &doc["ok"],
            &doc["workers"],
            &doc["retired"],
            &doc["problems"]
        ),
        (Some(1), &json!(false), &json!(2), &json!(1), &json!(1))
    );
    assert_eq!(doc["findings"][1]["result"], "stopped");

    // versions counts what runs or recently stopped: the retired v1 is not a mismatch.
    assert_eq!(
        run(&["worker", "versions"]),
        (
            Some(0),
            "      2 v2\n".to_owned(),
            "1 worker(s) stopped more than 15m ago: retired, not counted (--all includes them)\n"
                .to_owned()
        )
    );
    assert_eq!(
        run(&["worker", "versions", "--json"]).1,
        "{\"mismatch\":false,\"retired\":1,\"versions\":[{\"count\":2,\"version\":\"v2\"}]}\n"
    );
    let (code, out, err) = run(&["worker", "versions", "--all", "--expect-single"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            Some(1),
            "      2 v2\n      1 v1\n",
            "⚠ version mismatch: 2 versions running\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_is_enforced_on_worker_endpoints_only() {
    let (pg, _pool) = migrated_db().await;
    let (_api, addr) = start_api(&pg.url(), &["--auth-token", "s3cret"]).await;
    let url = format!("http://{addr}");
    assert_eq!(
        http_get(&addr, "/workers").unwrap(),
        (
            401,
            r#"{"error_code":"UNAUTHORIZED","error_message":"missing or invalid bearer token"}"#
                .to_owned()
        )
    );
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    let (code, _, err) = ampctl(&url, &["worker", "list"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("missing or invalid bearer token"), "{err}");
    assert!(
        err.trim_end().ends_with(
            "pass the Admin API's token with --auth-token-file, --auth-token or AMP_AUTH_TOKEN"
        ),
        "{err}"
    );
    let (code, out, _) = ampctl(
        &url,
        &["--auth-token", "s3cret", "worker", "list", "--json"],
    );
    assert_eq!((code, out.as_str()), (Some(0), "{\"workers\":[]}\n"));
    let (code, out, _) = ampctl(&url, &["--auth-token", "s3cret", "worker", "check"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(1), "❌ no workers registered\n")
    );
    // For CI: the same verdict as JSON, same exit code.
    let (code, out, _) = ampctl(
        &url,
        &["--auth-token", "s3cret", "worker", "check", "--json"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!({"ok": false, "workers": 0, "problems": 1, "retired": 0, "findings": []})
    );
}

/// A TCP server that answers every connection with `response`, for `conns` connections.
fn fake_server(response: &'static [u8], delay: Duration) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4).flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            std::thread::sleep(delay);
            let _ = stream.write_all(response);
        }
    });
    addr
}

#[test]
fn ampctl_fails_with_one_clear_line_on_bad_answers() {
    // Nobody listening.
    let dead = free_addr();
    let (code, _, err) = ampctl(&format!("http://{dead}"), &["worker", "list"]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the Admin API at http://{dead}/workers"
        )),
        "{err}"
    );

    // Garbage instead of JSON.
    let addr = fake_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n<html>hi</h",
        Duration::ZERO,
    );
    let (code, _, err) = ampctl(&format!("http://{addr}"), &["worker", "list"]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unexpected answer from") && err.contains("is this the Admin API?"),
        "{err}"
    );

    // An HTML error page instead of the JSON error body.
    let addr = fake_server(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad",
        Duration::ZERO,
    );
    let (code, _, err) = ampctl(&format!("http://{addr}"), &["worker", "inspect", "w1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("HTTP 502 Bad Gateway"), "{err}");

    // Too slow.
    let addr = fake_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        Duration::from_secs(5),
    );
    let started = std::time::Instant::now();
    let (code, _, err) = ampctl(
        &format!("http://{addr}"),
        &["--timeout", "500ms", "worker", "list"],
    );
    assert_eq!(code, Some(2));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        err.trim_end(),
        format!("error: the Admin API at http://{addr}/workers did not answer within 500ms")
    );

    // Not a URL.
    let (code, _, err) = ampctl("localhost:1610", &["worker", "list"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: invalid Admin API URL"), "{err}");
}

/// `GET /workers?limit=N&continue=TOKEN` pages the Kubernetes way; without `limit` one
/// streamed answer holds every worker; ampctl follows pages and prints exactly that.
#[tokio::test(flavor = "multi_thread")]
async fn workers_are_paged_the_kubernetes_way_and_ampctl_follows_pages() {
    let (pg, pool) = migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info, created_at, registered_at, heartbeat_at)
         SELECT format('worker-%s', lpad(i::text, 4, '0')), '{\"version\":\"v1\"}', now(), now(), now()
         FROM generate_series(0, 2499) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_api, addr) = start_api(&pg.url(), &[]).await;

    let (code, all) = http_get(&addr, "/workers").unwrap();
    assert_eq!(code, 200);
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["workers"].as_array().unwrap().len(), 2500);
    assert!(all.get("continue").is_none(), "no continue without limit");

    // Pages of 1000: 1000, 1000, 500; the last has no `continue`.
    let mut paged = Vec::new();
    let mut path = "/workers?limit=1000".to_owned();
    let mut sizes = Vec::new();
    loop {
        let (code, body) = http_get(&addr, &path).unwrap();
        assert_eq!(code, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let workers = page["workers"].as_array().unwrap();
        sizes.push(workers.len());
        paged.extend(workers.iter().cloned());
        match page.get("continue").and_then(Value::as_str) {
            Some(token) => path = format!("/workers?limit=1000&continue={token}"),
            None => break,
        }
    }
    assert_eq!(sizes, [1000, 1000, 500]);
    assert_eq!(
        Value::Array(paged),
        all["workers"],
        "pages concatenate to the full list"
    );
    // An exact fit: the page that ends the list has no `continue` either.
    let (_, body) = http_get(&addr, "/workers?limit=2500").unwrap();
    assert!(
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .get("continue")
            .is_none()
    );

    for bad in ["limit=0", "limit=10001", "limit=ten", "continue="] {
        let (code, body) = http_get(&addr, &format!("/workers?{bad}")).unwrap();
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error_code"],
            "INVALID_PAGE",
            "{bad}"
        );
    }

    // Any other token is a position in node id order (rows a foreign writer stored may
    // follow no rule): `zzz` is after every worker, `1bad` before all of them.
    for (token, expected) in [
        ("zzz", 0),
        ("1bad", all["workers"].as_array().unwrap().len()),
    ] {
        let (code, body) = http_get(&addr, &format!("/workers?continue={token}")).unwrap();
        assert_eq!(code, 200, "{token}: {body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            page["workers"].as_array().unwrap().len(),
            expected,
            "{token}"
        );
    }

    // ampctl follows 3 pages and prints exactly the API's unpaged shape.
    let (code, out, err) = ampctl(&format!("http://{addr}"), &["worker", "list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), all);
    let (_, unpaged) = http_get(&addr, "/workers").unwrap();
    assert_eq!(out.trim_end(), unpaged, "byte-for-byte the streamed answer");
}

/// 1,000 requests with junk methods and paths add no metric series: unknown methods
/// count as `other` and unmatched paths as `unmatched`.
#[tokio::test(flavor = "multi_thread")]
async fn junk_requests_do_not_grow_the_metric_series() {
    let (pg, _pool) = migrated_db().await;
    let (_api, addr) = start_api(&pg.url(), &[]).await;
    let raw = |method: &str, path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "{method} {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
    };
    let series = || {
        let (_, body) = http_get(&addr, "/metrics").unwrap();
        body.lines().filter(|l| !l.starts_with('#')).count()
    };
    raw("M0", "/junk-0");
    raw("M0", "/workers");
    raw("M0", "/metrics");
    raw("GET", "/junk-0");
    series(); // the scrape's own series exist from here on
    let before = series();
    for i in 1..=1000 {
        // Junk methods on real routes, and junk paths.
        let path = match i % 3 {
            0 => "/workers".to_owned(),
            1 => "/metrics".to_owned(),
            _ => format!("/junk-{i}"),
        };
        raw(&format!("M{i}"), &path);
    }
    let after = series();
    assert_eq!(after, before, "1,000 junk requests added series");
    let (_, body) = http_get(&addr, "/metrics").unwrap();
    for series in [
        r#"method="other",route="unmatched",status="404""#,
        r#"method="other",route="/workers",status="405""#,
    ] {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
}

/// Text from the server never reaches the terminal raw: a version with ANSI escapes and a
/// newline is shown escaped on one row; an error message with them is one line; an
/// endless answer is cut off with one clear line.
#[tokio::test(flavor = "multi_thread")]
async fn ampctl_escapes_server_text_and_cuts_off_endless_answers() {
    let (pg, pool) = migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info) VALUES
         ('worker-evil', jsonb_build_object('version', E'v1\\u001b[2J\\nFAKE-ROW', 'commit_sha', E'\\u0007sha')),
         ('worker-ok', '{\"version\":\"v1\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Running workers: `check` then shows each one's version (a stopped one's line does not).
    let _processes = hold_node_id_locks(&pg.url(), &["worker-evil", "worker-ok"]).await;
    let (_api, addr) = start_api(&pg.url(), &[]).await;
    let url = format!("http://{addr}");
    for args in [
        &["worker", "list"][..],
        &["worker", "inspect", "worker-evil"],
        &["worker", "versions"],
        &["worker", "check"],
    ] {
        let (_, out, err) = ampctl(&url, args);
        let all = format!("{out}{err}");
        assert!(
            !all.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: raw control characters: {all:?}"
        );
        assert!(
            !all.lines().any(|l| l.starts_with("FAKE-ROW")),
            "{args:?}: a forged line: {all}"
        );
        assert!(all.contains(r"v1\e[2J\nFAKE-ROW"), "{args:?}: {all}");
    }
    let (_, table, _) = ampctl(&url, &["worker", "list"]);
    assert_eq!(
        table.lines().count(),
        3,
        "header + one row per worker: {table}"
    );
    // --json stays the exact API document (JSON escapes, no raw control bytes).
    let (_, json, _) = ampctl(&url, &["worker", "list", "--json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["workers"][0]["info"]["version"], "v1\u{1b}[2J\nFAKE-ROW");

    // An error body with escapes: one line, escaped.
    let evil = fake_server(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"error_code\":\"X\",\"error_message\":\"gone\\u001b[2J\\nerror: FORGED\"}",
        Duration::ZERO,
    );
    let (code, _, err) = ampctl(&format!("http://{evil}"), &["worker", "list"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(r"gone\e[2J\nerror: FORGED"), "{err:?}");

    // An answer that never ends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endless = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Some(Ok(mut s)) = listener.incoming().next() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"workers\":[",
            );
            let chunk = vec![b' '; 1 << 20];
            while s.write_all(&chunk).is_ok() {}
        }
    });
    let started = std::time::Instant::now();
    let (code, _, err) = ampctl(
        &format!("http://{endless}"),
        &["--timeout", "60s", "worker", "list"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("exceeds 67108864 bytes"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

/// GET with one Authorization header value (None: no header).
fn get_with_auth(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let header = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n{header}\r\n").unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The bearer scheme is case-insensitive, the token compared whole; probes stay open;
/// `--auth-metrics` closes /metrics and /openapi.json too; /readyz tells an
/// unauthenticated client only that the DB is unreachable, never why.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_auth_cases_open_probes_and_a_readyz_without_details() {
    let (mut pg, _pool) = migrated_db().await;
    let (_api, addr) = start_api(&pg.url(), &["--auth-token", "s3cret"]).await;
    for (auth, want) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Bearer s3cre"), 401),
        (Some("Bearer s3cret-and-more"), 401),
        (Some("Basic s3cret"), 401),
        (Some("s3cret"), 401),
        (Some("Bearer s3cret"), 200),
        (Some("bearer s3cret"), 200),
        (Some("BEARER s3cret"), 200),
    ] {
        assert_eq!(get_with_auth(&addr, "/workers", auth).0, want, "{auth:?}");
        assert_eq!(
            get_with_auth(&addr, "/workers/w1", auth).0,
            if want == 200 { 404 } else { 401 },
            "{auth:?}"
        );
    }
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            get_with_auth(&addr, open, None).0,
            200,
            "{open} is open by default"
        );
    }
    let (_, doc) = get_with_auth(&addr, "/openapi.json", None);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );

    let (_api2, closed) = start_api(
        &pg.url(),
        &["--auth-token", "s3cret", "--auth-metrics", "true"],
    )
    .await;
    for path in ["/metrics", "/openapi.json"] {
        assert_eq!(get_with_auth(&closed, path, None).0, 401, "{path}");
        assert_eq!(
            get_with_auth(&closed, path, Some("Bearer s3cret")).0,
            200,
            "{path}"
        );
    }
    assert_eq!(get_with_auth(&closed, "/healthz", None).0, 200);

    pg.stop().unwrap();
    let (code, body) = get_with_auth(&addr, "/readyz", None);
    assert_eq!(
        (code, body.as_str()),
        (503, "metadata DB unavailable: connection refused")
    );
}

/// A streamed list outlives the per-query `--db-timeout`: a client that reads 100,000
/// rows slowly still gets all of them (the stream has its own, longer, statement limit).
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reader_of_a_large_fleet_gets_the_whole_list() {
    let (pg, pool) = migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info) SELECT format('worker-%s', lpad(i::text, 6, '0')), '{\"version\":\"v1\"}'
         FROM generate_series(0, 99999) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_api, addr) = start_api(&pg.url(), &["--db-timeout", "1s"]).await;
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "GET /workers HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut first = vec![0u8; 64 * 1024];
    let n = s.read(&mut first).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let raw = [&first[..n], &rest[..]].concat();
    let text = String::from_utf8(raw).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let v: Value = serde_json::from_str(body).expect("a complete JSON document");
    assert_eq!(v["workers"].as_array().unwrap().len(), 100_000);
}
