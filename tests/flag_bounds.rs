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
            "--jobs-interval",
            "500ms",
            "11m",
            "must be from 1s to 10m",
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

/// The property behind the table above, over every flag that takes a duration, found
/// by parsing rather than listed: each accepts exactly one range (plus `0` where that
/// disables the feature), and its error names that range. In-process: clap's parser
/// only, nothing runs.
mod every_duration_flag {
    use amp_operator::ampctl::Cli as Ampctl;
    use amp_operator::cli::ampd::Cli as Ampd;
    use clap::{CommandFactory, Parser};
    use proptest::prelude::*;
    use std::time::Duration;

    const DB: &str = "postgres://amp@127.0.0.1:1/amp";

    /// A flag and the arguments that make its command parse without it.
    struct Flag {
        argv: Vec<String>,
        flag: String,
        ampctl: bool,
    }

    impl Flag {
        fn parse(&self, value: &str) -> Result<(), String> {
            let mut argv = self.argv.clone();
            argv.push(format!("--{}={value}", self.flag));
            let result = if self.ampctl {
                Ampctl::try_parse_from(argv).map(drop)
            } else {
                Ampd::try_parse_from(argv).map(drop)
            };
            result.map_err(|e| e.to_string())
        }
    }

    fn base(bin: &str, path: &[&str], flag: &str) -> Vec<String> {
        let mut argv: Vec<String> = std::iter::once(bin)
            .chain(path.iter().copied())
            .map(String::from)
            .collect();
        match path.last().copied() {
            Some("worker") if bin == "ampd" => {
                argv.extend(["--node-id", "w", "--database-url", DB].map(String::from))
            }
            Some("migrate" | "admin-api" | "operator") => {
                argv.extend(["--database-url", DB].map(String::from))
            }
            Some("inspect") => argv.push("w".into()),
            _ => {}
        }
        if flag == "interval" {
            argv.push("--watch".into());
        }
        argv
    }

    fn all_flags() -> Vec<Flag> {
        let mut out = Vec::new();
        let ampd = Ampd::command();
        for sub in ampd.get_subcommands() {
            let args = sub.get_arguments().chain(ampd.get_arguments());
            for arg in args.filter(|a| a.get_action().takes_values()) {
                let Some(long) = arg.get_long() else { continue };
                out.push(Flag {
                    argv: base("ampd", &[sub.get_name()], long),
                    flag: long.into(),
                    ampctl: false,
                });
            }
        }
        let ampctl = Ampctl::command();
        for group in ampctl.get_subcommands() {
            for sub in group.get_subcommands() {
                let args = sub.get_arguments().chain(ampctl.get_arguments());
                for arg in args.filter(|a| a.get_action().takes_values()) {
                    let Some(long) = arg.get_long() else { continue };
                    out.push(Flag {
                        argv: base("ampctl", &[group.get_name(), sub.get_name()], long),
                        flag: long.into(),
                        ampctl: true,
                    });
                }
            }
        }
        out
    }

    /// (flag, lowest, highest, 0 allowed) for every flag that refuses a non-duration.
    fn duration_flags() -> Vec<(Flag, Duration, Duration, bool)> {
        all_flags()
            .into_iter()
            .filter(|f| f.parse("soon").is_err_and(|e| e.contains("not a duration")))
            .map(|f| {
                let err = f
                    .parse("100000days")
                    .expect_err("every duration has an upper bound");
                let range = err
                    .split("must be from ")
                    .nth(1)
                    .unwrap_or_else(|| panic!("--{}: no range in {err:?}", f.flag));
                let range = range.lines().next().unwrap_or_default();
                let zero = range.ends_with(", or 0 to disable");
                let range = range.trim_end_matches(", or 0 to disable");
                let (lo, hi) = range.split_once(" to ").expect("A to B");
                let parse = |s: &str| humantime::parse_duration(s).expect("a duration");
                (parse(lo), parse(hi), zero, f)
            })
            .map(|(lo, hi, zero, f)| (f, lo, hi, zero))
            .collect()
    }

    #[test]
    fn they_are_found_and_each_has_a_lower_bound_above_zero_or_says_0_disables() {
        let flags = duration_flags();
        let names: Vec<String> = flags.iter().map(|(f, ..)| f.flag.clone()).collect();
        for expected in [
            "heartbeat-interval",
            "db-timeout",
            "poll-interval",
            "stale-after",
            "timeout",
            "interval",
            "connect-wait",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not found among {names:?}"
            );
        }
        for (f, lo, _, zero) in &flags {
            // Zero is a bound only where waiting not at all makes sense.
            if lo.is_zero() {
                assert!(
                    matches!(f.flag.as_str(), "lock-wait" | "connect-wait"),
                    "--{} accepts 0",
                    f.flag
                );
            }
            let _ = zero;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn each_accepts_exactly_its_range(ms in 0u64..3_000_000_000u64, pick in any::<prop::sample::Index>()) {
            let flags = duration_flags();
            let (f, lo, hi, zero) = &flags[pick.index(flags.len())];
            // Spread the values over the flag's own scale as well as the whole range.
            let scaled = ms % (hi.as_millis() as u64 * 2 + 1);
            for v in [ms, scaled] {
                let d = Duration::from_millis(v);
                let want = (d >= *lo && d <= *hi) || (*zero && v == 0);
                let got = f.parse(&format!("{v}ms"));
                prop_assert_eq!(got.is_ok(), want, "--{}={}ms: {:?}", f.flag, v, got);
            }
        }
    }
}
