//! Hostile input for the Admin API: schemathesis generates requests from the API's own
//! OpenAPI document and checks every answer (no 5xx, responses match the schema).
//! Needs the `st` CLI (`pip install schemathesis`; ./scripts/test.sh installs it).

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let st = std::env::var("AMP_SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    assert!(
        Command::new(&st)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "schemathesis CLI `{st}` not found: pip install schemathesis (./scripts/test.sh does this)"
    );
    let (pg, pool) = migrated_db().await;
    sqlx::query(
        "INSERT INTO workers (node_id, info) SELECT 'worker-' || lpad(i::text, 2, '0'),
           jsonb_build_object('version', 'v0.0.22-15-g8b065bde', 'commit_sha', '8b065bde',
                              'commit_timestamp', '2025-10-29T09:00:00Z', 'build_date', '2025-10-30')
         FROM generate_series(1, 20) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    // An old row without build info must not break the schema either.
    sqlx::query("INSERT INTO workers (node_id, info) VALUES ('legacy-worker', '{}')")
        .execute(&pool)
        .await
        .unwrap();

    // With a token, as a production Admin API runs: schemathesis sends it on every
    // request (it must not fuzz its way around auth into a 5xx either).
    let (_api, addr) = common::start_admin_api(&pg.url(), &["--auth-token", "fuzz-token"]).await;

    // Five operations (workers, one worker, the probes, /metrics); two seeds give about
    // 4,000 requests, over the 3,000 we promise.
    let reports = tempfile::tempdir().unwrap();
    let (mut total, mut server_errors) = (0, 0);
    for seed in ["1610", "1611"] {
        let har = reports.path().join(format!("requests-{seed}.har"));
        let out = Command::new(&st)
            .arg("--config-file")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/schemathesis.toml"
            ))
            .args([
                "run",
                &format!("http://{addr}/openapi.json"),
                "--checks",
                "all",
                "--max-examples",
                "1000",
            ])
            .args(["--header", "Authorization: Bearer fuzz-token"])
            .args(["--seed", seed, "--report", "har", "--report-har-path"])
            .arg(&har)
            .output()
            .expect("run schemathesis");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis (seed {seed}) found problems:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let har: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&har).expect("HAR report")).unwrap();
        let entries = har["log"]["entries"].as_array().expect("HAR entries");
        total += entries.len();
        server_errors += entries
            .iter()
            .filter(|e| e["response"]["status"].as_u64().unwrap_or(0) >= 500)
            .count();
    }
    eprintln!("RELIABILITY: schemathesis sent {total} requests, {server_errors} answered 5xx");
    assert_eq!(server_errors, 0);
    assert!(total >= 3000, "only {total} requests generated");
}
