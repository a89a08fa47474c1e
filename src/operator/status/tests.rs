use super::*;
use crate::metadata_db::{LockState, WorkerInfo};
use chrono::TimeZone;

fn t(s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(i64::from(s))
}

fn row(version: &str, registered: DateTime<Utc>, heartbeat: DateTime<Utc>) -> SnapshotRow {
    SnapshotRow {
        node_id: "worker-01".into(),
        info: std::sync::Arc::new(WorkerInfo {
            version: Some(version.into()),
            commit_sha: Some("8b065bde".into()),
            commit_timestamp: None,
            build_date: Some("2025-10-30".into()),
            placement: None,
            oversized: vec![],
        }),
        created_at: t(0),
        registered_at: registered,
        heartbeat_at: heartbeat,
        lock: Default::default(),
    }
}

fn spec(expected: Option<&str>) -> AmpWorkerSpec {
    AmpWorkerSpec {
        node_id: "worker-01".into(),
        expected_version: expected.map(Into::into),
        heartbeat_timeout_seconds: None,
        job_pickup_timeout_seconds: None,
    }
}

fn available(now: DateTime<Utc>) -> DbView {
    DbView::Available {
        db_now: now,
        recovered_at: None,
    }
}

fn run(
    row: Option<&SnapshotRow>,
    db: &DbView,
    spec: &AmpWorkerSpec,
    prev: Option<&AmpWorkerStatus>,
    now: DateTime<Utc>,
) -> AmpWorkerStatus {
    desired_status(&WorkerInputs {
        row,
        db,
        spec,
        fleet_version: None,
        timeout: heartbeat_timeout(spec, None, DEFAULT_HEARTBEAT_TIMEOUT_SECS),
        previous: prev,
        generation: Some(3),
        now,
    })
}

/// (type, status, reason) of each condition, in order.
fn conds(s: &AmpWorkerStatus) -> Vec<(String, String, String)> {
    s.conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn c(t: &str, s: &str, r: &str) -> (String, String, String) {
    (t.into(), s.into(), r.into())
}

#[test]
fn fresh_worker_on_the_expected_version_is_ready() {
    let r = row("v2", t(0), t(100));
    let s = run(
        Some(&r),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(
        conds(&s),
        [
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "True", "HeartbeatFresh"),
            c("VersionMatched", "True", "VersionMatches"),
            c("Ready", "True", "WorkerReady")
        ]
    );
    assert_eq!(s.state.as_deref(), Some("Ready"));
    assert_eq!(
        s.heartbeat_at
            .map(|t| crate::timestamps::format_timestamp(&t))
            .as_deref(),
        Some("2026-11-22T10:01:40Z")
    );
    assert_eq!(
        s.created_at
            .map(|t| crate::timestamps::format_timestamp(&t))
            .as_deref(),
        Some("2026-11-22T10:00:00Z")
    );
    assert_eq!(s.node_id.as_deref(), Some("worker-01"));
    assert_eq!(s.observed_generation, Some(3));
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    assert_eq!(
        s.info.as_ref().unwrap().commit_sha.as_deref(),
        Some("8b065bde")
    );
    assert_eq!(s.restart_count, 0);
}

#[test]
fn threshold_is_inclusive_and_judged_by_the_db_clock() {
    let r = row("v2", t(0), t(100));
    let at_limit = run(Some(&r), &available(t(130)), &spec(None), None, t(9999));
    assert_eq!(
        at_limit.conditions[1].status, "True",
        "exactly 30 s is still healthy"
    );
    let just_over = run(
        Some(&r),
        &DbView::Available {
            db_now: t(130) + chrono::Duration::milliseconds(1),
            recovered_at: None,
        },
        &spec(None),
        None,
        t(0),
    );
    assert_eq!(
        conds(&just_over)[1],
        c("Healthy", "False", "HeartbeatStale")
    );
    assert_eq!(conds(&just_over)[3], c("Ready", "False", "HeartbeatStale"));
    assert_eq!(just_over.state.as_deref(), Some("Stale"));
    assert_eq!(
        just_over.conditions[1].message,
        "no heartbeat for more than 30s (last at 2026-11-22T10:01:40Z)"
    );

    let mut custom = spec(None);
    custom.heartbeat_timeout_seconds = Some(5);
    assert_eq!(
        run(Some(&r), &available(t(106)), &custom, None, t(0)).conditions[1].status,
        "False"
    );
    assert_eq!(
        run(Some(&r), &available(t(105)), &custom, None, t(0)).conditions[1].status,
        "True"
    );
}

#[test]
fn just_registered_worker_without_expectations() {
    let r = row("v1", t(0), t(0));
    let s = run(Some(&r), &available(t(0)), &spec(None), None, t(0));
    assert_eq!(
        conds(&s)[2],
        c("VersionMatched", "Unknown", "NoExpectedVersion")
    );
    assert_eq!(
        conds(&s)[3],
        c("Ready", "True", "WorkerReady"),
        "no expectation does not block Ready"
    );
}

#[test]
fn restart_counts_once_per_registration_move() {
    let first = run(
        Some(&row("v1", t(0), t(10))),
        &available(t(10)),
        &spec(None),
        None,
        t(10),
    );
    assert_eq!(first.restart_count, 0);
    let restarted_row = row("v1", t(50), t(51));
    let second = run(
        Some(&restarted_row),
        &available(t(51)),
        &spec(None),
        Some(&first),
        t(51),
    );
    assert_eq!(second.restart_count, 1);
    assert_eq!(
        second
            .registered_at
            .map(|t| crate::timestamps::format_timestamp(&t))
            .as_deref(),
        Some("2026-11-22T10:00:50Z")
    );
    let again = run(
        Some(&restarted_row),
        &available(t(52)),
        &spec(None),
        Some(&second),
        t(52),
    );
    assert_eq!(
        again.restart_count, 1,
        "same registration is not counted twice"
    );
    assert_eq!(
        transition_events(Some(&first), &second, ExpectedFrom::Worker)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>(),
        ["WorkerRestarted"]
    );
}

#[test]
fn version_mismatch_against_spec_and_fleet() {
    let r = row("v1", t(0), t(10));
    let s = run(Some(&r), &available(t(10)), &spec(Some("v2")), None, t(10));
    assert_eq!(
        conds(&s)[2],
        c("VersionMatched", "False", "VersionMismatch")
    );
    assert_eq!(s.conditions[2].message, "running v1, expected v2");
    assert_eq!(conds(&s)[3], c("Ready", "False", "VersionMismatch"));
    assert_eq!(s.state.as_deref(), Some("VersionMismatch"));

    let via_fleet = desired_status(&WorkerInputs {
        row: Some(&r),
        db: &available(t(10)),
        spec: &spec(None),
        fleet_version: Some("v2"),
        timeout: heartbeat_timeout(&spec(None), None, DEFAULT_HEARTBEAT_TIMEOUT_SECS),
        previous: None,
        generation: Some(1),
        now: t(10),
    });
    assert_eq!(
        conds(&via_fleet)[2],
        c("VersionMatched", "False", "VersionMismatch")
    );
    let spec_wins = desired_status(&WorkerInputs {
        row: Some(&r),
        db: &available(t(10)),
        spec: &spec(Some("v1")),
        fleet_version: Some("v2"),
        timeout: heartbeat_timeout(&spec(Some("v1")), None, DEFAULT_HEARTBEAT_TIMEOUT_SECS),
        previous: None,
        generation: Some(1),
        now: t(10),
    });
    assert_eq!(
        conds(&spec_wins)[2],
        c("VersionMatched", "True", "VersionMatches")
    );
}

#[test]
fn db_unavailable_makes_health_unknown_and_keeps_the_last_known_facts() {
    let before = run(
        Some(&row("v2", t(0), t(10))),
        &available(t(10)),
        &spec(Some("v2")),
        None,
        t(10),
    );
    let s = run(
        None,
        &DbView::Unavailable { cause: None },
        &spec(Some("v2")),
        Some(&before),
        t(60),
    );
    assert_eq!(
        conds(&s),
        [
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "Unknown", "MetadataDbUnavailable"),
            c("VersionMatched", "True", "VersionMatches"),
            c("Ready", "Unknown", "MetadataDbUnavailable")
        ]
    );
    assert_eq!(s.state.as_deref(), Some("Unknown"));
    assert_eq!(
        s.heartbeat_at, before.heartbeat_at,
        "last known heartbeat kept"
    );
    assert!(
        transition_events(Some(&before), &s, ExpectedFrom::Worker).is_empty(),
        "no WorkerStale for an outage"
    );
    // Registered keeps its transition time; Healthy's moves.
    assert_eq!(
        s.conditions[0].last_transition_time,
        before.conditions[0].last_transition_time
    );
    assert_ne!(
        s.conditions[1].last_transition_time,
        before.conditions[1].last_transition_time
    );

    let never_seen = run(
        None,
        &DbView::Unavailable { cause: None },
        &spec(None),
        None,
        t(60),
    );
    assert_eq!(
        conds(&never_seen)[0],
        c("Registered", "Unknown", "MetadataDbUnavailable")
    );
}

#[test]
fn after_an_outage_heartbeats_are_judged_from_the_db_return() {
    // Last heartbeat at t(10), DB down until t(100): without the recovery rule this
    // would be 90 s stale although the worker could not write.
    let r = row("v2", t(0), t(10));
    let db = DbView::Available {
        db_now: t(101),
        recovered_at: Some(t(100)),
    };
    assert_eq!(
        run(Some(&r), &db, &spec(None), None, t(101)).conditions[1].status,
        "True"
    );
    // A worker that stays silent is flagged once the timeout passes after the return.
    let later = DbView::Available {
        db_now: t(131),
        recovered_at: Some(t(100)),
    };
    assert_eq!(
        run(Some(&r), &later, &spec(None), None, t(131)).conditions[1].status,
        "False"
    );
}

#[test]
fn deleted_row_is_not_registered_and_keeps_last_known_fields() {
    let before = run(
        Some(&row("v2", t(0), t(10))),
        &available(t(10)),
        &spec(None),
        None,
        t(10),
    );
    let s = run(None, &available(t(20)), &spec(None), Some(&before), t(20));
    assert_eq!(
        conds(&s),
        [
            c("Registered", "False", "NotRegistered"),
            c("Healthy", "False", "NotRegistered"),
            c("VersionMatched", "Unknown", "NoExpectedVersion"),
            c("Ready", "False", "NotRegistered")
        ]
    );
    assert_eq!(s.state.as_deref(), Some("NotRegistered"));
    assert_eq!(s.registered_at, before.registered_at);
    let never = run(None, &available(t(20)), &spec(Some("v2")), None, t(20));
    assert_eq!(
        conds(&never)[2],
        c("VersionMatched", "Unknown", "NotRegistered")
    );
}

#[test]
fn unchanged_situation_gives_identical_status_and_no_write() {
    let r = row("v2", t(0), t(10));
    let first = run(Some(&r), &available(t(11)), &spec(Some("v2")), None, t(11));
    let second = run(
        Some(&r),
        &available(t(12)),
        &spec(Some("v2")),
        Some(&first),
        t(12),
    );
    assert_eq!(first, second, "transition times and messages do not move");
    assert!(!needs_write(
        Some(&first),
        &second,
        chrono::Duration::seconds(60)
    ));
    assert!(needs_write(None, &first, chrono::Duration::seconds(60)));
}

#[test]
fn heartbeat_progress_alone_is_written_only_every_refresh_interval() {
    let stored = run(
        Some(&row("v2", t(0), t(10))),
        &available(t(10)),
        &spec(None),
        None,
        t(10),
    );
    let refresh = chrono::Duration::seconds(60);
    let later = run(
        Some(&row("v2", t(0), t(69))),
        &available(t(69)),
        &spec(None),
        Some(&stored),
        t(69),
    );
    assert!(
        !needs_write(Some(&stored), &later, refresh),
        "59 s of progress: not yet"
    );
    let due = run(
        Some(&row("v2", t(0), t(70))),
        &available(t(70)),
        &spec(None),
        Some(&stored),
        t(70),
    );
    assert!(needs_write(Some(&stored), &due, refresh), "60 s: refresh");
    // A visible change is written at once, carrying the latest heartbeat.
    let stale = run(
        Some(&row("v2", t(0), t(10))),
        &available(t(41)),
        &spec(None),
        Some(&stored),
        t(41),
    );
    assert!(needs_write(Some(&stored), &stale, refresh));
}

#[test]
fn transitions_fire_the_right_events_once() {
    let r = row("v1", t(0), t(10));
    let fresh = run(Some(&r), &available(t(10)), &spec(None), None, t(10));
    let stale = run(
        Some(&r),
        &available(t(41)),
        &spec(None),
        Some(&fresh),
        t(41),
    );
    let evs = transition_events(Some(&fresh), &stale, ExpectedFrom::Worker);
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].reason, evs[0].warning), ("WorkerStale", true));
    let still = run(
        Some(&r),
        &available(t(42)),
        &spec(None),
        Some(&stale),
        t(42),
    );
    assert!(
        transition_events(Some(&stale), &still, ExpectedFrom::Worker).is_empty(),
        "no repeat while stale"
    );
    let back = run(
        Some(&row("v1", t(0), t(50))),
        &available(t(50)),
        &spec(None),
        Some(&still),
        t(50),
    );
    assert_eq!(
        transition_events(Some(&still), &back, ExpectedFrom::Worker)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>(),
        ["WorkerRecovered"]
    );
    // Upgrade to a version that does not match the spec: changed + mismatch.
    let upgraded = run(
        Some(&row("v2", t(60), t(60))),
        &available(t(60)),
        &spec(Some("v3")),
        Some(&back),
        t(60),
    );
    assert_eq!(
        transition_events(Some(&back), &upgraded, ExpectedFrom::Worker)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>(),
        ["WorkerRestarted", "VersionChanged", "VersionMismatch"]
    );
    assert!(
        transition_events(None, &fresh, ExpectedFrom::Worker).is_empty(),
        "first sighting is not a transition"
    );
}

#[test]
fn commit_timestamp_uses_the_whole_second_z_form_and_odd_values_are_kept() {
    // As the row decoder reads what the worker reported (it normalises the form).
    let reported = |ts: &str| {
        crate::metadata_db::WorkerInfo::from_json(&serde_json::json!({"commit_timestamp": ts}))
            .commit_timestamp
    };
    let mut r = row("v1", t(0), t(1));
    std::sync::Arc::make_mut(&mut r.info).commit_timestamp =
        reported("2025-10-30T11:00:00.5+02:00");
    let s = run(Some(&r), &available(t(2)), &spec(None), None, t(2));
    assert_eq!(
        s.info.unwrap().commit_timestamp.as_deref(),
        Some("2025-10-30T09:00:00Z")
    );
    std::sync::Arc::make_mut(&mut r.info).commit_timestamp = reported("not a time");
    let s = run(Some(&r), &available(t(2)), &spec(None), None, t(2));
    assert_eq!(
        s.info.unwrap().commit_timestamp.as_deref(),
        Some("not a time")
    );
}

#[test]
fn write_need_separates_transitions_from_heartbeat_refreshes() {
    let refresh = chrono::Duration::seconds(60);
    let stored = run(
        Some(&row("v2", t(0), t(10))),
        &available(t(10)),
        &spec(None),
        None,
        t(10),
    );
    assert_eq!(write_need(None, &stored, refresh), WriteNeed::Transition);
    let next = |hb: u32, at: u32, version: &str| {
        run(
            Some(&row(version, t(0), t(hb))),
            &available(t(at)),
            &spec(None),
            Some(&stored),
            t(at),
        )
    };
    assert_eq!(
        write_need(Some(&stored), &next(69, 69, "v2"), refresh),
        WriteNeed::None
    );
    assert_eq!(
        write_need(Some(&stored), &next(70, 70, "v2"), refresh),
        WriteNeed::Refresh
    );
    assert_eq!(
        write_need(Some(&stored), &next(10, 41, "v2"), refresh),
        WriteNeed::Transition,
        "stale"
    );
    assert_eq!(
        write_need(Some(&stored), &next(70, 70, "v3"), refresh),
        WriteNeed::Transition,
        "a version change rides along with a refresh, but is a transition"
    );
    let restarted = run(
        Some(&row("v2", t(20), t(21))),
        &available(t(21)),
        &spec(None),
        Some(&stored),
        t(21),
    );
    assert_eq!(
        write_need(Some(&stored), &restarted, refresh),
        WriteNeed::Transition
    );
}

fn locked(mut r: SnapshotRow, lock: LockState) -> SnapshotRow {
    r.lock = lock;
    r
}

#[test]
fn a_free_lock_is_a_stopped_worker_at_once_and_a_held_one_is_judged_by_heartbeat() {
    // Stopped one second after its last heartbeat: well inside the 30 s timeout.
    let stopped = locked(row("v2", t(0), t(100)), LockState::Free);
    let s = run(
        Some(&stopped),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(s.state.as_deref(), Some("Stopped"));
    assert_eq!(
        conds(&s),
        vec![
            c("Registered", "True", "WorkerRegistered"),
            c("Healthy", "False", "WorkerStopped"),
            c("VersionMatched", "True", "VersionMatches"),
            c("Ready", "False", "WorkerStopped"),
        ]
    );
    assert_eq!(
        s.conditions[1].message,
        "no process holds the node id (its lock is free): the worker stopped; last heartbeat at 2026-11-22T10:01:40Z"
    );
    // Held, heartbeats stopped past the timeout: hung or cut off, i.e. Stale.
    let hung = locked(row("v2", t(0), t(100)), LockState::Held);
    let s = run(
        Some(&hung),
        &available(t(131)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(s.state.as_deref(), Some("Stale"));
    let s = run(
        Some(&hung),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(s.state.as_deref(), Some("Ready"));
    // Not read (Admin API rows, writers without locks in unit tests): heartbeat only.
    let unknown = locked(row("v2", t(0), t(100)), LockState::Unknown);
    let s = run(
        Some(&unknown),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(s.state.as_deref(), Some("Ready"));
}

#[test]
fn after_an_outage_a_free_lock_waits_for_the_worker_to_reconnect() {
    // The DB came back at 200; the worker's last heartbeat is from before the outage, so
    // its free lock means "not reconnected yet", not "stopped".
    let r = locked(row("v2", t(0), t(100)), LockState::Free);
    let db = DbView::Available {
        db_now: t(202),
        recovered_at: Some(t(200)),
    };
    let s = run(Some(&r), &db, &spec(Some("v2")), None, t(500));
    assert_eq!(s.state.as_deref(), Some("Ready"));
    // Once it has heartbeated after the return, a free lock is a stop again.
    let r = locked(row("v2", t(0), t(201)), LockState::Free);
    let s = run(Some(&r), &db, &spec(Some("v2")), None, t(500));
    assert_eq!(s.state.as_deref(), Some("Stopped"));
}

#[test]
fn a_stop_is_one_normal_event_not_a_stale_warning() {
    let live = locked(row("v2", t(0), t(100)), LockState::Held);
    let ready = run(
        Some(&live),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    let gone = locked(row("v2", t(0), t(100)), LockState::Free);
    let stopped = run(
        Some(&gone),
        &available(t(102)),
        &spec(Some("v2")),
        Some(&ready),
        t(501),
    );
    let events = transition_events(Some(&ready), &stopped, ExpectedFrom::Worker);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.reason, e.warning))
            .collect::<Vec<_>>(),
        [("WorkerStopped", false)]
    );
    // A hung worker that is then killed: Stale, then one WorkerStopped.
    let stale = run(
        Some(&live),
        &available(t(140)),
        &spec(Some("v2")),
        Some(&ready),
        t(502),
    );
    assert_eq!(
        transition_events(Some(&ready), &stale, ExpectedFrom::Worker)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>(),
        ["WorkerStale"]
    );
    let killed = run(
        Some(&gone),
        &available(t(141)),
        &spec(Some("v2")),
        Some(&stale),
        t(503),
    );
    assert_eq!(
        transition_events(Some(&stale), &killed, ExpectedFrom::Worker)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>(),
        ["WorkerStopped"]
    );
    // Restarted: the lock is held again and registeredAt moved.
    let back = locked(row("v2", t(200), t(200)), LockState::Held);
    let restarted = run(
        Some(&back),
        &available(t(201)),
        &spec(Some("v2")),
        Some(&killed),
        t(504),
    );
    assert_eq!(restarted.state.as_deref(), Some("Ready"));
    assert_eq!(restarted.restart_count, killed.restart_count + 1);
    assert_eq!(
        transition_events(Some(&killed), &restarted, ExpectedFrom::Worker)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>(),
        ["WorkerRecovered", "WorkerRestarted"]
    );
}

#[test]
fn placement_is_mirrored_from_what_the_worker_reported() {
    let mut r = row("v2", t(0), t(100));
    std::sync::Arc::make_mut(&mut r.info).placement = Some(crate::metadata_db::Placement {
        pod: Some("amp-worker-0".into()),
        node: Some("node-a".into()),
        ..Default::default()
    });
    let s = run(
        Some(&r),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(
        s.placement,
        Some(WorkerPlacement {
            pod: Some("amp-worker-0".into()),
            node: Some("node-a".into()),
            source: Some("Worker".into()),
            ..Default::default()
        })
    );
    // Amp's workers report none: no placement, nothing invented.
    let s = run(
        Some(&row("v2", t(0), t(100))),
        &available(t(101)),
        &spec(Some("v2")),
        None,
        t(500),
    );
    assert_eq!(s.placement, None);
}

fn judged(
    r: &SnapshotRow,
    spec: &AmpWorkerSpec,
    fleet_version: Option<&str>,
    db: &DbView,
    previous: Option<&AmpWorkerStatus>,
) -> AmpWorkerStatus {
    desired_status(&WorkerInputs {
        row: Some(r),
        db,
        spec,
        fleet_version,
        timeout: heartbeat_timeout(spec, None, DEFAULT_HEARTBEAT_TIMEOUT_SECS),
        previous,
        generation: Some(1),
        now: t(10),
    })
}

fn with_commit(sha: Option<&str>) -> SnapshotRow {
    let mut r = row("v1", t(0), t(10));
    std::sync::Arc::make_mut(&mut r.info).commit_sha = sha.map(Into::into);
    r
}

/// `-o wide`'s EXPECTED and COMMIT columns: the version judged against (spec, else the
/// fleet, else none) and the commit cut to 12 characters, kept through a DB outage.
#[test]
fn expected_version_and_short_commit_are_shown_for_the_wide_columns() {
    let sha = "8b065bde3c1f4a7e9d2b6c5a0f1e2d3c4b5a6978";
    let r = with_commit(Some(sha));
    let up = available(t(10));
    let own = judged(&r, &spec(Some("v1")), Some("v2"), &up, None);
    assert_eq!(own.expected_version.as_deref(), Some("v1"));
    assert_eq!(own.short_commit.as_deref(), Some("8b065bde3c1f"));
    assert_eq!(
        own.info.as_ref().unwrap().commit_sha.as_deref(),
        Some(sha),
        "info keeps the full SHA"
    );
    let fleets = judged(&r, &spec(None), Some("v2"), &up, None);
    assert_eq!(fleets.expected_version.as_deref(), Some("v2"));
    assert_eq!(
        judged(&r, &spec(None), None, &up, None).expected_version,
        None
    );

    let down = DbView::Unavailable { cause: None };
    let outage = judged(&r, &spec(None), Some("v3"), &down, Some(&own));
    assert_eq!(
        outage.expected_version.as_deref(),
        Some("v3"),
        "from the spec and the fleet, not the DB"
    );
    assert_eq!(outage.short_commit.as_deref(), Some("8b065bde3c1f"));

    let odd = judged(&with_commit(Some("äöü-kurz")), &spec(None), None, &up, None);
    assert_eq!(
        odd.short_commit.as_deref(),
        Some("äöü-kurz"),
        "characters, not bytes"
    );
    let long = judged(
        &with_commit(Some("äöüäöüäöüäöüäöü")),
        &spec(None),
        None,
        &up,
        None,
    );
    assert_eq!(long.short_commit.as_deref(), Some("äöüäöüäöüäöü"));
    let none = judged(&with_commit(None), &spec(None), None, &up, None);
    assert_eq!(none.short_commit, None);
}

/// Every condition of one object says the same cause, also after the cause changed
/// during an outage (a worker first seen while the DB was down).
#[test]
fn conditions_carry_the_current_db_cause_only() {
    let refused = DbView::Unavailable {
        cause: Some("connection refused"),
    };
    let first = run(None, &refused, &spec(None), None, t(10));
    let tls = DbView::Unavailable {
        cause: Some("TLS failed: certificate expired"),
    };
    let s = run(None, &tls, &spec(None), Some(&first), t(20));
    let messages: Vec<&str> = s.conditions.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "the metadata DB cannot be read (TLS failed: certificate expired)",
            "the metadata DB cannot be read (TLS failed: certificate expired); heartbeat unknown",
            "no expectedVersion set and no fleet selects this worker",
            "the metadata DB cannot be read (TLS failed: certificate expired)",
        ]
    );
    // A fact known before the outage is kept as it was.
    let before = run(
        Some(&row("v2", t(0), t(10))),
        &available(t(10)),
        &spec(None),
        None,
        t(10),
    );
    let s = run(None, &tls, &spec(None), Some(&before), t(20));
    assert_eq!(conds(&s)[0], c("Registered", "True", "WorkerRegistered"));
}

/// A fleet's rollout is one event on the fleet: a worker judged against its fleet's
/// version gets no VersionMismatch Warning; one with its own expectedVersion does.
#[test]
fn version_mismatch_warns_only_for_a_workers_own_expected_version() {
    let r = row("v1", t(0), t(10));
    let matched = judged(&r, &spec(None), Some("v1"), &available(t(10)), None);
    let rolled = judged(
        &r,
        &spec(None),
        Some("v2"),
        &available(t(10)),
        Some(&matched),
    );
    assert_eq!(
        conds(&rolled)[2],
        c("VersionMatched", "False", "VersionMismatch")
    );
    assert!(transition_events(Some(&matched), &rolled, ExpectedFrom::Fleet).is_empty());
    let reasons: Vec<&str> = transition_events(Some(&matched), &rolled, ExpectedFrom::Worker)
        .iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["VersionMismatch"]);
}

#[test]
fn the_heartbeat_timeout_is_the_workers_then_the_fleets_then_the_default() {
    let mut own = spec(None);
    assert_eq!(heartbeat_timeout(&own, None, 30), 30);
    assert_eq!(heartbeat_timeout(&own, Some(5), 30), 5);
    own.heartbeat_timeout_seconds = Some(60);
    assert_eq!(heartbeat_timeout(&own, Some(5), 30), 60);
}
