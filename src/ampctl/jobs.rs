//! `ampctl worker inspect`'s jobs lines, from the `jobs` field our Admin API serves on
//! `GET /workers/{id}` (absent on a DB without Amp's job tables, and from Amp's own
//! Admin API: then nothing is printed).

use serde::Deserialize;

use super::render::{Finding, age_of};
use crate::admin_api::jobs::WorkerJobs;
use crate::admin_api::wire::Worker;
use crate::admin_client::{AdminClient, ClientError, DETAIL_CONCURRENCY};

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

/// Each worker's `jobs` from `GET /workers/{id}` (our Admin API serves them there), at
/// most [`DETAIL_CONCURRENCY`] requests in flight; `None` where the body has none (a DB
/// without Amp's job tables) or the worker is gone. Nothing is requested from an Admin
/// API that does not say whether workers run (Amp's own: its worker objects carry no jobs).
pub async fn fetch(
    client: &AdminClient,
    workers: &[Worker],
) -> Result<Vec<Option<WorkerJobs>>, ClientError> {
    use futures::{StreamExt, TryStreamExt};
    if workers.iter().all(|w| w.running.is_none()) {
        return Ok(vec![None; workers.len()]);
    }
    futures::stream::iter(workers)
        .map(|w| async move {
            match client.get_worker(&w.node_id).await {
                Ok(fetched) => Ok(of_body(&fetched.body)),
                Err(err) if err.is_not_found() => Ok(None),
                Err(err) => Err(err),
            }
        })
        .buffered(DETAIL_CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_api::jobs::OldestScheduled;

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
}
