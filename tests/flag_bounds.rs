//! Every duration, interval, budget and count flag is bounded at parse time: a value out
//! of range is refused with exit 2 and one `error:` line naming the flag and the range,
//! before anything connects (the database URL points at a closed port and is never
//! tried) or writes.

use std::process::Command;

const AMPD: &str = env!("CARGO_BIN_EXE_ampd");
const AMPCTL: &str = env!("CARGO_BIN_EXE_ampctl");
const DB: &str = "postgres://amp@127.0.0.1:1/amp";

/// (binary, arguments before the flag, flag, too small, too large, the range's words).
type Case = (
    &'static str,
    Vec<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

fn cases() -> Vec<Case> {
    let worker = vec!["worker", "--node-id", "w", "--database-url", DB];
    let operator = vec!["operator", "--database-url", DB];
    let api = vec!["admin-api", "--database-url", DB];
    vec![
        (
            AMPD,
            worker.clone(),
            "--heartbeat-interval",
            "0s",
            "2m",
            "must be from 100ms to 1m",
        ),
        (
            AMPD,
            worker.clone(),
            "--lock-wait",
            "61m",
            "2h",
            "must be from 0s to 1h",
        ),
        (
            AMPD,
            worker.clone(),
            "--max-backoff",
            "0s",
            "1h",
            "must be from 100ms to 5m",
        ),
        (
            AMPD,
            vec!["migrate", "--database-url", DB],
            "--connect-wait",
            "11m",
            "1h",
            "must be from 0s to 10m",
        ),
        (
            AMPD,
            operator.clone(),
            "--lease-duration",
            "1s",
            "1h",
            "must be from 2s to 5m",
        ),
        (
            AMPD,
            operator.clone(),
            "--poll-interval",
            "0s",
            "1h",
            "must be from 100ms to 5m",
        ),
        (
            AMPD,
            operator.clone(),
            "--status-refresh",
            "0s",
            "2days",
            "must be from 1s to 1day",
        ),
        (
            AMPD,
            operator.clone(),
            "--gc-after",
            "500ms",
            "31days",
            "must be from 1s to 30days, or 0 to disable",
        ),
        (
            AMPD,
            operator.clone(),
            "--gc-stopped-after",
            "500ms",
            "31days",
            "must be from 1s to 30days, or 0 to disable",
        ),
        (
            AMPD,
            operator.clone(),
            "--status-refresh-budget",
            "0",
            "1e9",
            "must be a number above 0 and at most 10000 (per second)",
        ),
        (
            AMPD,
            operator.clone(),
            "--write-concurrency",
            "0",
            "1000",
            "must be a whole number from 1 to 256",
        ),
        (
            AMPD,
            api.clone(),
            "--http-header-timeout",
            "0s",
            "1h",
            "must be from 1s to 10m",
        ),
        (
            AMPD,
            api.clone(),
            "--http-request-timeout",
            "0s",
            "1h",
            "must be from 1s to 10m",
        ),
        (
            AMPD,
            api.clone(),
            "--http-max-connections",
            "0",
            "2000000",
            "must be a whole number from 1 to 1000000",
        ),
        (
            AMPD,
            api.clone(),
            "--stale-after",
            "0s",
            "60days",
            "must be from 1s to 30days",
        ),
        (
            AMPCTL,
            vec!["worker", "list"],
            "--timeout",
            "0s",
            "1h",
            "must be from 100ms to 10m",
        ),
        (
            AMPCTL,
            vec!["worker", "list", "--watch"],
            "--interval",
            "0s",
            "2h",
            "must be from 500ms to 1h",
        ),
        (
            AMPCTL,
            vec!["worker", "list"],
            "--stale-after",
            "0s",
            "60days",
            "must be from 1s to 30days",
        ),
        (
            AMPCTL,
            vec!["worker", "check"],
            "--stale-after",
            "0s",
            "60days",
            "must be from 1s to 30days",
        ),
    ]
}

#[test]
fn every_bounded_flag_refuses_values_outside_its_range_with_exit_2() {
    for (bin, before, flag, low, high, words) in cases() {
        for value in [low, high] {
            let out = Command::new(bin)
                .args(&before)
                .arg(format!("{flag}={value}"))
                .env("AMP_ADMIN_URL", "http://127.0.0.1:1")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{flag}={value}: {stderr}");
            let first = stderr.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("error: invalid value '{value}' for '{flag} "))
                    && first.ends_with(words),
                "{flag}={value}: {first}"
            );
            assert!(out.stdout.is_empty(), "{flag}={value}: nothing runs");
        }
    }
}

#[test]
fn garbage_durations_say_how_to_write_one() {
    let out = Command::new(AMPD)
        .args([
            "worker",
            "--node-id",
            "w",
            "--database-url",
            DB,
            "--heartbeat-interval",
            "soon",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or_default()
            .contains("not a duration (expected number at 0); write it like 500ms, 30s, 5m or 1h"),
        "{stderr}"
    );
}
