use super::super::{WorkerInputs, desired_status};
use super::*;
use crate::metadata_db::{JobSchema, LockState, ScheduledJob, SnapshotRow, WorkerInfo};
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn spec() -> AmpWorkerSpec {
    AmpWorkerSpec {
        node_id: "worker-01".into(),
        expected_version: None,
        heartbeat_timeout_seconds: None,
        job_pickup_timeout_seconds: None,
    }
}

fn row(heartbeat: i64, lock: LockState) -> SnapshotRow {
    SnapshotRow {
        node_id: "worker-01".into(),
        info: Arc::new(WorkerInfo::default()),
        created_at: t(0),
        registered_at: t(0),
        heartbeat_at: t(heartbeat),
        lock,
    }
}

fn available(now: i64) -> DbView {
    DbView::Available {
        db_now: t(now),
        recovered_at: None,
    }
}

fn node(f: impl FnOnce(&mut NodeJobs)) -> NodeJobs {
    let mut n = NodeJobs {
        node_id: "worker-01".into(),
        registered: true,
        ..NodeJobs::default()
    };
    f(&mut n);
    n
}

fn view(nodes: Vec<NodeJobs>) -> JobsView {
    JobsView::Known(Arc::new(JobsIndex::new(JobsSnapshot {
        db_now: t(0),
        schema: JobSchema::Nightly,
        nodes,
        unknown_statuses: vec![],
    })))
}

/// The status of worker-01 at DB time `now` with `row`, judged with `view`.
fn judge(
    row: Option<&SnapshotRow>,
    db: &DbView,
    view: &JobsView,
    previous: Option<&AmpWorkerStatus>,
) -> AmpWorkerStatus {
    let spec = spec();
    let mut status = desired_status(&WorkerInputs {
        row,
        db,
        spec: &spec,
        fleet_version: None,
        timeout: 30,
        previous,
        generation: Some(1),
        now: t(1000),
    });
    let db_now = match db {
        DbView::Available { db_now, .. } => Some(*db_now),
        DbView::Unavailable { .. } => None,
    };
    let input = worker_jobs_input(view, &spec, db_now);
    apply_worker_jobs(&mut status, &input, db, &spec, previous, t(1000));
    status
}

fn conds(s: &AmpWorkerStatus) -> Vec<(String, String, String)> {
    s.conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn cond_of(s: &AmpWorkerStatus, type_: &str) -> (String, String, String) {
    let c = find(&s.conditions, type_).unwrap_or_else(|| panic!("no {type_}: {s:?}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn c(t: &str, s: &str, r: &str) -> (String, String, String) {
    (t.into(), s.into(), r.into())
}

fn scheduled_since(id: i64, since: i64) -> impl FnOnce(&mut NodeJobs) {
    move |n| {
        n.scheduled = 1;
        n.oldest_scheduled = Some(ScheduledJob {
            id,
            since: t(since),
        });
    }
}

#[test]
fn no_job_tables_no_jobs_and_no_job_conditions() {
    let r = row(100, LockState::Held);
    let s = judge(Some(&r), &available(101), &JobsView::Absent, None);
    assert_eq!(s.jobs, None);
    assert_eq!(s.conditions.len(), 4);
    assert_eq!(s.state.as_deref(), Some("Ready"));
}

#[test]
fn a_healthy_worker_with_running_jobs_accepts_them_and_strands_none() {
    let r = row(100, LockState::Held);
    let v = view(vec![node(|n| {
        n.running = 3;
        n.stop_requested = 1;
        n.retrying = 2;
        n.unknown = 1;
    })]);
    let s = judge(Some(&r), &available(101), &v, None);
    assert_eq!(
        s.jobs,
        Some(WorkerJobs {
            active: 4,
            scheduled: 0,
            running: 3,
            stopping: 1,
            retrying: 2,
            unknown: 1,
            oldest_scheduled: None,
        })
    );
    assert_eq!(
        conds(&s),
        [
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "True", "HeartbeatFresh"),
            c("VersionMatched", "Unknown", "NoExpectedVersion"),
            c("Ready", "True", "WorkerReady"),
            c("AcceptingJobs", "True", "JobsPickedUp"),
            c("JobsStranded", "False", "NoStrandedJobs"),
        ]
    );
    assert_eq!(
        cond_of(&s, ACCEPTING_JOBS).2,
        "no job has waited longer than the 120s pickup timeout while the worker heartbeats"
    );
    assert_eq!(s.state.as_deref(), Some("Ready"));
}

#[test]
fn a_worker_without_jobs_shows_zeros_and_accepts() {
    let r = row(100, LockState::Held);
    let s = judge(Some(&r), &available(101), &view(vec![]), None);
    assert_eq!(s.jobs, Some(WorkerJobs::default()));
    assert_eq!(cond_of(&s, ACCEPTING_JOBS).0, "True");
    assert_eq!(cond_of(&s, JOBS_STRANDED).0, "False");
}

#[test]
fn a_job_scheduled_past_the_pickup_timeout_on_a_heartbeating_worker_is_not_picked_up() {
    let r = row(1000, LockState::Held);
    // Scheduled at 0; the DB clock at 121: over the 120 s timeout.
    let v = view(vec![node(scheduled_since(42, 0))]);
    let s = judge(Some(&r), &available(1000), &v, None);
    let expected_message = "job 42 has been SCHEDULED on this worker since 2026-11-22T10:00:00Z (longer than the 120s pickup timeout) while it heartbeats: it does not pick up its jobs (its job notifications may be broken); restarting it makes it pick them up";
    assert_eq!(
        cond_of(&s, ACCEPTING_JOBS),
        (
            "False".into(),
            "JobNotPickedUp".into(),
            expected_message.into()
        )
    );
    assert_eq!(
        cond_of(&s, READY),
        (
            "False".into(),
            "JobNotPickedUp".into(),
            expected_message.into()
        )
    );
    assert_eq!(s.state.as_deref(), Some(NOT_ACCEPTING_JOBS));
    assert_eq!(
        s.jobs.as_ref().and_then(|j| j.oldest_scheduled.clone()),
        Some(ScheduledJobRef {
            id: 42,
            since: t(0)
        })
    );
    // The same situation a cycle later is the same status: nothing to write.
    let later = judge(Some(&r), &available(1001), &v, Some(&s));
    assert_eq!(later, s);
}

#[test]
fn the_pickup_timeout_is_exclusive_and_per_worker() {
    let r = row(120, LockState::Held);
    let v = view(vec![node(scheduled_since(7, 0))]);
    let at_the_limit = judge(Some(&r), &available(120), &v, None);
    assert_eq!(cond_of(&at_the_limit, ACCEPTING_JOBS).0, "True");
    let past = judge(Some(&r), &available(121), &v, None);
    assert_eq!(cond_of(&past, ACCEPTING_JOBS).0, "False");

    let mut patient = spec();
    patient.job_pickup_timeout_seconds = Some(600);
    let input = worker_jobs_input(&v, &patient, Some(t(121)));
    assert_eq!(
        input,
        WorkerJobsInput::Known {
            jobs: match &v {
                JobsView::Known(i) => i.node("worker-01"),
                _ => None,
            },
            overdue: false
        }
    );
}

#[test]
fn a_stopped_worker_with_jobs_strands_them_and_is_not_blamed_for_pickup() {
    let r = row(100, LockState::Free);
    let v = view(vec![node(|n| {
        n.running = 2;
        n.retrying = 1;
        n.scheduled = 1;
        n.oldest_scheduled = Some(ScheduledJob { id: 9, since: t(0) });
    })]);
    let s = judge(Some(&r), &available(1000), &v, None);
    assert_eq!(s.state.as_deref(), Some("Stopped"));
    assert_eq!(
        cond_of(&s, JOBS_STRANDED),
        (
            "True".into(),
            "JobsStranded".into(),
            "4 unfinished jobs (1 SCHEDULED, 2 RUNNING, 1 ERROR) are assigned to this worker, which is Stopped; Amp does not move them to another worker. Start a worker with node id \"worker-01\" and it resumes them; otherwise stop them (ampctl job stop) and deploy their datasets again".into()
        )
    );
    assert_eq!(cond_of(&s, ACCEPTING_JOBS).0, "True");
    assert_eq!(cond_of(&s, READY).1, "WorkerStopped");
}

#[test]
fn a_stale_or_unregistered_worker_strands_its_jobs_too() {
    let v = view(vec![node(|n| n.running = 1)]);
    let stale = judge(Some(&row(0, LockState::Held)), &available(1000), &v, None);
    assert_eq!(stale.state.as_deref(), Some("Stale"));
    let (status, reason, message) = cond_of(&stale, JOBS_STRANDED);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "JobsStranded"));
    assert!(
        message.starts_with(
            "1 unfinished job (1 RUNNING) is assigned to this worker, which is Stale;"
        ),
        "{message}"
    );

    let unregistered = judge(None, &available(1000), &v, None);
    assert_eq!(unregistered.state.as_deref(), Some("NotRegistered"));
    assert_eq!(cond_of(&unregistered, JOBS_STRANDED).0, "True");
    assert_eq!(unregistered.jobs.as_ref().map(|j| j.active), Some(1));
}

#[test]
fn jobs_that_cannot_be_read_are_unknown_never_zero() {
    let r = row(100, LockState::Held);
    let why = "jobs unknown: the metadata DB role may not read jobs_status (GRANT SELECT ON jobs_status TO <the reader role>)";
    let s = judge(
        Some(&r),
        &available(101),
        &JobsView::Unknown(why.into()),
        None,
    );
    assert_eq!(s.jobs, None);
    assert_eq!(
        cond_of(&s, ACCEPTING_JOBS),
        ("Unknown".into(), "JobsUnknown".into(), why.into())
    );
    assert_eq!(
        cond_of(&s, JOBS_STRANDED),
        ("Unknown".into(), "JobsUnknown".into(), why.into())
    );
    // Workers are judged as before.
    assert_eq!(s.state.as_deref(), Some("Ready"));
}

#[test]
fn while_the_db_is_down_the_last_jobs_stay_and_the_conditions_are_unknown() {
    let r = row(100, LockState::Held);
    let v = view(vec![node(|n| n.running = 1)]);
    let before = judge(Some(&r), &available(101), &v, None);
    let down = DbView::Unavailable {
        cause: Some("connection refused"),
    };
    let s = judge(None, &down, &v, Some(&before));
    assert_eq!(s.jobs, before.jobs);
    assert_eq!(
        cond_of(&s, ACCEPTING_JOBS),
        (
            "Unknown".into(),
            "MetadataDbUnavailable".into(),
            "the metadata DB cannot be read (connection refused)".into()
        )
    );
    assert_eq!(cond_of(&s, JOBS_STRANDED).1, "MetadataDbUnavailable");
    assert!(job_events(Some(&before), &s).is_empty());
}

#[test]
fn stranded_and_not_picked_up_fire_one_event_per_transition() {
    let v = view(vec![node(|n| n.running = 1)]);
    let healthy = judge(Some(&row(100, LockState::Held)), &available(101), &v, None);
    let stopped = judge(
        Some(&row(100, LockState::Free)),
        &available(101),
        &v,
        Some(&healthy),
    );
    let events = job_events(Some(&healthy), &stopped);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].reason, events[0].warning),
        ("JobsStranded", true)
    );
    assert_eq!(events[0].note, cond_of(&stopped, JOBS_STRANDED).2);
    // Still stranded: nothing more.
    assert!(job_events(Some(&stopped), &stopped).is_empty());
    // The jobs were stopped with Amp's tools.
    let gone = judge(
        Some(&row(100, LockState::Free)),
        &available(101),
        &view(vec![]),
        Some(&stopped),
    );
    assert_eq!(
        job_events(Some(&stopped), &gone),
        [StatusEvent {
            reason: "StrandedJobsGone",
            warning: false,
            note: "no unfinished job waits on worker worker-01 while it is down any more".into()
        }]
    );

    let late = view(vec![node(scheduled_since(42, 0))]);
    let hb = row(1000, LockState::Held);
    let not_picked = judge(Some(&hb), &available(1000), &late, Some(&healthy));
    let events = job_events(Some(&healthy), &not_picked);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.reason, e.warning))
            .collect::<Vec<_>>(),
        [("JobNotPickedUp", true)]
    );
    let picked = judge(Some(&hb), &available(1000), &v, Some(&not_picked));
    assert_eq!(
        job_events(Some(&not_picked), &picked),
        [StatusEvent {
            reason: "JobsPickedUp",
            warning: false,
            note: "worker worker-01 picks up its jobs again".into()
        }]
    );
    // A first status fires nothing (as for the other conditions).
    assert!(job_events(None, &stopped).is_empty());
}

#[test]
fn job_facts_count_stranded_jobs_only_while_the_worker_is_down() {
    let v = view(vec![node(|n| {
        n.running = 2;
        n.scheduled = 1;
        n.retrying = 1;
    })]);
    let healthy = judge(Some(&row(100, LockState::Held)), &available(101), &v, None);
    assert_eq!(
        JobFacts::of(&healthy),
        Some(JobFacts {
            active: 3,
            scheduled: 1,
            running: 2,
            stranded: 0,
            not_accepting: false,
        })
    );
    let stopped = judge(Some(&row(100, LockState::Free)), &available(101), &v, None);
    assert_eq!(JobFacts::of(&stopped).map(|f| f.stranded), Some(4));
    let none = judge(
        Some(&row(100, LockState::Held)),
        &available(101),
        &JobsView::Absent,
        None,
    );
    assert_eq!(JobFacts::of(&none), None);
}

fn fleet(
    view: &JobsView,
    db: &DbView,
    tally: FleetJobsTally,
    previous: Option<&AmpWorkerFleetStatus>,
) -> AmpWorkerFleetStatus {
    let mut status = AmpWorkerFleetStatus::default();
    apply_fleet_jobs(&mut status, view, db, tally, previous, t(1000));
    status
}

#[test]
fn a_fleet_totals_its_jobs_and_names_the_first_stranded_workers() {
    let v = view(vec![]);
    let mut tally = FleetJobsTally::default();
    tally.add(
        "w-ok",
        &JobFacts {
            active: 5,
            scheduled: 1,
            running: 4,
            stranded: 0,
            not_accepting: false,
        },
    );
    for i in (0..12).rev() {
        tally.add(
            &format!("w-dead-{i:02}"),
            &JobFacts {
                active: 1,
                scheduled: 0,
                running: 1,
                stranded: 1,
                not_accepting: false,
            },
        );
    }
    tally.add_unclaimed(
        "ghost",
        &NodeJobs {
            node_id: "ghost".into(),
            running: 2,
            ..NodeJobs::default()
        },
        true,
    );
    tally.add_unclaimed(
        "idle",
        &NodeJobs {
            node_id: "idle".into(),
            ..NodeJobs::default()
        },
        true,
    );
    let s = fleet(&v, &available(1), tally, None);
    let jobs = s.jobs.clone().unwrap();
    assert_eq!(
        (
            jobs.active,
            jobs.scheduled,
            jobs.running,
            jobs.stranded,
            jobs.unregistered_assignees
        ),
        (17, 1, 16, 14, 2)
    );
    assert_eq!(jobs.stranded_workers.len(), MAX_LISTED_STRANDED);
    assert_eq!(jobs.stranded_workers[0], "ghost");
    assert_eq!(jobs.stranded_workers[1], "w-dead-00");
    let c = find(&s.conditions, JOBS_STRANDED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "JobsStranded")
    );
    assert_eq!(
        c.message,
        "14 unfinished jobs wait on workers that are Stale, Stopped or not registered (2 of them on node ids without a row in the metadata DB), e.g. ghost, w-dead-00, w-dead-01, w-dead-02, w-dead-03; start a worker with the same node id and it resumes them, otherwise stop them (ampctl job stop) and deploy their datasets again"
    );
    let events = fleet_job_events(None, &s);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.reason, e.warning))
            .collect::<Vec<_>>(),
        [("JobsStranded", true)]
    );

    let clear = fleet(&v, &available(1), FleetJobsTally::default(), Some(&s));
    let c = find(&clear.conditions, JOBS_STRANDED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        (
            "False",
            "NoStrandedJobs",
            "no unfinished job waits on a worker that is down"
        )
    );
    assert_eq!(
        fleet_job_events(Some(&s), &clear)
            .iter()
            .map(|e| (e.reason, e.warning))
            .collect::<Vec<_>>(),
        [("StrandedJobsGone", false)]
    );
    assert!(fleet_job_events(Some(&clear), &clear).is_empty());
}

#[test]
fn a_fleet_without_job_tables_or_grants_or_db_says_so() {
    let absent = fleet(
        &JobsView::Absent,
        &available(1),
        FleetJobsTally::default(),
        None,
    );
    assert_eq!((absent.jobs, absent.conditions.len()), (None, 0));

    let unknown = fleet(
        &JobsView::Unknown("jobs unknown: x".into()),
        &available(1),
        FleetJobsTally::default(),
        None,
    );
    assert_eq!(unknown.jobs, None);
    let c = find(&unknown.conditions, JOBS_STRANDED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("Unknown", "JobsUnknown", "jobs unknown: x")
    );

    let before = fleet(
        &view(vec![]),
        &available(1),
        FleetJobsTally::default(),
        None,
    );
    let down = fleet(
        &view(vec![]),
        &DbView::Unavailable { cause: None },
        FleetJobsTally::default(),
        Some(&before),
    );
    assert_eq!(down.jobs, before.jobs);
    assert_eq!(
        find(&down.conditions, JOBS_STRANDED).unwrap().reason,
        "MetadataDbUnavailable"
    );
    assert!(fleet_job_events(Some(&before), &down).is_empty());
}
