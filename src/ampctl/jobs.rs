//! Each worker's jobs for `ampctl worker list` (JOBS), `inspect` and `check`: from the
//! `jobs` field our Admin API serves on `GET /workers` and `GET /workers/{id}` (absent on
//! a DB without Amp's job tables: then nothing is shown), or, against Amp's own Admin
//! API, derived from its `GET /jobs?status=active`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::render::{Finding, age_of};
use crate::admin_api::jobs::{OldestScheduled, WorkerJobs};
use crate::admin_api::wire::Worker;
use crate::admin_client::{ActiveJobs, AdminClient, AmpJob, ClientError, Listed};
use crate::timestamps::truncate;

/// The operator's default `jobPickupTimeoutSeconds`: Amp's worker picks up its jobs on a
/// notification and every 60 s. `check --job-pickup-timeout` defaults to it.
pub const PICKUP_TIMEOUT_SECS: i64 = 120;

#[derive(Deserialize)]
struct WithJobs {
    #[serde(default)]
    jobs: Option<WorkerJobs>,
}

/// The `jobs` of a `GET /workers/{id}` body, when it has them.
pub fn of_body(body: &[u8]) -> Option<WorkerJobs> {
    serde_json::from_slice::<WithJobs>(body).ok()?.jobs
}

/// The jobs lines and, when something is wrong with them, a verdict line. Numbers only:
/// nothing here comes from text the server wrote.
pub fn section(jobs: &WorkerJobs, heartbeating: bool) -> String {
    let mut out = format!(
        "Jobs:             {} active ({} scheduled, {} running, {} stopping), {} retrying (ERROR), {} unknown\n",
        jobs.active, jobs.scheduled, jobs.running, jobs.stopping, jobs.retrying, jobs.unknown
    );
    if let Some(oldest) = &jobs.oldest_scheduled {
        out.push_str(&format!(
            "Oldest Scheduled: job {} ({})\n",
            oldest.id,
            age_of(oldest.age_seconds)
        ));
    }
    let waiting = jobs.active + jobs.retrying;
    let late = jobs
        .oldest_scheduled
        .as_ref()
        .filter(|o| o.age_seconds > PICKUP_TIMEOUT_SECS);
    match (heartbeating, late) {
        (true, Some(o)) => out.push_str(&format!(
            "Jobs Verdict:     not accepting jobs: job {} scheduled {}\n",
            o.id,
            age_of(o.age_seconds)
        )),
        (false, _) if waiting > 0 => out.push_str(&format!(
            "Jobs Verdict:     stranded: {waiting} unfinished job(s) on a worker that is not heartbeating; start a worker with this node id, or stop them (ampctl job stop) and deploy again\n"
        )),
        _ => {}
    }
    out
}

/// `2 RUNNING, 1 SCHEDULED`: the non-zero counts, in Amp's status names.
pub fn by_status(running: i64, scheduled: i64, stopping: i64, retrying: i64) -> String {
    [
        (running, "RUNNING"),
        (scheduled, "SCHEDULED"),
        (stopping, "STOPPING"),
        (retrying, "ERROR"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, status)| format!("{n} {status}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// `check`'s verdict on one worker's jobs, judged like `inspect`'s: unfinished jobs (ERROR
/// ones are retried on it) on a worker that does not heartbeat are stranded; a job
/// SCHEDULED longer than `pickup_secs` on one that does was not picked up.
pub fn finding(
    node_id: &str,
    jobs: &WorkerJobs,
    heartbeating: bool,
    pickup_secs: i64,
) -> Option<Finding> {
    let waiting = jobs.active + jobs.retrying;
    if !heartbeating {
        return (waiting > 0).then(|| Finding::Stranded {
            node_id: node_id.to_owned(),
            jobs: waiting,
            running: jobs.running,
            scheduled: jobs.scheduled,
            stopping: jobs.stopping,
            retrying: jobs.retrying,
        });
    }
    let late = jobs
        .oldest_scheduled
        .as_ref()
        .filter(|o| o.age_seconds > pickup_secs)?;
    Some(Finding::NotAcceptingJobs {
        node_id: node_id.to_owned(),
        job_id: late.id,
        age_secs: late.age_seconds,
        timeout_secs: pickup_secs,
    })
}

/// Each worker's jobs by node id, from one read: the `jobs` each entry of our Admin API's
/// list carries, or, against Amp's own (whose workers carry none), its `GET
/// /jobs?status=active` folded per assignee. A worker without an entry: jobs unknown.
#[derive(Debug, Default)]
pub struct FleetJobs {
    by_node: HashMap<String, WorkerJobs>,
    /// Why the jobs are unknown, said once on stderr (e.g. Amp's `/jobs` answered 404).
    note: Option<String>,
}

impl FleetJobs {
    /// The jobs of listed workers. Against an Admin API that does not say whether workers
    /// run (Amp's own), its `GET /jobs` is read; ours carries them in the list.
    pub async fn of(client: &AdminClient, entries: &[Listed]) -> Result<Self, ClientError> {
        if entries.is_empty() || entries.iter().any(|e| e.running.is_some()) {
            let by_node = entries
                .iter()
                .filter_map(|e| Some((e.node_id.clone(), e.jobs.clone()?)))
                .collect();
            return Ok(Self {
                by_node,
                note: None,
            });
        }
        Self::from_amp(client, entries.iter().map(|e| e.node_id.as_str())).await
    }

    /// The jobs of workers of Amp's Admin API, from its `GET /jobs?status=active`: every
    /// worker in `node_ids` known (zeros without a job) unless the jobs are unknown.
    pub async fn from_amp<'a>(
        client: &AdminClient,
        node_ids: impl Iterator<Item = &'a str>,
    ) -> Result<Self, ClientError> {
        match client.active_jobs().await? {
            ActiveJobs::Known(jobs) => {
                let mut by_node = tally(&jobs, Utc::now());
                for id in node_ids {
                    by_node.entry(id.to_owned()).or_default();
                }
                Ok(Self {
                    by_node,
                    note: None,
                })
            }
            ActiveJobs::Unknown(why) => Ok(Self {
                by_node: HashMap::new(),
                note: Some(format!("note: jobs unknown: {why}\n")),
            }),
        }
    }

    pub fn get(&self, node_id: &str) -> Option<&WorkerJobs> {
        self.by_node.get(node_id)
    }

    /// `workers[i]`'s jobs at `[i]` (as [`super::render::check_with_jobs`] takes them).
    pub fn for_workers(&self, workers: &[Worker]) -> Vec<Option<WorkerJobs>> {
        workers
            .iter()
            .map(|w| self.get(&w.node_id).cloned())
            .collect()
    }

    /// The stderr line saying why the jobs are unknown, if they are.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
}

/// Amp's unfinished jobs per assignee, counted as our Admin API counts them; the oldest
/// SCHEDULED job's age by this machine's clock (Amp's API has no clock of its own to
/// send). ERROR jobs are not in Amp's `status=active` (its four non-terminal states):
/// `retrying` counts only those it sends anyway.
pub fn tally(jobs: &[AmpJob], now: DateTime<Utc>) -> HashMap<String, WorkerJobs> {
    let mut by_node: HashMap<String, WorkerJobs> = HashMap::new();
    for job in jobs {
        let Some(node_id) = &job.node_id else {
            continue;
        };
        let j = by_node.entry(node_id.clone()).or_default();
        match normalized(&job.status).as_str() {
            "SCHEDULED" => {
                j.scheduled += 1;
                if let Some(since) = job.updated_at.map(truncate) {
                    let older = j
                        .oldest_scheduled
                        .as_ref()
                        .is_none_or(|o| (since, job.id) < (o.since, o.id));
                    if older {
                        j.oldest_scheduled = Some(OldestScheduled {
                            id: job.id,
                            since,
                            age_seconds: (now - since).num_seconds().max(0),
                        });
                    }
                }
            }
            "RUNNING" => j.running += 1,
            "STOPREQUESTED" | "STOPPING" => j.stopping += 1,
            "ERROR" => j.retrying += 1,
            _ => j.unknown += 1,
        }
        j.active = j.scheduled + j.running + j.stopping;
    }
    by_node
}

/// A status in one spelling: `STOP_REQUESTED`, `StopRequested` and `stop_requested` alike.
fn normalized(status: &str) -> String {
    status
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(age: Option<i64>) -> WorkerJobs {
        WorkerJobs {
            active: 3,
            scheduled: 1,
            running: 2,
            stopping: 0,
            retrying: 1,
            unknown: 0,
            oldest_scheduled: age.map(|age_seconds| OldestScheduled {
                id: 42,
                since: chrono::DateTime::UNIX_EPOCH,
                age_seconds,
            }),
        }
    }

    #[test]
    fn a_job_waiting_past_the_pickup_timeout_on_a_heartbeating_worker_is_the_verdict() {
        assert_eq!(
            section(&jobs(Some(300)), true),
            "Jobs:             3 active (1 scheduled, 2 running, 0 stopping), 1 retrying (ERROR), 0 unknown\nOldest Scheduled: job 42 (5m ago)\nJobs Verdict:     not accepting jobs: job 42 scheduled 5m ago\n"
        );
        // Within the timeout: no verdict.
        assert!(!section(&jobs(Some(120)), true).contains("Verdict"));
    }

    #[test]
    fn jobs_on_a_worker_that_does_not_heartbeat_are_stranded() {
        let out = section(&jobs(None), false);
        assert!(
            out.ends_with("Jobs Verdict:     stranded: 4 unfinished job(s) on a worker that is not heartbeating; start a worker with this node id, or stop them (ampctl job stop) and deploy again\n"),
            "{out}"
        );
        assert!(!section(&WorkerJobs::default(), false).contains("Verdict"));
    }

    #[test]
    fn a_body_without_jobs_has_none() {
        assert_eq!(of_body(br#"{"node_id":"w1"}"#), None);
        assert_eq!(of_body(b"not json"), None);
        assert_eq!(
            of_body(br#"{"jobs":{"active":1,"scheduled":0,"running":1,"stopping":0,"retrying":0,"unknown":0}}"#)
                .map(|j| j.running),
            Some(1)
        );
    }

    #[test]
    fn amps_active_jobs_are_counted_per_assignee_as_ours_are() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        let job = |id: i64, node: Option<&str>, status: &str, age: i64| AmpJob {
            id,
            node_id: node.map(Into::into),
            status: status.into(),
            updated_at: Some(
                now - chrono::Duration::seconds(age) - chrono::Duration::microseconds(5),
            ),
        };
        let jobs = [
            job(9, Some("a"), "RUNNING", 5),
            job(8, Some("a"), "SCHEDULED", 60),
            job(7, Some("a"), "SCHEDULED", 300),
            job(6, Some("a"), "StopRequested", 5),
            job(5, Some("a"), "STOPPING", 5),
            job(4, Some("a"), "PAUSED", 5),
            job(3, Some("b"), "ERROR", 5),
            job(2, None, "RUNNING", 5),
        ];
        let by_node = tally(&jobs, now);
        assert_eq!(by_node.len(), 2);
        assert_eq!(
            by_node["a"],
            WorkerJobs {
                active: 5,
                scheduled: 2,
                running: 1,
                stopping: 2,
                retrying: 0,
                unknown: 1,
                oldest_scheduled: Some(OldestScheduled {
                    id: 7,
                    since: now - chrono::Duration::seconds(301),
                    age_seconds: 301,
                }),
            }
        );
        assert_eq!(
            by_node["b"],
            WorkerJobs {
                retrying: 1,
                ..WorkerJobs::default()
            }
        );
    }
}
