//! ampctl against Amp's own Admin API wire format (the stand-in in tests/common/amp_api.rs,
//! written from the facts sheet): every `ampctl worker` command and output format, exact
//! output and exit codes, details fetched only when a command shows them, and never more
//! than `DETAIL_CONCURRENCY` at once.

mod common;

use std::process::Command;
use std::time::Duration;

use amp_operator::admin_client::{DETAIL_CONCURRENCY, MAX_JOB_PAGES};
use amp_operator::timestamps::{format_timestamp, truncate};
use chrono::{DateTime, TimeDelta, Utc};
use common::amp_api::{AmpApi, AmpJob, AmpWorker, JobsAnswer};

const AMPCTL: &str = env!("CARGO_BIN_EXE_ampctl");
const V22: &str = "v0.0.22-15-g8b065bde";
const V21: &str = "v0.0.21-8-ga1b2c3d4";
const UNICODE: &str = "ünicode-wörker";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ampctl(url: &str, args: &[&str]) -> Run {
    let out = Command::new(AMPCTL)
        .args(["--admin-url", url])
        .args(args)
        .env_remove("AMP_AUTH_TOKEN")
        .output()
        .expect("run ampctl");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Our contract's form of a stand-in timestamp.
fn z(ts: DateTime<Utc>) -> String {
    format_timestamp(&truncate(ts))
}

/// Times whose ages read the same for the whole test (`3d`, `2h`, `5m`, `3h ago`), with
/// microseconds, as Amp stores them.
struct Clock {
    created: DateTime<Utc>,
    restarted: DateTime<Utc>,
    fresh: DateTime<Utc>,
    stale: DateTime<Utc>,
}

impl Clock {
    fn now() -> Self {
        let t0 = Utc::now();
        let micros = |d: TimeDelta| t0 - d - TimeDelta::microseconds(204_046);
        Self {
            created: micros(TimeDelta::hours(84)),
            restarted: micros(TimeDelta::minutes(150)),
            fresh: micros(TimeDelta::seconds(330)),
            stale: micros(TimeDelta::minutes(210)),
        }
    }
}

/// Registered in this order, so Amp lists them the other way round.
fn fleet(c: &Clock) -> Vec<AmpWorker> {
    let at = |id: &str, version: &str| AmpWorker {
        heartbeat_at: Some(c.fresh),
        ..AmpWorker::live(id, version, c.created)
    };
    let mut w1 = at("worker-01", V22);
    w1.registered_at = c.restarted;
    let mut unicode = at(UNICODE, "");
    unicode.info.clear();
    let mut w4 = at("worker-04", V22);
    w4.heartbeat_at = Some(c.stale);
    vec![w1, at("worker-02", V22), at("worker-03", V21), unicode, w4]
}

#[test]
fn list_json_is_amps_document_with_whole_second_timestamps_and_no_detail_requests() {
    let c = Clock::now();
    let api = AmpApi::start(fleet(&c), &[], Duration::ZERO);
    let (fresh, stale) = (z(c.fresh), z(c.stale));
    let expected = format!(
        r#"{{"workers":[{{"node_id":"worker-04","heartbeat_at":"{stale}"}},{{"node_id":"{UNICODE}","heartbeat_at":"{fresh}"}},{{"node_id":"worker-03","heartbeat_at":"{fresh}"}},{{"node_id":"worker-02","heartbeat_at":"{fresh}"}},{{"node_id":"worker-01","heartbeat_at":"{fresh}"}}]}}
"#
    );
    for args in [
        &["worker", "list", "--json"][..],
        &["worker", "ls", "--json"],
        &["worker", "list", "-o", "json"],
    ] {
        let run = ampctl(&api.url(), args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (Some(0), expected.as_str(), ""),
            "{args:?}"
        );
    }
    let run = ampctl(
        &api.url(),
        &["worker", "list", "--stale-after", "1h", "--json"],
    );
    assert_eq!(
        (run.code, run.stdout),
        (
            Some(0),
            format!(r#"{{"workers":[{{"node_id":"worker-04","heartbeat_at":"{stale}"}}]}}"#) + "\n"
        )
    );
    assert_eq!(api.list_requests(), 4);
    assert_eq!(
        api.detail_requests(),
        0,
        "--json and the stale filter need only the list"
    );
}

/// What ampctl says on stderr when the server does not report `running` (Amp's does not).
const CANNOT_TELL: &str = "note: this Admin API does not say whether worker processes run (Amp's own does not): STATUS and checks judge heartbeats only, a stopped worker shows as Stale, none is retired\n";

/// The stand-in fleet's table, as `ampctl worker list` draws it: every heartbeat is
/// minutes old, so every worker is Stale by the default 30 s.
const TABLE: &str = "\
NODE ID          STATUS   VERSION                JOBS   HEARTBEAT   REGISTERED   CREATED
worker-04        Stale    v0.0.22-15-g8b065bde   0      3h ago      3d ago       3d ago
ünicode-wörker   Stale    unknown                0      5m ago      3d ago       3d ago
worker-03        Stale    v0.0.21-8-ga1b2c3d4    0      5m ago      3d ago       3d ago
worker-02        Stale    v0.0.22-15-g8b065bde   0      5m ago      3d ago       3d ago
worker-01        Stale    v0.0.22-15-g8b065bde   0      5m ago      2h ago       3d ago
";

#[test]
fn table_csv_and_watch_show_the_details_fetched_per_worker() {
    let c = Clock::now();
    let api = AmpApi::start(fleet(&c), &[], Duration::ZERO);
    for args in [&["worker", "list"][..], &["worker", "ls"]] {
        let run = ampctl(&api.url(), args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (Some(0), TABLE, CANNOT_TELL),
            "{args:?}"
        );
    }
    assert_eq!(api.detail_requests(), 10, "one per worker and run");

    let (created, fresh) = (z(c.created), z(c.fresh));
    let row = |id: &str, version: &str, sha: &str, registered: &str, hb: &str| {
        format!(r#""{id}","{version}","{sha}","{created}","{registered}","{hb}""#) + "\n"
    };
    let sha = |v: &str| format!("sha-{v}");
    let expected = format!(
        "node_id,version,commit_sha,created_at,registered_at,heartbeat_at\n{}{}{}{}{}",
        row("worker-04", V22, &sha(V22), &created, &z(c.stale)),
        row(UNICODE, "unknown", "unknown", &created, &fresh),
        row("worker-03", V21, &sha(V21), &created, &fresh),
        row("worker-02", V22, &sha(V22), &created, &fresh),
        row("worker-01", V22, &sha(V22), &z(c.restarted), &fresh),
    );
    let run = ampctl(&api.url(), &["worker", "list", "-o", "csv"]);
    assert_eq!((run.code, run.stdout), (Some(0), expected));
    let run = ampctl(
        &api.url(),
        &["worker", "list", "--stale-after", "1h", "-o", "csv"],
    );
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    assert!(run.stdout.contains("\"worker-04\""), "{}", run.stdout);

    // --watch, stopped after its first frame.
    api.reset_counters();
    let out = Command::new("timeout")
        .args(["3", AMPCTL, "--admin-url", &api.url()])
        .args(["worker", "list", "--watch", "--interval", "10s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "stopped by timeout");
    let frame = String::from_utf8(out.stdout).unwrap();
    let (header, table) = frame.split_once("\n\n").expect("header, blank line, table");
    assert!(
        // stdout is a pipe here: plain frames, no clear-screen codes.
        header.starts_with("Every 10s: ampctl worker list    ") && !frame.contains('\x1b'),
        "{header:?}"
    );
    assert_eq!(table, TABLE);
    assert_eq!((api.list_requests(), api.detail_requests()), (1, 5));
}

#[test]
fn inspect_and_get_print_amps_object_with_only_its_timestamps_rewritten() {
    let c = Clock::now();
    let api = AmpApi::start(fleet(&c), &[], Duration::ZERO);
    let (created, fresh) = (z(c.created), z(c.fresh));
    for cmd in ["inspect", "get"] {
        let run = ampctl(&api.url(), &["worker", cmd, UNICODE, "--json"]);
        assert_eq!(
            (run.code, run.stdout),
            (
                Some(0),
                format!(
                    r#"{{"node_id":"{UNICODE}","info":{{"version":"unknown","commit_sha":"unknown","commit_timestamp":"unknown","build_date":"unknown"}},"created_at":"{created}","registered_at":"{created}","heartbeat_at":"{fresh}"}}"#
                ) + "\n"
            ),
            "{cmd}"
        );
    }
    // Amp's nine-digit commit timestamp in the whole-second form, as our Admin API
    // serves it (jq's `fromdateiso8601` parses it); the date stays a date.
    let run = ampctl(&api.url(), &["worker", "get", "worker-01", "--json"]);
    assert_eq!(
        run.stdout,
        format!(
            r#"{{"node_id":"worker-01","info":{{"version":"{V22}","commit_sha":"sha-{V22}","commit_timestamp":"2025-10-30T10:00:00Z","build_date":"2025-10-30"}},"created_at":"{created}","registered_at":"{}","heartbeat_at":"{fresh}"}}"#,
            z(c.restarted)
        ) + "\n"
    );

    let run = ampctl(&api.url(), &["worker", "inspect", UNICODE]);
    assert_eq!(
        (run.code, run.stdout),
        (
            Some(0),
            format!(
                "Node ID:          {UNICODE}\nStatus:           Stale (heartbeat 5m ago, threshold 30s)\nVersion:          unknown\nCommit SHA:       unknown\nCommit Timestamp: unknown\nBuild Date:       unknown\nCreated:          {created} (3d ago)\nRegistered:       {created} (3d ago)\nHeartbeat:        {fresh} (5m ago)\nJobs:             0 active (0 scheduled, 0 running, 0 stopping), 0 retrying (ERROR), 0 unknown\n"
            )
        )
    );
    let run = ampctl(
        &api.url(),
        &["worker", "get", "worker-01", "--stale-after", "10m"],
    );
    assert!(
        run.stdout
            .contains("(2h ago, re-registered since creation)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        (run.code, run.stdout.lines().nth(1)),
        (
            Some(0),
            Some("Status:           Healthy (heartbeat 5m ago, threshold 10m)")
        )
    );
    assert!(
        run.stdout
            .contains("\nCommit Timestamp: 2025-10-30T10:00:00Z\n"),
        "{}",
        run.stdout
    );

    // Amp's 404 body: exit 1 and our one line; an id Amp's rule rejects: exit 2, no request.
    let run = ampctl(&api.url(), &["worker", "get", "wörker-99"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(1), "", "error: worker \"wörker-99\" not found\n")
    );
    api.reset_counters();
    let run = ampctl(&api.url(), &["worker", "inspect", "9lives"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        "error: invalid node id \"9lives\": must start with a letter, then letters, digits, '_', '-', '.'\n"
    );
    assert_eq!(api.detail_requests(), 0);
}

#[test]
fn versions_and_check_judge_amps_fleet() {
    let c = Clock::now();
    let api = AmpApi::start(fleet(&c), &[], Duration::ZERO);
    let run = ampctl(&api.url(), &["worker", "versions"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            Some(0),
            "      3 v0.0.22-15-g8b065bde\n      1 v0.0.21-8-ga1b2c3d4\n      1 unknown\n",
            format!("{CANNOT_TELL}⚠ version mismatch: 3 versions running\n").as_str()
        )
    );
    let run = ampctl(&api.url(), &["worker", "versions", "--json"]);
    assert_eq!(
        run.stdout,
        format!(
            r#"{{"mismatch":true,"retired":0,"versions":[{{"count":3,"version":"{V22}"}},{{"count":1,"version":"{V21}"}},{{"count":1,"version":"unknown"}}]}}"#
        ) + "\n"
    );
    assert_eq!(
        ampctl(&api.url(), &["worker", "versions", "--expect-single"]).code,
        Some(1)
    );

    let run = ampctl(
        &api.url(),
        &[
            "worker",
            "check",
            "--stale-after",
            "1h",
            "--expect-version",
            V22,
        ],
    );
    assert_eq!(
        (run.code, run.stdout, run.stderr.as_str()),
        (
            Some(1),
            format!(
                "❌ worker-04: stale, heartbeat 3h ago (threshold 1h)\n❌ {UNICODE}: wrong version, unknown (expected {V22})\n❌ worker-03: wrong version, {V21} (expected {V22})\n✓ worker-02: healthy, heartbeat 5m ago, {V22}\n✓ worker-01: healthy, heartbeat 5m ago, {V22}\n"
            ),
            format!("{CANNOT_TELL}3 problem(s) across 5 worker(s)\n").as_str()
        )
    );
}

#[test]
fn details_are_fetched_with_bounded_concurrency_and_gone_workers_left_out() {
    let c = Clock::now();
    let workers: Vec<AmpWorker> = (0..40)
        .map(|i| {
            AmpWorker::live(
                &format!("w{i:02}"),
                if i % 4 == 0 { V21 } else { V22 },
                c.created,
            )
        })
        .collect();
    // Each detail answer takes 100 ms: a client without a bound would have all 40 in flight.
    let api = AmpApi::start(workers, &["gone-meanwhile"], Duration::from_millis(100));
    let run = ampctl(&api.url(), &["worker", "versions"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            Some(0),
            "     30 v0.0.22-15-g8b065bde\n     10 v0.0.21-8-ga1b2c3d4\n"
        )
    );
    assert_eq!((api.list_requests(), api.detail_requests()), (1, 41));
    let most = api.max_in_flight();
    assert!(
        (2..=DETAIL_CONCURRENCY).contains(&most),
        "{most} detail requests in flight at once"
    );
    let run = ampctl(&api.url(), &["worker", "list", "--json"]);
    assert!(
        run.stdout
            .starts_with(r#"{"workers":[{"node_id":"gone-meanwhile","#)
    );
}

/// A server answering JSON in neither shape still gets the one clear line.
#[test]
fn neither_wire_format_is_not_the_admin_api() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().take(2).flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = r#"{"workers":[{"name":"w1"}]}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    for args in [&["worker", "list", "--json"][..], &["worker", "versions"]] {
        let run = ampctl(&format!("http://{addr}"), args);
        assert_eq!(run.code, Some(2), "{args:?}");
        assert_eq!(
            run.stderr,
            format!(
                "error: unexpected answer from http://{addr}/workers (is this the Admin API?): missing field `node_id` at line 1 column 25; body starts \"{{\\\"workers\\\":[{{\\\"name\\\":\\\"w1\\\"}}]}}\"\n"
            ),
            "{args:?}"
        );
    }
}

/// Amp's fleet with jobs: `busy` runs three and has one just scheduled, `deaf` (live) never
/// picked up job 42 (5 minutes), `dead` (heartbeat 10 minutes old) holds three, `idle`
/// has none; finished jobs and one of a node id without a worker are served or not as
/// Amp does. Registered in this order, so listed the other way round.
fn jobs_fleet() -> (Vec<AmpWorker>, Vec<AmpJob>) {
    let now = Utc::now();
    let created = now - TimeDelta::days(3);
    let live = |id: &str| AmpWorker::live(id, V22, created);
    let mut dead = live("dead");
    dead.heartbeat_at = Some(now - TimeDelta::minutes(10));
    let ago = |secs: i64| now - TimeDelta::seconds(secs) - TimeDelta::microseconds(204_046);
    let job = |id: i64, node_id: &str, status: &'static str, age: i64| AmpJob {
        id,
        node_id: node_id.into(),
        status,
        updated_at: ago(age),
    };
    let jobs = vec![
        job(1, "busy", "RUNNING", 600),
        job(2, "busy", "RUNNING", 500),
        job(3, "busy", "COMPLETED", 400),
        job(4, "busy", "RUNNING", 400),
        job(5, "dead", "RUNNING", 900),
        job(6, "dead", "RUNNING", 900),
        job(7, "dead", "STOPPING", 900),
        job(8, "dead", "FATAL", 900),
        job(9, "gone", "RUNNING", 900),
        job(42, "deaf", "SCHEDULED", 300),
        job(43, "busy", "SCHEDULED", 5),
    ];
    let fleet = vec![live("busy"), live("deaf"), dead, live("idle")];
    (fleet, jobs)
}

/// A table row's JOBS cell (the fourth column; an empty cell reads as the heartbeat).
fn jobs_column(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0].to_owned(), cells[3].to_owned())
        })
        .collect()
}

#[test]
fn jobs_are_derived_from_amps_get_jobs_through_every_page() {
    let (fleet, jobs) = jobs_fleet();
    let api = AmpApi::start_with_jobs(
        fleet,
        &[],
        Duration::ZERO,
        JobsAnswer::Serve { jobs, page_size: 2 },
    );
    // 9 unfinished jobs, 2 per page: 5 pages for every command that shows jobs.
    let run = ampctl(&api.url(), &["worker", "list"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), CANNOT_TELL));
    assert_eq!(
        jobs_column(&run.stdout),
        [("idle", "0"), ("dead", "3"), ("deaf", "1"), ("busy", "4")]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{}",
        run.stdout
    );
    assert_eq!(api.job_pages(), 5);

    let run = ampctl(&api.url(), &["worker", "inspect", "deaf"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.ends_with(
            "Jobs:             1 active (1 scheduled, 0 running, 0 stopping), 0 retrying (ERROR), 0 unknown\n\
             Oldest Scheduled: job 42 (5m ago)\n\
             Jobs Verdict:     not accepting jobs: job 42 scheduled 5m ago\n"
        ),
        "{}",
        run.stdout
    );
    let run = ampctl(&api.url(), &["worker", "inspect", "dead"]);
    assert!(
        run.stdout.ends_with("Jobs Verdict:     stranded: 3 unfinished job(s) on a worker that is not heartbeating; start a worker with this node id, or stop them (ampctl job stop) and deploy again\n"),
        "{}",
        run.stdout
    );
    let run = ampctl(&api.url(), &["worker", "inspect", "busy"]);
    assert!(
        run.stdout
            .contains("Jobs:             4 active (1 scheduled, 3 running, 0 stopping)")
            && !run.stdout.contains("Verdict"),
        "{}",
        run.stdout
    );

    api.reset_counters();
    let run = ampctl(&api.url(), &["worker", "check"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert!(
        lines[0].starts_with("✓ idle: healthy, heartbeat "),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[1..4],
        [
            "❌ dead: stale, heartbeat 10m ago (threshold 30s)",
            "❌ dead: 3 job(s) stranded (2 RUNNING, 1 STOPPING); start a worker with this node id to resume them, or stop them (ampctl job stop) and deploy again",
            "❌ deaf: not accepting jobs: job 42 scheduled 5m ago (pickup timeout 2m)",
        ]
    );
    assert!(
        lines[4].starts_with("✓ busy: healthy, heartbeat "),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        format!("{CANNOT_TELL}3 problem(s) across 4 worker(s)\n")
    );
    assert_eq!(
        (api.list_requests(), api.job_pages(), api.detail_requests()),
        (1, 5, 4),
        "one list, every page of jobs once, details per worker"
    );
    assert_eq!(api.not_get_requests(), 0, "never a write");
}

#[test]
fn jobs_amps_admin_api_will_not_serve_are_unknown_never_zero() {
    for (status, why) in [
        (
            404,
            "GET /jobs answered 404 (this Admin API serves no jobs)",
        ),
        (401, "GET /jobs answered 401 (the token may not read jobs)"),
    ] {
        let (fleet, _) = jobs_fleet();
        let api = AmpApi::start_with_jobs(fleet, &[], Duration::ZERO, JobsAnswer::Status(status));
        let note = format!("note: jobs unknown: {why}\n");
        let run = ampctl(&api.url(), &["worker", "list"]);
        assert_eq!(
            (run.code, run.stderr.clone()),
            (Some(0), format!("{CANNOT_TELL}{note}"))
        );
        // The JOBS cell is blank: the fourth cell is the heartbeat's.
        assert!(
            jobs_column(&run.stdout)
                .iter()
                .all(|(_, cell)| cell.ends_with('s') || cell.ends_with('m')),
            "{}",
            run.stdout
        );
        let run = ampctl(&api.url(), &["worker", "inspect", "deaf"]);
        assert!(!run.stdout.contains("Jobs"), "{}", run.stdout);
        assert!(run.stderr.ends_with(&note), "{}", run.stderr);
        // Workers are still judged; jobs are not (the stale `dead` fails on its own).
        let run = ampctl(&api.url(), &["worker", "check"]);
        assert_eq!(run.code, Some(1));
        assert!(!run.stdout.contains("job"), "{}", run.stdout);
        assert_eq!(
            run.stderr.matches("note: jobs unknown").count(),
            1,
            "{}",
            run.stderr
        );
    }
}

#[test]
fn past_the_page_bound_jobs_are_unknown_not_counted_from_a_part() {
    let (fleet, _) = jobs_fleet();
    let jobs = (1..=MAX_JOB_PAGES as i64 + 1)
        .map(|id| AmpJob {
            id,
            node_id: "busy".into(),
            status: "RUNNING",
            updated_at: Utc::now(),
        })
        .collect();
    let api = AmpApi::start_with_jobs(
        fleet,
        &[],
        Duration::ZERO,
        JobsAnswer::Serve { jobs, page_size: 1 },
    );
    let run = ampctl(&api.url(), &["worker", "list"]);
    assert_eq!(
        (run.code, run.stderr),
        (
            Some(0),
            format!(
                "{CANNOT_TELL}note: jobs unknown: GET /jobs?status=active has more than {MAX_JOB_PAGES} pages: not counted from a part\n"
            )
        )
    );
    assert_eq!(api.job_pages(), MAX_JOB_PAGES);
}
