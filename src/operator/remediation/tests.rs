use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

/// A worker Stale for 400 s (delay 300 s) in Restart mode, its Pod controlled and old,
/// the fleet healthy otherwise, never remediated: due.
fn due() -> Inputs {
    Inputs {
        mode: RemediationMode::Restart,
        leader: true,
        health: WorkerHealth::Stale { since: t(600) },
        db_now: Some(t(1000)),
        recovered_at: None,
        stale_after: Duration::seconds(300),
        unhealthy: 1,
        max_unhealthy: Ok(1),
        pod: PodFacts::Found {
            in_scope: true,
            controlled: true,
            terminating: false,
            created: Some(t(0)),
        },
        history: None,
        fleet_last: None,
        min_interval: Duration::seconds(60),
        now: t(1000),
    }
}

fn skip(i: Inputs) -> SkipReason {
    match decide(&i) {
        Decision::Skip(r) => r,
        d => panic!("expected a skip, got {d:?}"),
    }
}

#[test]
fn a_worker_stale_past_the_delay_is_restarted() {
    assert_eq!(decide(&due()), Decision::Act { dry_run: false });
    // Exactly at the delay.
    let at = Inputs {
        health: WorkerHealth::Stale { since: t(700) },
        ..due()
    };
    assert_eq!(decide(&at), Decision::Act { dry_run: false });
}

#[test]
fn dry_run_decides_the_same_and_deletes_nothing() {
    let i = Inputs {
        mode: RemediationMode::DryRun,
        ..due()
    };
    assert_eq!(decide(&i), Decision::Act { dry_run: true });
    let paused = Inputs { unhealthy: 2, ..i };
    assert_eq!(skip(paused), SkipReason::TooManyUnhealthy);
}

#[test]
fn off_is_the_default_and_does_nothing() {
    assert_eq!(RemediationMode::default(), RemediationMode::Off);
    let i = Inputs {
        mode: RemediationMode::Off,
        ..due()
    };
    assert_eq!(skip(i), SkipReason::Off);
}

#[test]
fn only_the_leader_acts() {
    let i = Inputs {
        leader: false,
        ..due()
    };
    assert_eq!(skip(i), SkipReason::NotLeader);
}

#[test]
fn never_while_the_db_cannot_be_read() {
    let i = Inputs {
        db_now: None,
        health: WorkerHealth::Unknown,
        ..due()
    };
    assert_eq!(skip(i), SkipReason::DbUnavailable);
    // Health Unknown with a clock (a worker judged Unknown): still never.
    let i = Inputs {
        health: WorkerHealth::Unknown,
        ..due()
    };
    assert_eq!(skip(i), SkipReason::DbUnavailable);
}

#[test]
fn never_within_the_grace_after_the_db_comes_back() {
    let back = |at| Inputs {
        recovered_at: Some(t(at)),
        ..due()
    };
    assert_eq!(skip(back(900)), SkipReason::DbRecovering);
    assert_eq!(skip(back(701)), SkipReason::DbRecovering);
    assert_eq!(decide(&back(700)), Decision::Act { dry_run: false });
}

#[test]
fn never_stopped_not_registered_or_healthy_workers() {
    for (health, reason) in [
        (WorkerHealth::Stopped, SkipReason::Stopped),
        (WorkerHealth::NotRegistered, SkipReason::NotRegistered),
        (WorkerHealth::Fresh, SkipReason::Healthy),
        (
            WorkerHealth::Stale { since: t(701) },
            SkipReason::NotStaleLongEnough,
        ),
    ] {
        let i = Inputs { health, ..due() };
        assert_eq!(skip(i), reason);
        assert!(!reason.is_due(), "{reason:?} is a normal state, not a skip");
    }
}

#[test]
fn never_a_pod_that_is_missing_ambiguous_unselected_bare_terminating_or_new() {
    let found = |in_scope, controlled, terminating, created| PodFacts::Found {
        in_scope,
        controlled,
        terminating,
        created,
    };
    for (pod, reason) in [
        (PodFacts::Missing, SkipReason::NoPod),
        (PodFacts::Ambiguous, SkipReason::AmbiguousPod),
        (
            found(false, true, false, Some(t(0))),
            SkipReason::OutsideSelector,
        ),
        (
            found(true, false, false, Some(t(0))),
            SkipReason::NoController,
        ),
        (
            found(true, true, true, Some(t(0))),
            SkipReason::PodTerminating,
        ),
        (
            found(true, true, false, Some(t(701))),
            SkipReason::PodTooYoung,
        ),
    ] {
        let i = Inputs { pod, ..due() };
        assert_eq!(skip(i), reason);
        assert!(reason.is_due());
    }
    let old_enough = Inputs {
        pod: found(true, true, false, Some(t(700))),
        ..due()
    };
    assert_eq!(decide(&old_enough), Decision::Act { dry_run: false });
}

#[test]
fn never_above_max_unhealthy() {
    let i = |unhealthy, max| Inputs {
        unhealthy,
        max_unhealthy: max,
        ..due()
    };
    assert_eq!(skip(i(2, Ok(1))), SkipReason::TooManyUnhealthy);
    assert_eq!(decide(&i(2, Ok(2))), Decision::Act { dry_run: false });
    assert_eq!(skip(i(1, Ok(0))), SkipReason::TooManyUnhealthy);
    assert_eq!(
        skip(i(1, Err("bad".into()))),
        SkipReason::InvalidMaxUnhealthy
    );
}

#[test]
fn max_unhealthy_is_a_count_or_a_percentage_rounded_down() {
    let int = IntOrString::Int;
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(resolve_max_unhealthy(None, 100), Ok(1));
    assert_eq!(resolve_max_unhealthy(Some(&int(3)), 100), Ok(3));
    assert_eq!(resolve_max_unhealthy(Some(&pct("20%")), 10), Ok(2));
    assert_eq!(resolve_max_unhealthy(Some(&pct("20%")), 9), Ok(1));
    assert_eq!(resolve_max_unhealthy(Some(&pct("20%")), 4), Ok(0));
    assert_eq!(resolve_max_unhealthy(Some(&pct("100%")), 7), Ok(7));
    for bad in ["20", "abc%", "101%", "-1%", ""] {
        assert!(resolve_max_unhealthy(Some(&pct(bad)), 10).is_err(), "{bad}");
    }
    assert!(resolve_max_unhealthy(Some(&int(-1)), 10).is_err());
}

#[test]
fn a_worker_backs_off_doubling_after_each_restart() {
    let after = |count, last| Inputs {
        history: Some(History {
            last: t(last),
            count,
        }),
        ..due()
    };
    // First restart at 500: the next waits 300 s.
    assert_eq!(skip(after(1, 701)), SkipReason::BackOff);
    assert_eq!(decide(&after(1, 700)), Decision::Act { dry_run: false });
    // Second: 600 s; third: 1200 s.
    assert_eq!(skip(after(2, 401)), SkipReason::BackOff);
    assert_eq!(decide(&after(2, 400)), Decision::Act { dry_run: false });
    assert_eq!(skip(after(3, -199)), SkipReason::BackOff);
    assert_eq!(backoff(Duration::seconds(300), 3), Duration::seconds(1200));
    // Capped at 64 times the delay.
    assert_eq!(backoff(Duration::seconds(10), 50), Duration::seconds(640));
    assert_eq!(backoff(Duration::seconds(10), 0), Duration::seconds(10));
}

#[test]
fn the_fleet_restarts_at_most_once_per_interval() {
    let i = |last| Inputs {
        fleet_last: Some(t(last)),
        ..due()
    };
    assert_eq!(skip(i(941)), SkipReason::FleetRateLimit);
    assert_eq!(decide(&i(940)), Decision::Act { dry_run: false });
}

#[test]
fn the_first_failing_rule_is_the_reason() {
    // DB first, then health, then the Pod, then the fleet, then back-off.
    let all_wrong = Inputs {
        db_now: None,
        health: WorkerHealth::Stopped,
        pod: PodFacts::Missing,
        unhealthy: 5,
        ..due()
    };
    assert_eq!(skip(all_wrong.clone()), SkipReason::DbUnavailable);
    let i = Inputs {
        db_now: Some(t(1000)),
        ..all_wrong
    };
    assert_eq!(skip(i.clone()), SkipReason::Stopped);
    let i = Inputs {
        health: WorkerHealth::Stale { since: t(0) },
        ..i
    };
    assert_eq!(skip(i.clone()), SkipReason::NoPod);
    let i = Inputs {
        pod: due().pod,
        ..i
    };
    assert_eq!(skip(i), SkipReason::TooManyUnhealthy);
}

#[test]
fn skip_reasons_are_distinct_snake_case_labels() {
    use SkipReason::*;
    let all = [
        Off,
        NotLeader,
        DbUnavailable,
        DbRecovering,
        NotRegistered,
        Stopped,
        Healthy,
        NotStaleLongEnough,
        NoPod,
        AmbiguousPod,
        OutsideSelector,
        NoController,
        PodTerminating,
        PodTooYoung,
        InvalidMaxUnhealthy,
        TooManyUnhealthy,
        BackOff,
        FleetRateLimit,
    ];
    let labels: std::collections::BTreeSet<&str> = all.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), all.len());
    assert!(
        labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
}
