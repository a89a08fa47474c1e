use super::*;
use crate::operator::crd::{WorkerBuildInfo, WorkerPlacement};
use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A named change to a status or a condition.
type Edit<T> = fn(&mut T);

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn condition(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{type_} is {status}"),
        observed_generation: Some(1),
        last_transition_time: Time(
            k8s_openapi::jiff::Timestamp::from_second(t(0).timestamp()).unwrap(),
        ),
    }
}

/// A Ready worker as an older operator stored it: placement without `source`.
fn stored() -> AmpWorkerStatus {
    AmpWorkerStatus {
        observed_generation: Some(1),
        state: Some("Ready".into()),
        node_id: Some("worker-01".into()),
        info: Some(WorkerBuildInfo {
            version: Some("v1".into()),
            ..Default::default()
        }),
        created_at: Some(t(-100)),
        registered_at: Some(t(-100)),
        heartbeat_at: Some(t(0)),
        placement: Some(WorkerPlacement {
            pod: Some("pod-1".into()),
            node: Some("node-1".into()),
            ..Default::default()
        }),
        conditions: vec![
            condition("Registered", "True", "WorkerRegistered"),
            condition("Healthy", "True", "HeartbeatFresh"),
            condition("VersionMatched", "Unknown", "NoExpectedVersion"),
            condition("Ready", "True", "WorkerReady"),
        ],
        ..Default::default()
    }
}

/// What a newer operator writes for the same worker: `placement.source` set.
fn filled() -> AmpWorkerStatus {
    let mut s = stored();
    s.placement.as_mut().unwrap().source = Some("Worker".into());
    s
}

#[test]
fn an_absent_sub_field_is_a_fill() {
    assert!(only_fills(&stored(), &filled()));
}

#[test]
fn a_fill_with_a_newer_heartbeat_is_still_a_fill() {
    let mut desired = filled();
    desired.heartbeat_at = Some(t(20));
    assert!(only_fills(&stored(), &desired));
}

#[test]
fn an_identical_status_or_a_heartbeat_alone_is_no_fill() {
    assert!(!only_fills(&stored(), &stored()));
    let mut later = stored();
    later.heartbeat_at = Some(t(60));
    assert!(!only_fills(&stored(), &later));
}

#[test]
fn an_absent_optional_field_is_a_fill() {
    let mut old = filled();
    old.placement = None;
    assert!(only_fills(&old, &filled()), "whole placement absent");
    let mut old = filled();
    old.short_commit = None;
    let mut new = filled();
    new.short_commit = Some("8b065bde".into());
    assert!(only_fills(&old, &new), "shortCommit absent");
    let mut old = filled();
    old.observed_generation = None;
    assert!(only_fills(&old, &filled()), "observedGeneration absent");
}

#[test]
fn a_changed_field_is_a_transition() {
    let mut moved = filled();
    moved.placement.as_mut().unwrap().node = Some("node-2".into());
    assert!(
        !only_fills(&stored(), &moved),
        "a field the stored status has changed"
    );
    let mut generation = filled();
    generation.observed_generation = Some(2);
    assert!(!only_fills(&stored(), &generation));
}

#[test]
fn a_removed_field_is_a_transition() {
    let mut gone = stored();
    gone.placement = None;
    assert!(!only_fills(&stored(), &gone));
    let mut sub = stored();
    sub.placement.as_mut().unwrap().node = None;
    assert!(!only_fills(&stored(), &sub));
}

#[test]
fn what_a_user_sees_is_a_transition_even_with_a_fill() {
    let mut state = filled();
    state.state = Some("Stale".into());
    assert!(!only_fills(&stored(), &state), "STATUS");
    let mut version = filled();
    version.info.as_mut().unwrap().version = Some("v2".into());
    assert!(!only_fills(&stored(), &version), "version");
    let mut restarts = filled();
    restarts.restart_count = 1;
    assert!(!only_fills(&stored(), &restarts), "restart count");
}

#[test]
fn a_first_appearance_a_user_sees_is_a_transition() {
    let cases: [(&str, Edit<AmpWorkerStatus>); 6] = [
        ("state", |s| s.state = None),
        ("info", |s| s.info = None),
        ("expectedVersion", |s| s.expected_version = None),
        ("lastRemediationTime", |s| s.last_remediation_time = None),
        ("remediationCount", |s| s.remediation_count = None),
        ("restartCount (a new object starts at 0)", |s| {
            s.restart_count = 0
        }),
    ];
    let mut desired = filled();
    desired.expected_version = Some("v1".into());
    desired.last_remediation_time = Some(t(-5));
    desired.remediation_count = Some(1);
    desired.restart_count = 1;
    for (field, clear) in cases {
        let mut old = desired.clone();
        clear(&mut old);
        assert!(!only_fills(&old, &desired), "{field} added");
    }
}

#[test]
fn a_changed_condition_is_always_a_transition() {
    let change: [(&str, Edit<Condition>); 5] = [
        ("status", |c| c.status = "False".into()),
        ("reason", |c| c.reason = "HeartbeatStale".into()),
        ("message", |c| c.message = "another message".into()),
        ("observedGeneration", |c| c.observed_generation = Some(2)),
        ("lastTransitionTime", |c| {
            c.last_transition_time =
                Time(k8s_openapi::jiff::Timestamp::from_second(t(9).timestamp()).unwrap())
        }),
    ];
    for (what, f) in change {
        let mut desired = filled();
        f(&mut desired.conditions[1]);
        assert!(!only_fills(&stored(), &desired), "Healthy's {what} changed");
    }
    let mut removed = filled();
    removed.conditions.pop();
    assert!(!only_fills(&stored(), &removed), "a condition removed");
}

#[test]
fn a_new_condition_in_its_normal_state_is_a_fill() {
    let mut desired = filled();
    desired
        .conditions
        .push(condition("AcceptingJobs", "True", "AcceptingJobs"));
    desired
        .conditions
        .push(condition("JobsStranded", "False", "NoStrandedJobs"));
    assert!(only_fills(&stored(), &desired));
    // Also with nothing else to fill, and wherever the new condition sits.
    let mut inserted = stored();
    inserted
        .conditions
        .insert(2, condition("AcceptingJobs", "True", "AcceptingJobs"));
    assert!(only_fills(&stored(), &inserted));
}

#[test]
fn a_new_condition_in_an_alarming_state_is_a_transition() {
    for (type_, status) in [
        ("AcceptingJobs", "False"),
        ("AcceptingJobs", "Unknown"),
        ("JobsStranded", "True"),
        ("JobsStranded", "Unknown"),
    ] {
        let mut desired = filled();
        desired
            .conditions
            .push(condition(type_, status, "Whatever"));
        assert!(!only_fills(&stored(), &desired), "new {type_} {status}");
    }
}

#[test]
fn a_status_without_conditions_gets_its_first_judgement_at_once() {
    let mut bare = stored();
    bare.conditions.clear();
    let mut desired = stored();
    desired.conditions.truncate(2);
    assert!(!only_fills(&bare, &desired));
}

#[test]
fn keys_are_added_at_any_depth_but_arrays_and_scalars_stay_equal() {
    use serde_json::json;
    let old = json!({"a": 1, "b": {"c": "x"}, "l": [1, 2]});
    assert!(only_added(
        &old,
        &json!({"a": 1, "b": {"c": "x", "d": {"e": 1}}, "l": [1, 2], "n": []})
    ));
    assert!(
        !only_added(&old, &json!({"a": 1, "b": {"c": "x"}, "l": [1, 2, 3]})),
        "element added"
    );
    assert!(
        !only_added(&old, &json!({"a": 1, "b": {"c": "x"}, "l": [2, 1]})),
        "reordered"
    );
    assert!(
        !only_added(&old, &json!({"a": 2, "b": {"c": "x"}, "l": [1, 2]})),
        "scalar changed"
    );
    assert!(
        !only_added(&old, &json!({"a": 1, "b": "x", "l": [1, 2]})),
        "object replaced"
    );
    assert!(
        !only_added(&old, &json!({"a": 1, "l": [1, 2]})),
        "key removed"
    );
}

#[test]
fn write_need_budgets_a_fill_and_writes_a_transition_at_once() {
    use super::super::{WriteNeed, write_need};
    let refresh = chrono::Duration::seconds(60);
    assert_eq!(
        write_need(Some(&stored()), &filled(), refresh),
        WriteNeed::Fill
    );
    let mut later = filled();
    later.heartbeat_at = Some(t(90));
    assert_eq!(
        write_need(Some(&stored()), &later, refresh),
        WriteNeed::Fill,
        "a due heartbeat rides along with the fill"
    );
    let mut stale = filled();
    stale.state = Some("Stale".into());
    stale.conditions[1] = condition("Healthy", "False", "HeartbeatStale");
    assert_eq!(
        write_need(Some(&stored()), &stale, refresh),
        WriteNeed::Transition
    );
    assert_eq!(write_need(None, &filled(), refresh), WriteNeed::Transition);
}
