//! Pure rendering for ampctl: worker list → table / CSV / version counts / checks.
//! `now` is passed in, so every output is testable to the byte.

use chrono::{DateTime, Utc};
use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};

use crate::admin_api::jobs::WorkerJobs;
use crate::admin_api::wire::Worker;
use crate::build_info::UNKNOWN;
use crate::timestamps::format_timestamp;

/// `3s ago`, `5m ago`, `2h ago`, `4d ago` (future timestamps, from clock skew, read `0s ago`).
/// Every age ampctl prints is written this way (tables, `inspect`, `check`).
pub fn age(ts: DateTime<Utc>, now: DateTime<Utc>) -> String {
    age_of((now - ts).num_seconds())
}

/// [`age`] of an age in whole seconds (negative reads `0s ago`).
pub fn age_of(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s ago"),
        s if s < 2 * 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// A threshold in the largest unit that states it exactly: `30s`, `90s`, `5m`, `1h`,
/// `2d` (what `--stale-after` accepts, so the text can be pasted back as the flag).
pub fn threshold(secs: i64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A worker's health as the STATUS column and `inspect` state it, judged like `check`:
/// stopped when no process holds its node id lock (an Admin API that says so: ours),
/// else stale when the heartbeat is more than the threshold old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Healthy,
    Stale,
    Stopped,
}

impl Status {
    pub fn of(w: &Worker, now: DateTime<Utc>, threshold_secs: i64) -> Self {
        if is_stopped(w) {
            Status::Stopped
        } else if is_stale(w, now, threshold_secs) {
            Status::Stale
        } else {
            Status::Healthy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "Healthy",
            Status::Stale => "Stale",
            Status::Stopped => "Stopped",
        }
    }
}

/// What ampctl says (on stderr) when the Admin API does not report `running` (Amp's own
/// does not read `pg_locks`): a stopped worker then shows as Stale, and none is retired.
pub const CANNOT_TELL_NOTE: &str = "note: this Admin API does not say whether worker processes run (Amp's own does not): STATUS and checks judge heartbeats only, a stopped worker shows as Stale, none is retired\n";

/// No process holds the worker's node id lock (only an Admin API that reads `pg_locks`
/// says so; Amp's own does not, and then this is false).
pub fn is_stopped(w: &Worker) -> bool {
    w.running == Some(false)
}

/// Stopped for more than `forget_secs` (its last heartbeat is when it stopped): a worker
/// scaled away or renamed, whose row Amp keeps forever. `check` and `versions` leave it
/// out (and count it) unless `--all`.
pub fn is_retired(w: &Worker, now: DateTime<Utc>, forget_secs: i64) -> bool {
    is_stopped(w) && older_than(w.heartbeat_at, now, forget_secs)
}

/// The workers `check` and `versions` judge, and how many were retired; `forget_secs`
/// `None` (`--all`) retires none.
pub fn without_retired(
    workers: Vec<Worker>,
    now: DateTime<Utc>,
    forget_secs: Option<i64>,
) -> (Vec<Worker>, usize) {
    let total = workers.len();
    let judged: Vec<Worker> = workers
        .into_iter()
        .filter(|w| forget_secs.is_none_or(|f| !is_retired(w, now, f)))
        .collect();
    let retired = total - judged.len();
    (judged, retired)
}

/// The one line that counts retired workers (none: no line).
pub fn retired_note(retired: usize, forget_secs: i64, verb: &str) -> Option<String> {
    (retired > 0).then(|| {
        format!(
            "{retired} worker(s) stopped more than {} ago: retired, not {verb} (--all includes them)\n",
            threshold(forget_secs)
        )
    })
}

pub fn version_of(w: &Worker) -> &str {
    w.info.version.as_deref().unwrap_or(UNKNOWN)
}

/// Whole seconds since the last heartbeat (never negative).
pub fn heartbeat_age_secs(w: &Worker, now: DateTime<Utc>) -> i64 {
    (now - w.heartbeat_at).num_seconds().max(0)
}

pub fn is_stale(w: &Worker, now: DateTime<Utc>, threshold_secs: i64) -> bool {
    older_than(w.heartbeat_at, now, threshold_secs)
}

/// Whether `ts` is more than `threshold_secs` whole seconds before `now`.
pub fn older_than(ts: DateTime<Utc>, now: DateTime<Utc>, threshold_secs: i64) -> bool {
    (now - ts).num_seconds().max(0) > threshold_secs
}

/// kubectl-style table: header row, aligned columns, no borders. STATUS follows NODE ID,
/// as in `kubectl get nodes` and `kubectl get ampworkers`; JOBS (unfinished jobs,
/// `jobs[i]` of `workers[i]`) follows VERSION as there, blank where unknown.
pub fn table(
    workers: &[Worker],
    jobs: &[Option<WorkerJobs>],
    now: DateTime<Utc>,
    threshold_secs: i64,
) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    t.set_header([
        "NODE ID",
        "STATUS",
        "VERSION",
        "JOBS",
        "HEARTBEAT",
        "REGISTERED",
        "CREATED",
    ]);
    for (i, w) in workers.iter().enumerate() {
        let active = jobs.get(i).and_then(Option::as_ref).map(|j| j.active);
        t.add_row([
            w.node_id.clone(),
            Status::of(w, now, threshold_secs).as_str().to_owned(),
            version_of(w).to_owned(),
            active.map(|n| n.to_string()).unwrap_or_default(),
            age(w.heartbeat_at, now),
            age(w.registered_at, now),
            age(w.created_at, now),
        ]);
    }
    for col in t.column_iter_mut() {
        col.set_padding((0, 3));
        col.set_constraint(ColumnConstraint::ContentWidth);
    }
    t.to_string()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

/// The line under an empty table: nothing registered, or nothing left by the
/// `--stale-after` filter (which would otherwise read as an empty fleet).
pub fn empty_note(registered: usize, stale_after_secs: Option<i64>) -> String {
    match stale_after_secs {
        Some(secs) if registered > 0 => format!(
            "(no worker's heartbeat is older than {}; {registered} registered)\n",
            threshold(secs)
        ),
        _ => "(no workers registered)\n".to_owned(),
    }
}

/// Quotes like jq's `@csv`: strings in double quotes (inner quotes doubled), null empty.
fn csv_field(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("\"{}\"", v.replace('"', "\"\"")),
        None => String::new(),
    }
}

pub const CSV_HEADER: &str = "node_id,version,commit_sha,created_at,registered_at,heartbeat_at";

/// The seeds' inventory export, byte for byte.
pub fn csv(workers: &[Worker]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for w in workers {
        let fields = [
            csv_field(Some(&w.node_id)),
            csv_field(w.info.version.as_deref()),
            csv_field(w.info.commit_sha.as_deref()),
            csv_field(Some(&format_timestamp(&w.created_at))),
            csv_field(Some(&format_timestamp(&w.registered_at))),
            csv_field(Some(&format_timestamp(&w.heartbeat_at))),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// (count, version) like `sort | uniq -c | sort -rn`: count descending, ties in reverse
/// byte order of the version.
pub fn version_counts(workers: &[Worker]) -> Vec<(usize, String)> {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for w in workers {
        *counts.entry(version_of(w)).or_default() += 1;
    }
    let mut out: Vec<(usize, String)> =
        counts.into_iter().map(|(v, c)| (c, v.to_owned())).collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    out
}

/// Lines in `uniq -c` format (count right-aligned in 7 columns).
pub fn versions_text(counts: &[(usize, String)]) -> String {
    counts
        .iter()
        .map(|(c, v)| format!("{c:>7} {v}\n"))
        .collect()
}

/// One finding of `ampctl worker check` (`--json`: an object with `result`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Finding {
    Healthy {
        node_id: String,
        age_secs: i64,
        version: String,
    },
    Stale {
        node_id: String,
        age_secs: i64,
        threshold_secs: i64,
    },
    /// No process holds its node id lock: it crashed or was stopped (and is not retired).
    Stopped { node_id: String, age_secs: i64 },
    WrongVersion {
        node_id: String,
        version: String,
        expected: String,
    },
    /// Unfinished jobs on a worker that is stopped or stale: nobody runs them.
    Stranded {
        node_id: String,
        jobs: i64,
        running: i64,
        scheduled: i64,
        stopping: i64,
        retrying: i64,
    },
    /// A heartbeating worker whose oldest SCHEDULED job waited past the pickup timeout.
    NotAcceptingJobs {
        node_id: String,
        job_id: i64,
        age_secs: i64,
        timeout_secs: i64,
    },
}

impl Finding {
    pub fn is_problem(&self) -> bool {
        !matches!(self, Finding::Healthy { .. })
    }

    /// `MARK ID: VERDICT, DETAILS`, the verdict being the `--json` `result` in words:
    /// `✓ w1: healthy, heartbeat 0s ago, v1`, `❌ w2: stale, heartbeat 58s ago (threshold
    /// 30s)`, `❌ w3: wrong version, v1 (expected v2)`, `❌ w4: stopped, no process holds
    /// its node id (last heartbeat 2m ago)`. Ages and thresholds as everywhere
    /// in ampctl ([`age_of`], [`threshold`]).
    pub fn line(&self) -> String {
        match self {
            Finding::Healthy {
                node_id,
                age_secs,
                version,
            } => format!(
                "✓ {node_id}: healthy, heartbeat {}, {version}",
                age_of(*age_secs)
            ),
            Finding::Stale {
                node_id,
                age_secs,
                threshold_secs,
            } => format!(
                "❌ {node_id}: stale, heartbeat {} (threshold {})",
                age_of(*age_secs),
                threshold(*threshold_secs)
            ),
            Finding::Stopped { node_id, age_secs } => format!(
                "❌ {node_id}: stopped, no process holds its node id (last heartbeat {})",
                age_of(*age_secs)
            ),
            Finding::WrongVersion {
                node_id,
                version,
                expected,
            } => format!("❌ {node_id}: wrong version, {version} (expected {expected})"),
            Finding::Stranded {
                node_id,
                jobs,
                running,
                scheduled,
                stopping,
                retrying,
            } => format!(
                "❌ {node_id}: {jobs} job(s) stranded ({}); start a worker with this node id to resume them, or stop them (ampctl job stop) and deploy again",
                super::jobs::by_status(*running, *scheduled, *stopping, *retrying)
            ),
            Finding::NotAcceptingJobs {
                node_id,
                job_id,
                age_secs,
                timeout_secs,
            } => format!(
                "❌ {node_id}: not accepting jobs: job {job_id} scheduled {} (pickup timeout {})",
                age_of(*age_secs),
                threshold(*timeout_secs)
            ),
        }
    }
}

pub fn check(
    workers: &[Worker],
    now: DateTime<Utc>,
    threshold_secs: i64,
    expected: Option<&str>,
) -> Vec<Finding> {
    check_with_jobs(workers, &[], now, threshold_secs, None, expected)
}

/// [`check`], with each worker's jobs where known (`jobs[i]` of `workers[i]`; missing or
/// `None`: unknown, not judged) and the pickup timeout: jobs stranded on a stopped or
/// stale worker, or a job a heartbeating worker did not pick up, fail the worker.
pub fn check_with_jobs(
    workers: &[Worker],
    jobs: &[Option<WorkerJobs>],
    now: DateTime<Utc>,
    threshold_secs: i64,
    pickup_secs: Option<i64>,
    expected: Option<&str>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        let age_secs = heartbeat_age_secs(w, now);
        let mut ok = true;
        let heartbeating = !is_stopped(w) && age_secs <= threshold_secs;
        let job_finding = jobs
            .get(i)
            .and_then(Option::as_ref)
            .and_then(|j| super::jobs::finding(&w.node_id, j, heartbeating, pickup_secs?));
        if is_stopped(w) {
            findings.push(Finding::Stopped {
                node_id: w.node_id.clone(),
                age_secs,
            });
            ok = false;
        } else if age_secs > threshold_secs {
            findings.push(Finding::Stale {
                node_id: w.node_id.clone(),
                age_secs,
                threshold_secs,
            });
            ok = false;
        }
        if let Some(expected) = expected
            && version_of(w) != expected
        {
            findings.push(Finding::WrongVersion {
                node_id: w.node_id.clone(),
                version: version_of(w).to_owned(),
                expected: expected.to_owned(),
            });
            ok = false;
        }
        if let Some(finding) = job_finding {
            findings.push(finding);
            ok = false;
        }
        if ok {
            findings.push(Finding::Healthy {
                node_id: w.node_id.clone(),
                age_secs,
                version: version_of(w).to_owned(),
            });
        }
    }
    findings
}

/// `ampctl worker check --json`: the verdict, counts and every finding, for CI.
/// `workers` are the judged ones; `retired` those left out (see [`without_retired`]).
pub fn check_json(findings: &[Finding], workers: usize, retired: usize) -> String {
    let problems = if workers == 0 {
        // An empty fleet cannot pass: a rollout that lost every worker must fail.
        1
    } else {
        findings.iter().filter(|f| f.is_problem()).count()
    };
    let doc = serde_json::json!({
        "ok": problems == 0,
        "workers": workers,
        "problems": problems,
        "retired": retired,
        "findings": findings,
    });
    format!("{doc:#}\n")
}

/// `ampctl worker inspect` human view: the verdict first (judged like `check`), then
/// every field.
pub fn inspect(w: &Worker, now: DateTime<Utc>, threshold_secs: i64) -> String {
    let info = |v: &Option<String>| v.clone().unwrap_or_else(|| UNKNOWN.to_owned());
    let restarted = if w.registered_at > w.created_at {
        ", re-registered since creation"
    } else {
        ""
    };
    let status = match Status::of(w, now, threshold_secs) {
        Status::Stopped => format!(
            "Stopped (no process holds its node id; last heartbeat {})",
            age(w.heartbeat_at, now)
        ),
        other => format!(
            "{} (heartbeat {}, threshold {})",
            other.as_str(),
            age(w.heartbeat_at, now),
            threshold(threshold_secs)
        ),
    };
    format!(
        "Node ID:          {}\nStatus:           {status}\nVersion:          {}\nCommit SHA:       {}\nCommit Timestamp: {}\nBuild Date:       {}\nCreated:          {} ({})\nRegistered:       {} ({}{restarted})\nHeartbeat:        {} ({})\n",
        w.node_id,
        info(&w.info.version),
        info(&w.info.commit_sha),
        info(&w.info.commit_timestamp),
        info(&w.info.build_date),
        format_timestamp(&w.created_at),
        age(w.created_at, now),
        format_timestamp(&w.registered_at),
        age(w.registered_at, now),
        format_timestamp(&w.heartbeat_at),
        age(w.heartbeat_at, now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_api::wire::WorkerInfo;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap()
    }

    fn w(id: &str, version: Option<&str>, heartbeat: DateTime<Utc>) -> Worker {
        Worker {
            node_id: id.into(),
            info: WorkerInfo {
                version: version.map(Into::into),
                commit_sha: version.map(|_| "8b065bde".into()),
                commit_timestamp: None,
                build_date: None,
            },
            created_at: t(8, 0, 0),
            registered_at: t(9, 0, 0),
            heartbeat_at: heartbeat,
            running: None,
        }
    }

    /// [`w`] as our Admin API serves it: whether a process holds the node id lock.
    fn ours(id: &str, heartbeat: DateTime<Utc>, running: bool) -> Worker {
        Worker {
            running: Some(running),
            ..w(id, Some("v2"), heartbeat)
        }
    }

    #[test]
    fn check_fails_stranded_jobs_and_jobs_not_picked_up_and_judges_unknown_jobs_not() {
        use crate::admin_api::jobs::OldestScheduled;
        let now = t(12, 0, 0);
        let late = |age_seconds| WorkerJobs {
            active: 1,
            scheduled: 1,
            oldest_scheduled: Some(OldestScheduled {
                id: 42,
                since: now,
                age_seconds,
            }),
            ..WorkerJobs::default()
        };
        let fleet = [
            ours("dead", t(11, 50, 0), false),
            ours("hung", t(11, 50, 0), true),
            ours("deaf", t(11, 59, 59), true),
            ours("slow", t(11, 59, 59), true),
            ours("idle", t(11, 50, 0), false),
            ours("unknown", t(11, 50, 0), false),
        ];
        let jobs = [
            Some(WorkerJobs {
                active: 3,
                scheduled: 1,
                running: 2,
                retrying: 1,
                ..WorkerJobs::default()
            }),
            Some(late(900)),
            Some(late(300)),
            Some(late(120)),
            Some(WorkerJobs::default()),
            None,
        ];
        let findings = check_with_jobs(&fleet, &jobs, now, 30, Some(120), None);
        let lines: Vec<String> = findings.iter().map(Finding::line).collect();
        assert_eq!(
            lines,
            [
                "❌ dead: stopped, no process holds its node id (last heartbeat 10m ago)",
                "❌ dead: 4 job(s) stranded (2 RUNNING, 1 SCHEDULED, 1 ERROR); start a worker with this node id to resume them, or stop them (ampctl job stop) and deploy again",
                "❌ hung: stale, heartbeat 10m ago (threshold 30s)",
                "❌ hung: 1 job(s) stranded (1 SCHEDULED); start a worker with this node id to resume them, or stop them (ampctl job stop) and deploy again",
                "❌ deaf: not accepting jobs: job 42 scheduled 5m ago (pickup timeout 2m)",
                "✓ slow: healthy, heartbeat 1s ago, v2",
                "❌ idle: stopped, no process holds its node id (last heartbeat 10m ago)",
                "❌ unknown: stopped, no process holds its node id (last heartbeat 10m ago)",
            ]
        );
        let doc: serde_json::Value =
            serde_json::from_str(&check_json(&findings[..2], 1, 0)).unwrap();
        assert_eq!(
            doc["findings"][1],
            serde_json::json!({"result": "stranded", "node_id": "dead", "jobs": 4,
                "running": 2, "scheduled": 1, "stopping": 0, "retrying": 1})
        );
        let doc: serde_json::Value =
            serde_json::from_str(&check_json(&findings[4..5], 1, 0)).unwrap();
        assert_eq!(
            doc["findings"][0],
            serde_json::json!({"result": "not_accepting_jobs", "node_id": "deaf",
                "job_id": 42, "age_secs": 300, "timeout_secs": 120})
        );
        // Without a pickup timeout (plain `check`), jobs are not judged.
        assert!(!check_with_jobs(&fleet[2..3], &jobs[2..3], now, 30, None, None)[0].is_problem());
    }

    #[test]
    fn a_worker_without_its_process_is_stopped_whatever_its_heartbeat() {
        let now = t(12, 0, 0);
        let fleet = [
            ours("crashed", t(11, 59, 59), false), // heartbeat fresh, process gone
            ours("hung", t(11, 0, 0), true),       // process there, no heartbeat
            ours("fine", t(11, 59, 59), true),
            w("amps", Some("v2"), t(11, 0, 0)), // Amp's Admin API cannot tell
        ];
        let statuses: Vec<&str> = fleet
            .iter()
            .map(|w| Status::of(w, now, 30).as_str())
            .collect();
        assert_eq!(statuses, ["Stopped", "Stale", "Healthy", "Stale"]);
        assert_eq!(
            table(&fleet[..1], &[], now, 30).lines().nth(1),
            Some("crashed   Stopped   v2               1s ago      3h ago       4h ago")
        );
        assert_eq!(
            inspect(&fleet[0], now, 30).lines().nth(1),
            Some("Status:           Stopped (no process holds its node id; last heartbeat 1s ago)")
        );
        let lines: Vec<String> = check(&fleet, now, 30, Some("v2"))
            .iter()
            .map(Finding::line)
            .collect();
        assert_eq!(
            lines,
            [
                "❌ crashed: stopped, no process holds its node id (last heartbeat 1s ago)",
                "❌ hung: stale, heartbeat 60m ago (threshold 30s)",
                "✓ fine: healthy, heartbeat 1s ago, v2",
                "❌ amps: stale, heartbeat 60m ago (threshold 30s)",
            ]
        );
    }

    #[test]
    fn workers_stopped_longer_than_the_forget_delay_are_retired_and_counted() {
        let now = t(12, 0, 0);
        let fleet = vec![
            ours("recent", t(11, 45, 0), false), // stopped exactly 15m ago: still judged
            ours("gone", t(11, 44, 59), false),  // 15m 1s: retired
            ours("hung", t(8, 0, 0), true),      // a hung process is never retired
            w("amps", Some("v2"), t(8, 0, 0)),   // nor one whose server cannot tell
        ];
        let (judged, retired) = without_retired(fleet.clone(), now, Some(900));
        let ids: Vec<&str> = judged.iter().map(|w| w.node_id.as_str()).collect();
        assert_eq!((ids, retired), (vec!["recent", "hung", "amps"], 1));
        let (all, none) = without_retired(fleet, now, None);
        assert_eq!((all.len(), none), (4, 0));
        assert_eq!(
            retired_note(1, 900, "judged").as_deref(),
            Some(
                "1 worker(s) stopped more than 15m ago: retired, not judged (--all includes them)\n"
            )
        );
        assert_eq!(retired_note(0, 900, "judged"), None);
        let findings = check(&judged[..1], now, 30, None);
        let doc: serde_json::Value = serde_json::from_str(&check_json(&findings, 1, 1)).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "ok": false, "workers": 1, "problems": 1, "retired": 1,
                "findings": [{"result": "stopped", "node_id": "recent", "age_secs": 900}]
            })
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = t(12, 0, 0);
        assert_eq!(age(t(11, 59, 57), now), "3s ago");
        assert_eq!(age(t(11, 55, 0), now), "5m ago");
        assert_eq!(age(t(9, 0, 0), now), "3h ago");
        assert_eq!(age(t(12, 0, 5), now), "0s ago");
        assert_eq!(
            age(Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap(), now),
            "4d ago"
        );
    }

    #[test]
    fn thresholds_use_the_largest_exact_unit() {
        assert_eq!(threshold(30), "30s");
        assert_eq!(threshold(90), "90s");
        assert_eq!(threshold(300), "5m");
        assert_eq!(threshold(3600), "1h");
        assert_eq!(threshold(5400), "90m");
        assert_eq!(threshold(172_800), "2d");
        assert_eq!(threshold(0), "0s");
    }

    #[test]
    fn table_has_one_row_per_worker_with_status_and_unknown_for_missing_versions() {
        let now = t(12, 0, 0);
        let busy = WorkerJobs {
            active: 12,
            running: 12,
            ..WorkerJobs::default()
        };
        let out = table(
            &[
                w("worker-01", Some("v0.0.22-15-g8b065bde"), t(11, 59, 57)),
                w("edge", Some("v1"), t(11, 59, 30)), // exactly 30 s: still healthy
                w("old", None, t(10, 0, 0)),
            ],
            // Jobs known for two (one busy, one idle), unknown for the last.
            &[Some(busy), Some(WorkerJobs::default())],
            now,
            30,
        );
        assert_eq!(
            out,
            "NODE ID     STATUS    VERSION                JOBS   HEARTBEAT   REGISTERED   CREATED\n\
             worker-01   Healthy   v0.0.22-15-g8b065bde   12     3s ago      3h ago       4h ago\n\
             edge        Healthy   v1                     0      30s ago     3h ago       4h ago\n\
             old         Stale     unknown                       2h ago      3h ago       4h ago\n"
        );
        // The threshold decides: with two hours, the 2-hour-old heartbeat is healthy.
        assert_eq!(
            table(&[w("old", None, t(10, 0, 0))], &[], now, 7200)
                .lines()
                .nth(1),
            Some("old       Healthy   unknown          2h ago      3h ago       4h ago")
        );
        assert_eq!(
            table(&[], &[], now, 30),
            "NODE ID   STATUS   VERSION   JOBS   HEARTBEAT   REGISTERED   CREATED\n"
        );
        assert_eq!(empty_note(0, None), "(no workers registered)\n");
        assert_eq!(empty_note(0, Some(30)), "(no workers registered)\n");
        assert_eq!(
            empty_note(3, Some(300)),
            "(no worker's heartbeat is older than 5m; 3 registered)\n"
        );
    }

    #[test]
    fn csv_matches_jq_at_csv() {
        let out = csv(&[
            w("worker-01", Some("v1 \"quoted\""), t(11, 0, 0)),
            w("old", None, t(10, 0, 0)),
        ]);
        assert_eq!(
            out,
            "node_id,version,commit_sha,created_at,registered_at,heartbeat_at\n\
             \"worker-01\",\"v1 \"\"quoted\"\"\",\"8b065bde\",\"2026-11-22T08:00:00Z\",\"2026-11-22T09:00:00Z\",\"2026-11-22T11:00:00Z\"\n\
             \"old\",,,\"2026-11-22T08:00:00Z\",\"2026-11-22T09:00:00Z\",\"2026-11-22T10:00:00Z\"\n"
        );
    }

    #[test]
    fn versions_sort_like_sort_uniq_c_sort_rn() {
        let now = t(12, 0, 0);
        let fleet = [
            w("a", Some("v0.0.22"), now),
            w("b", Some("v0.0.22"), now),
            w("c", Some("v0.0.21"), now),
            w("d", None, now),
        ];
        assert_eq!(
            versions_text(&version_counts(&fleet)),
            "      2 v0.0.22\n      1 v0.0.21\n      1 unknown\n"
        );
    }

    #[test]
    fn check_reports_stale_and_wrong_versions_at_the_exact_threshold() {
        let now = t(12, 0, 0);
        let fleet = [
            w("fresh", Some("v2"), t(11, 59, 30)), // exactly 30 s: not stale
            w("stale", Some("v2"), t(11, 59, 29)), // 31 s
            w("old", Some("v1"), now),
        ];
        let lines: Vec<String> = check(&fleet, now, 30, Some("v2"))
            .iter()
            .map(Finding::line)
            .collect();
        assert_eq!(
            lines,
            [
                "✓ fresh: healthy, heartbeat 30s ago, v2",
                "❌ stale: stale, heartbeat 31s ago (threshold 30s)",
                "❌ old: wrong version, v1 (expected v2)",
            ]
        );
    }

    #[test]
    fn check_lines_write_long_ages_and_thresholds_in_units() {
        let now = t(12, 0, 0);
        let lines: Vec<String> = check(&[w("w1", Some("v2"), t(8, 30, 0))], now, 3600, None)
            .iter()
            .map(Finding::line)
            .collect();
        assert_eq!(lines, ["❌ w1: stale, heartbeat 3h ago (threshold 1h)"]);
    }

    #[test]
    fn check_json_carries_the_verdict_and_every_finding() {
        let now = t(10, 0, 0);
        let ws = [
            w("worker-01", Some("v2"), t(9, 59, 50)),
            w("worker-02", Some("v1"), t(9, 58, 0)),
        ];
        let findings = check(&ws, now, 30, Some("v2"));
        let doc: serde_json::Value = serde_json::from_str(&check_json(&findings, 2, 0)).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "ok": false, "workers": 2, "problems": 2, "retired": 0,
                "findings": [
                    {"result": "healthy", "node_id": "worker-01", "age_secs": 10, "version": "v2"},
                    {"result": "stale", "node_id": "worker-02", "age_secs": 120, "threshold_secs": 30},
                    {"result": "wrong_version", "node_id": "worker-02", "version": "v1", "expected": "v2"},
                ]
            })
        );
        let empty: serde_json::Value = serde_json::from_str(&check_json(&[], 0, 0)).unwrap();
        assert_eq!(
            empty,
            serde_json::json!({"ok": false, "workers": 0, "problems": 1, "retired": 0, "findings": []})
        );
    }

    #[test]
    fn inspect_states_the_verdict_first_then_every_field() {
        let out = inspect(&w("worker-01", Some("v1"), t(11, 59, 59)), t(12, 0, 0), 30);
        assert_eq!(
            out,
            "Node ID:          worker-01\nStatus:           Healthy (heartbeat 1s ago, threshold 30s)\nVersion:          v1\nCommit SHA:       8b065bde\nCommit Timestamp: unknown\nBuild Date:       unknown\nCreated:          2026-11-22T08:00:00Z (4h ago)\nRegistered:       2026-11-22T09:00:00Z (3h ago, re-registered since creation)\nHeartbeat:        2026-11-22T11:59:59Z (1s ago)\n"
        );
        let stale = inspect(&w("worker-02", None, t(11, 59, 2)), t(12, 0, 0), 30);
        assert_eq!(
            stale.lines().nth(1),
            Some("Status:           Stale (heartbeat 58s ago, threshold 30s)")
        );
        let long = inspect(&w("worker-02", None, t(11, 0, 0)), t(12, 0, 0), 300);
        assert_eq!(
            long.lines().nth(1),
            Some("Status:           Stale (heartbeat 60m ago, threshold 5m)")
        );
    }
}
