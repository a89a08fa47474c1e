use super::*;
use crate::metadata_db::WorkerInfo;
use crate::operator::crd::AmpWorkerFleetSpec;
use crate::operator::crd::{AmpWorkerSpec, DISCOVERED_LABEL, NODE_ID_ANNOTATION};
use crate::operator::naming::object_name;
use chrono::TimeZone;
use kube::ResourceExt;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn row(node: &str, version: &str, heartbeat: DateTime<Utc>) -> SnapshotRow {
    SnapshotRow {
        node_id: node.into(),
        info: Arc::new(WorkerInfo {
            version: Some(version.into()),
            ..Default::default()
        }),
        created_at: t(-1000),
        registered_at: t(-1000),
        heartbeat_at: heartbeat,
        lock: Default::default(),
    }
}

fn existing(name: &str, node: &str, discovered: bool) -> Arc<CachedWorker> {
    let mut w = if discovered {
        discovered_worker(node)
    } else {
        AmpWorker::new(
            name,
            AmpWorkerSpec {
                node_id: node.into(),
                expected_version: None,
                heartbeat_timeout_seconds: None,
                job_pickup_timeout_seconds: None,
            },
        )
    };
    w.metadata.name = Some(name.into());
    w.metadata.uid = Some(format!("uid-{name}"));
    w.metadata.generation = Some(1);
    Arc::new(w.into())
}

fn fleet(name: &str, version: &str) -> Arc<AmpWorkerFleet> {
    let mut f = AmpWorkerFleet::new(
        name,
        AmpWorkerFleetSpec {
            version: version.into(),
            selector: None,
            min_ready: None,
            pod_selector: None,
            remediation: None,
            progress_deadline_seconds: None,
            heartbeat_timeout_seconds: None,
            min_ready_seconds: None,
            retire_stopped_after_seconds: None,
        },
    );
    f.metadata.uid = Some(format!("uid-{name}"));
    f.metadata.generation = Some(1);
    Arc::new(f)
}

fn config() -> PlanConfig {
    PlanConfig {
        status_refresh: chrono::Duration::seconds(60),
        refresh_budget: 20.0,
        gc_after: Some(chrono::Duration::hours(24)),
        gc_stopped_after: Some(chrono::Duration::minutes(15)),
        heartbeat_timeout_secs: 30,
    }
}

fn available(now: DateTime<Utc>) -> DbView {
    DbView::Available {
        db_now: now,
        recovered_at: None,
    }
}

fn run(
    db: &DbView,
    rows: &[SnapshotRow],
    workers: &[Arc<CachedWorker>],
    fleets: &[Arc<AmpWorkerFleet>],
    written: &Written,
) -> Plan {
    plan(
        &PlanInput {
            db,
            rows,
            workers,
            fleets,
            written,
            recovery_from: None,
            now: t(0),
            refresh_allowance: usize::MAX,
            jobs: &JobsView::Absent,
        },
        &config(),
    )
}

#[test]
fn unclaimed_rows_are_discovered_with_mapped_names() {
    let rows = [row("worker-1", "v1", t(0)), row("Worker_2", "v1", t(0))];
    let p = run(&available(t(1)), &rows, &[], &[], &Written::default());
    let created: Vec<(String, String)> = p
        .creates
        .iter()
        .map(|(w, _, _)| (w.name_any(), w.spec.node_id.clone()))
        .collect();
    assert_eq!(
        created,
        vec![
            (object_name("Worker_2"), "Worker_2".to_string()),
            ("worker-1".to_string(), "worker-1".to_string()),
        ]
    );
    let (w, status, events) = &p.creates[0];
    assert!(events.is_empty());
    assert_eq!(
        w.labels().get(DISCOVERED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        w.annotations().get(NODE_ID_ANNOTATION).map(String::as_str),
        Some("Worker_2")
    );
    assert_eq!(status.state.as_deref(), Some("Ready"));
    assert!(p.worker_writes.is_empty());
}

#[test]
fn a_user_created_ampworker_is_respected_not_duplicated() {
    let rows = [row("worker-1", "v1", t(0))];
    let user = existing("my-worker", "worker-1", false);
    let p = run(&available(t(1)), &rows, &[user], &[], &Written::default());
    assert!(p.creates.is_empty());
    assert_eq!(p.worker_writes.len(), 1);
    assert_eq!(p.worker_writes[0].name, "my-worker");
}

#[test]
fn a_discovered_duplicate_of_a_user_ampworker_is_deleted() {
    let rows = [row("worker-1", "v1", t(0))];
    let user = existing("my-worker", "worker-1", false);
    let discovered = existing("worker-1", "worker-1", true);
    let p = run(
        &available(t(1)),
        &rows,
        &[user, discovered],
        &[],
        &Written::default(),
    );
    assert_eq!(
        p.deletes,
        vec![Delete {
            name: "worker-1".into(),
            uid: Some("uid-worker-1".into()),
            why: "an AmpWorker created by a user already has nodeId \"worker-1\"".into(),
        }]
    );
}

#[test]
fn gc_deletes_only_discovered_workers_gone_past_gc_after() {
    let day = 24 * 3600;
    let rows = [
        row("old", "v1", t(-day - 1)),
        row("recent", "v1", t(-day)),
        row("users-old", "v1", t(-day - 1)),
    ];
    let workers = [
        existing("old", "old", true),
        existing("recent", "recent", true),
        existing("users-old", "users-old", false),
    ];
    let p = run(&available(t(0)), &rows, &workers, &[], &Written::default());
    let deleted: Vec<&str> = p.deletes.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deleted, vec!["old"]);
    assert!(
        p.creates.is_empty(),
        "a row gone past gc-after is not rediscovered"
    );
}

#[test]
fn gc_is_disabled_with_zero_and_while_the_db_is_down() {
    let rows = [row("old", "v1", t(-100 * 3600))];
    let workers = [existing("old", "old", true)];
    let mut cfg = config();
    cfg.gc_after = None;
    let written = Written::default();
    let p = plan(
        &PlanInput {
            db: &available(t(0)),
            rows: &rows,
            workers: &workers,
            fleets: &[],
            written: &written,
            recovery_from: None,
            now: t(0),
            refresh_allowance: usize::MAX,
            jobs: &JobsView::Absent,
        },
        &cfg,
    );
    assert!(p.deletes.is_empty());
    let p = run(
        &DbView::Unavailable { cause: None },
        &[],
        &workers,
        &[],
        &written,
    );
    assert!(p.deletes.is_empty());
    assert!(p.creates.is_empty());
}

#[test]
fn a_row_removed_from_the_db_makes_the_worker_not_registered() {
    let workers = [existing("w", "w", true)];
    let p = run(&available(t(0)), &[], &workers, &[], &Written::default());
    assert!(
        p.deletes.is_empty(),
        "created just now: not gone long enough"
    );
    assert_eq!(
        p.worker_writes[0].status.state.as_deref(),
        Some("NotRegistered")
    );
}

#[test]
fn a_fleet_version_becomes_the_expected_version_unless_the_worker_sets_its_own() {
    let rows = [row("a", "v1", t(0)), row("b", "v1", t(0))];
    let mut own = (*existing("b", "b", false)).clone();
    own.spec.expected_version = Some("v1".into());
    let workers = [existing("a", "a", true), Arc::new(own)];
    let p = run(
        &available(t(1)),
        &rows,
        &workers,
        &[fleet("fleet", "v2")],
        &Written::default(),
    );
    let states: Vec<(&str, Option<&str>)> = p
        .worker_writes
        .iter()
        .map(|w| (w.name.as_str(), w.status.state.as_deref()))
        .collect();
    assert_eq!(
        states,
        vec![("a", Some("VersionMismatch")), ("b", Some("Ready"))]
    );
    let fleet = &p.fleet_writes[0].status;
    assert_eq!((fleet.workers, fleet.updated_workers), (2, 0));
    assert_eq!(fleet.mismatched, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn what_was_written_is_not_written_again() {
    let rows = [row("w", "v1", t(0))];
    let workers = [existing("w", "w", true)];
    let first = run(&available(t(1)), &rows, &workers, &[], &Written::default());
    let mut written = Written::default();
    written
        .workers
        .insert("uid-w".into(), first.worker_writes[0].status.clone());
    let again = run(&available(t(2)), &rows, &workers, &[], &written);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        again
            .worker_conditions
            .get(&("Ready".to_string(), "True".to_string())),
        Some(&1)
    );
}

#[test]
fn an_invalid_fleet_selector_selects_nothing_and_stalls() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    let mut f = (*fleet("fleet", "v2")).clone();
    f.spec.selector = Some(LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Sometimes".into(),
            values: None,
        }]),
        match_labels: None,
    });
    let rows = [row("a", "v1", t(0))];
    let workers = [existing("a", "a", true)];
    let p = run(
        &available(t(1)),
        &rows,
        &workers,
        &[Arc::new(f)],
        &Written::default(),
    );
    assert_eq!(p.worker_writes[0].status.state.as_deref(), Some("Ready"));
    let fleet = &p.fleet_writes[0].status;
    assert_eq!(fleet.workers, 0);
    assert_eq!(fleet.state.as_deref(), Some("Stalled"));
}

#[test]
fn an_empty_selector_selects_every_worker_and_match_labels_a_subset() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let rows = [row("a", "v2", t(0)), row("b", "v2", t(0))];
    let mut b = (*existing("b", "b", false)).clone();
    b.metadata.labels = Some(Arc::new(BTreeMap::from([(
        "tier".to_string(),
        "gpu".to_string(),
    )])));
    let workers = [existing("a", "a", true), Arc::new(b)];

    let mut all = (*fleet("all", "v2")).clone();
    all.spec.selector = Some(LabelSelector::default());
    let p = run(
        &available(t(1)),
        &rows,
        &workers,
        &[Arc::new(all)],
        &Written::default(),
    );
    assert_eq!(p.fleet_writes[0].status.workers, 2);
    assert_eq!(p.fleet_writes[0].status.state.as_deref(), Some("Ready"));

    let mut gpu = (*fleet("gpu", "v3")).clone();
    gpu.spec.selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("tier".to_string(), "gpu".to_string())])),
        match_expressions: None,
    });
    let p = run(
        &available(t(1)),
        &rows,
        &workers,
        &[Arc::new(gpu)],
        &Written::default(),
    );
    let fleet = &p.fleet_writes[0].status;
    assert_eq!((fleet.workers, fleet.updated_workers), (1, 0));
    assert_eq!(fleet.mismatched, vec!["b".to_string()]);
    let states: Vec<(&str, Option<&str>)> = p
        .worker_writes
        .iter()
        .map(|w| (w.name.as_str(), w.status.state.as_deref()))
        .collect();
    assert_eq!(
        states,
        vec![("a", Some("Ready")), ("b", Some("VersionMismatch"))],
        "only the selected worker expects the fleet's version"
    );
}

// ---- heartbeat-only refreshes under a global budget ----

/// One cycle at DB time `at` with `allowance` refreshes.
fn cycle_at(
    at: DateTime<Utc>,
    rows: &[SnapshotRow],
    workers: &[Arc<CachedWorker>],
    written: &Written,
    allowance: usize,
) -> Plan {
    plan(
        &PlanInput {
            db: &available(at),
            rows,
            workers,
            fleets: &[],
            written,
            recovery_from: None,
            now: at,
            refresh_allowance: allowance,
            jobs: &JobsView::Absent,
        },
        &config(),
    )
}

/// Remembers every write of `p` as the executor does after success.
fn remember(written: &mut Written, p: &Plan) {
    for w in &p.worker_writes {
        written
            .workers
            .insert(w.uid.clone().unwrap(), w.status.clone());
    }
    for r in &p.refreshes {
        written
            .workers
            .insert(r.uid.clone().unwrap(), r.status.clone());
    }
}

fn fleet_of(n: usize) -> Vec<Arc<CachedWorker>> {
    (0..n)
        .map(|i| existing(&format!("w{i:05}"), &format!("w{i:05}"), true))
        .collect()
}

/// Workers whose stored heartbeat is `stored_at[i]`, all heartbeating at `now_hb`.
fn stored_fleet(
    stored_at: &[i64],
    now_hb: i64,
) -> (Vec<Arc<CachedWorker>>, Vec<SnapshotRow>, Written) {
    let workers = fleet_of(stored_at.len());
    let mut written = Written::default();
    for (w, at) in workers.iter().zip(stored_at) {
        let rows = [row(&w.spec.node_id, "v1", t(*at))];
        let p = cycle_at(
            t(*at),
            &rows,
            std::slice::from_ref(w),
            &Written::default(),
            0,
        );
        remember(&mut written, &p);
    }
    let rows = workers
        .iter()
        .map(|w| row(&w.spec.node_id, "v1", t(now_hb)))
        .collect();
    (workers, rows, written)
}

#[test]
fn heartbeat_only_changes_are_refreshes_not_transitions() {
    let (workers, rows, written) = stored_fleet(&[0, 0, 0], 100);
    let p = cycle_at(t(100), &rows, &workers, &written, usize::MAX);
    assert!(p.worker_writes.is_empty(), "{:?}", p.worker_writes);
    assert_eq!(p.refreshes.len(), 3);
    for r in &p.refreshes {
        // The merge patch carries heartbeatAt only: the rest must equal what is stored.
        let mut stored = written.workers[r.uid.as_deref().unwrap()].clone();
        assert_ne!(
            stored
                .heartbeat_at
                .map(|t| crate::timestamps::format_timestamp(&t))
                .as_deref(),
            Some(r.heartbeat_at.as_str())
        );
        stored.heartbeat_at = crate::timestamps::parse_rfc3339(&r.heartbeat_at);
        assert_eq!(stored, r.status);
    }
}

#[test]
fn refreshes_are_not_due_before_the_refresh_interval() {
    // --status-refresh is 60 s, but never more than half the 30 s heartbeat timeout: a
    // Ready worker's LAST HEARTBEAT must stay under the timeout STATUS is judged by.
    let (workers, rows, written) = stored_fleet(&[0, 0], 14);
    let p = cycle_at(t(14), &rows, &workers, &written, usize::MAX);
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.refresh_stats.due, 0);
    assert_eq!(p.refresh_stats.oldest_shown_age_secs, 14.0);
    let (workers, rows, written) = stored_fleet(&[0, 0], 15);
    let p = cycle_at(t(15), &rows, &workers, &written, usize::MAX);
    assert_eq!(p.refresh_stats.due, 2);
}

#[test]
fn the_budget_caps_refreshes_and_the_oldest_go_first() {
    // Stored heartbeats out of name order: w00002 is the oldest, then w00000.
    let (workers, rows, written) = stored_fleet(&[-300, 0, -400, -100, -200], 100);
    for allowance in 0..=6 {
        let p = cycle_at(t(100), &rows, &workers, &written, allowance);
        assert_eq!(p.refreshes.len(), allowance.min(5), "allowance {allowance}");
        assert_eq!(p.refresh_stats.due, 5);
        assert_eq!(p.refresh_stats.deferred, 5 - allowance.min(5));
        let order: Vec<&str> = p.refreshes.iter().map(|r| r.name.as_str()).collect();
        let oldest_first = ["w00002", "w00000", "w00004", "w00003", "w00001"];
        assert_eq!(order, oldest_first[..allowance.min(5)]);
        // LAST HEARTBEAT shown after the cycle: the oldest one not refreshed.
        let shown = [-400, -300, -200, -100, 0]
            .get(allowance)
            .map_or(0.0, |at| f64::from(100 - at));
        assert_eq!(p.refresh_stats.oldest_shown_age_secs, shown);
    }
}

#[test]
fn transitions_are_written_whatever_the_refresh_budget() {
    // Five workers due for a refresh; w00001 is stale, w00003 restarted, w00004 changed
    // version: all three are transitions, written with an allowance of zero.
    let (workers, mut rows, written) = stored_fleet(&[0, 0, 0, 0, 0], 100);
    rows[1].heartbeat_at = t(0);
    rows[3].registered_at = t(90);
    Arc::make_mut(&mut rows[4].info).version = Some("v2".into());
    let p = cycle_at(t(100), &rows, &workers, &written, 0);
    let written_now: Vec<(&str, Option<&str>)> = p
        .worker_writes
        .iter()
        .map(|w| (w.name.as_str(), w.status.state.as_deref()))
        .collect();
    assert_eq!(
        written_now,
        vec![
            ("w00001", Some("Stale")),
            ("w00003", Some("Ready")),
            ("w00004", Some("Ready"))
        ]
    );
    let reasons: Vec<&str> = p
        .worker_writes
        .iter()
        .flat_map(|w| w.events.iter().map(|e| e.reason))
        .collect();
    assert_eq!(
        reasons,
        vec!["WorkerStale", "WorkerRestarted", "VersionChanged"]
    );
    assert!(p.refreshes.is_empty());
    assert_eq!(p.refresh_stats.deferred, 2, "w00000 and w00002 wait");
}

#[test]
fn a_new_worker_and_a_condition_change_are_transitions() {
    // A user setting expectedVersion moves VersionMatched: visible, so written at once.
    let (workers, rows, written) = stored_fleet(&[0, 0], 100);
    let mut changed = (*workers[0]).clone();
    changed.spec.expected_version = Some("v9".into());
    changed.metadata.generation = Some(2);
    let workers = [Arc::new(changed), workers[1].clone()];
    let p = cycle_at(t(100), &rows, &workers, &written, 0);
    assert_eq!(p.worker_writes.len(), 1);
    assert_eq!(
        p.worker_writes[0].status.state.as_deref(),
        Some("VersionMismatch")
    );
    let mut rows = rows;
    rows.push(row("fresh", "v1", t(100)));
    let p = cycle_at(t(100), &rows, &workers, &written, 0);
    assert_eq!(p.creates.len(), 1, "discovery is never budgeted");
}

#[test]
fn the_refresh_interval_stretches_with_the_fleet() {
    let mut cfg = config();
    // The floor is half the default 30 s timeout (under --status-refresh's 60 s).
    for (n, budget, expect) in [
        (10, 20.0, 15.0),
        (300, 20.0, 15.0),
        (1_200, 20.0, 60.0),
        (10_000, 20.0, 500.0),
        (50_000, 20.0, 2_500.0),
        (10_000, 50.0, 200.0),
    ] {
        cfg.refresh_budget = budget;
        let workers = fleet_of(n);
        let rows: Vec<SnapshotRow> = workers
            .iter()
            .map(|w| row(&w.spec.node_id, "v1", t(0)))
            .collect();
        let p = plan(
            &PlanInput {
                db: &available(t(0)),
                rows: &rows,
                workers: &workers,
                fleets: &[],
                written: &Written::default(),
                recovery_from: None,
                now: t(0),
                refresh_allowance: 0,
                jobs: &JobsView::Absent,
            },
            &cfg,
        );
        assert_eq!(
            p.refresh_stats.interval_secs, expect,
            "{n} workers at {budget}/s"
        );
    }
}

#[test]
fn the_refresh_budget_is_a_token_bucket() {
    let s = std::time::Duration::from_secs_f64;
    let mut b = RefreshBudget::new(20.0, 2.0);
    assert_eq!(b.refill(s(0.0)), 20, "starts with one second of budget");
    b.spend(20);
    assert_eq!(b.refill(s(0.5)), 10);
    b.spend(10);
    assert_eq!(b.refill(s(10.0)), 40, "saves at most the burst");
    b.spend(100);
    assert_eq!(b.refill(s(0.0)), 0, "never negative");
    assert_eq!(b.refill(s(0.04)), 0, "fractions accumulate");
    assert_eq!(b.refill(s(0.01)), 1);
    let mut tiny = RefreshBudget::new(0.5, 2.0);
    assert_eq!(tiny.refill(s(0.0)), 0);
    assert_eq!(tiny.refill(s(2.0)), 1, "a burst of at least one write");
    let mut broken = RefreshBudget::new(f64::NAN, 2.0);
    assert_eq!(
        broken.refill(s(100.0)),
        0,
        "a NaN rate neither panics nor floods"
    );
}

/// The whole loop over simulated time: 2,000 workers heartbeating every second, the
/// budget at 20/s, one worker stopping. Every cycle stays within budget + transitions,
/// every worker is refreshed within one trip round the fleet, and the stopped worker is
/// written Stale in the first cycle past its timeout, although hundreds of refreshes
/// are queued at that moment.
#[test]
fn stale_is_detected_on_time_while_refreshes_are_queued() {
    const N: usize = 2_000;
    let workers = fleet_of(N);
    let mut written = Written::default();
    let mut budget = RefreshBudget::new(20.0, 2.0);
    let victim = "w00042";
    let stop_at = 200;
    let mut stale_at = None;
    let mut last_refresh: HashMap<String, i64> = HashMap::new();
    let mut max_gap = 0;
    let mut total = 0usize;
    for sec in 0..=400 {
        let rows: Vec<SnapshotRow> = workers
            .iter()
            .map(|w| {
                let hb = if w.spec.node_id == victim {
                    sec.min(stop_at)
                } else {
                    sec
                };
                row(&w.spec.node_id, "v1", t(hb))
            })
            .collect();
        let allowance = budget.refill(std::time::Duration::from_secs(1));
        // Cycles land a little after the heartbeat UPDATE (db_now = heartbeat + 0.5 s).
        let at = t(sec) + chrono::Duration::milliseconds(500);
        let p = cycle_at(at, &rows, &workers, &written, allowance);
        budget.spend(p.refreshes.len());
        total += p.refreshes.len();
        if sec > 0 {
            // At most the 2 s burst in one cycle, at most 20/s on average.
            assert!(
                p.refreshes.len() <= 40,
                "second {sec}: {}",
                p.refreshes.len()
            );
            assert!(
                total <= 20 * (sec as usize + 1) + 40,
                "second {sec}: {total}"
            );
            let transitions: Vec<&str> = p.worker_writes.iter().map(|w| w.name.as_str()).collect();
            assert!(
                transitions.is_empty() || transitions == [victim],
                "second {sec}: unexpected transitions {transitions:?}"
            );
        }
        for r in &p.refreshes {
            if let Some(prev) = last_refresh.insert(r.name.clone(), sec) {
                max_gap = max_gap.max(sec - prev);
            }
        }
        if stale_at.is_none()
            && p.worker_writes
                .iter()
                .any(|w| w.name == victim && w.status.state.as_deref() == Some("Stale"))
        {
            stale_at = Some(sec);
            assert!(
                p.refresh_stats.deferred > 400,
                "refreshes were queued: {}",
                p.refresh_stats.deferred
            );
        }
        if sec > 0 {
            // Never shows a LAST HEARTBEAT older than one trip (N / 20 s) plus a cycle.
            assert!(
                p.refresh_stats.oldest_shown_age_secs <= (N / 20) as f64 + 61.5,
                "second {sec}: {}",
                p.refresh_stats.oldest_shown_age_secs
            );
        }
        remember(&mut written, &p);
    }
    // Heartbeat stops at 200 s; the timeout is 30 s; cycles every second: first cycle
    // past 230 s is at 230.5 s on the DB clock, i.e. within timeout + 1.5 s.
    let detected = stale_at.expect("the victim went Stale");
    assert!(
        (detected - stop_at) as f64 + 0.5 <= 31.5,
        "Stale written {} s after the last heartbeat",
        detected - stop_at
    );
    assert!(
        max_gap > 0 && max_gap <= (N / 20) as i64 + 1,
        "max gap {max_gap}"
    );
}

#[test]
fn what_the_cache_shows_is_forgotten_and_not_written_again() {
    let rows = [row("a", "v1", t(0)), row("b", "v1", t(0))];
    let workers = [existing("a", "a", true), existing("b", "b", true)];
    let first = run(&available(t(1)), &rows, &workers, &[], &Written::default());
    let mut written = Written::default();
    remember(&mut written, &first);
    // The watch has shown a's status but not yet b's.
    let mut a = (*workers[0]).clone();
    a.status = Some(first.worker_writes[0].status.clone().into());
    let cached = [Arc::new(a), workers[1].clone()];
    let again = run(&available(t(2)), &rows, &cached, &[], &written);
    assert!(again.is_empty(), "{again:?}");
    written.forget_shown(&again, &[]);
    let kept: Vec<&String> = written.workers.keys().collect();
    assert_eq!(kept, vec!["uid-b"], "only the lagging one is remembered");
    // Gone from the cache: forgotten.
    let gone = run(&available(t(3)), &rows, &cached[..1], &[], &written);
    written.forget_shown(&gone, &[]);
    assert!(written.workers.is_empty());
}

/// A discovery's thousands of written statuses do not leave their room behind once
/// the watch shows them.
#[test]
fn written_statuses_give_back_their_room_once_shown() {
    let mut written = Written::default();
    for i in 0..3_000 {
        written
            .workers
            .insert(format!("uid-{i}"), AmpWorkerStatus::default());
    }
    let big = written.workers.capacity();
    written.forget_shown(&Plan::default(), &[]);
    assert!(written.workers.is_empty());
    assert!(
        written.workers.capacity() <= 2 * Written::ROOM && big >= 3_000,
        "{big} -> {}",
        written.workers.capacity()
    );
}

fn with_lock(mut r: SnapshotRow, lock: crate::metadata_db::LockState) -> SnapshotRow {
    r.lock = lock;
    r
}

#[test]
fn discovery_is_for_running_workers_so_a_retired_worker_stays_deleted() {
    use crate::metadata_db::LockState::{Free, Held};
    let rows = [
        with_lock(row("running", "v1", t(-1)), Held),
        // Stopped a second ago: its object was deleted by a person after a scale-down.
        with_lock(row("retired", "v1", t(-1)), Free),
    ];
    let p = run(&available(t(0)), &rows, &[], &[], &Written::default());
    let created: Vec<String> = p.creates.iter().map(|(w, _, _)| w.name_any()).collect();
    assert_eq!(created, ["running"]);
}

#[test]
fn stopped_workers_are_collected_after_gc_stopped_after_and_rows_are_kept() {
    use crate::metadata_db::LockState::{Free, Held};
    let objects = [
        existing("stopped-long", "stopped-long", true),
        existing("stopped-now", "stopped-now", true),
        existing("hung", "hung", true),
        existing("mine", "mine", false),
    ];
    let rows = [
        with_lock(row("stopped-long", "v1", t(-16 * 60)), Free),
        with_lock(row("stopped-now", "v1", t(-60)), Free),
        // Held without heartbeats: hung, not retired; Stale, kept.
        with_lock(row("hung", "v1", t(-16 * 60)), Held),
        // A user's own AmpWorker is never collected.
        with_lock(row("mine", "v1", t(-16 * 60)), Free),
    ];
    let p = run(&available(t(0)), &rows, &objects, &[], &Written::default());
    let deleted: Vec<(String, String)> = p
        .deletes
        .iter()
        .map(|d| (d.name.clone(), d.why.clone()))
        .collect();
    assert_eq!(
        deleted,
        [(
            "stopped-long".to_string(),
            "worker \"stopped-long\" stopped longer than --gc-stopped-after".to_string()
        )]
    );
}

// ---- the memo: cycles with remembered judgements plan exactly what fresh ones plan ----

/// The rows of a small fleet at DB time `s`: worker 2 stops heartbeating at 10 s,
/// worker 3's process stops at 20 s (lock free), worker 4 re-registers on v2 at 30 s.
fn story_rows(s: i64) -> Vec<SnapshotRow> {
    use crate::metadata_db::LockState::{Free, Held};
    (0..6)
        .map(|i| {
            let node = format!("w{i}");
            let hb = if i == 2 { t(s.min(10)) } else { t(s) };
            let mut r = with_lock(row(&node, "v1", hb), Held);
            if i == 3 && s >= 20 {
                r.lock = Free;
            }
            if i == 4 && s >= 30 {
                r.registered_at = t(30);
                Arc::make_mut(&mut r.info).version = Some("v2".into());
            }
            r
        })
        .collect()
}

/// The objects as the watch shows them once `written` reached the server.
fn watched(objects: &[Arc<CachedWorker>], written: &Written) -> Vec<Arc<CachedWorker>> {
    objects
        .iter()
        .map(
            |o| match written.workers.get(o.metadata.uid.as_deref().unwrap()) {
                Some(s) if !o.status.as_ref().is_some_and(|c| c.is(s)) => {
                    let mut o = (**o).clone();
                    o.status = Some(s.clone().into());
                    Arc::new(o)
                }
                _ => o.clone(),
            },
        )
        .collect()
}

#[test]
fn remembered_judgements_plan_exactly_what_fresh_ones_plan() {
    let mut objects: Vec<Arc<CachedWorker>> = (0..6)
        .map(|i| existing(&format!("w{i}"), &format!("w{i}"), true))
        .collect();
    let mut fleets = vec![fleet("f", "v1")];
    let mut written = Written::default();
    let mut memos = Judgements::default();
    let mut memo_hits = 0;
    for s in 0..90 {
        // The fleet moves to v2 at 50 s; the DB is down from 60 s to 62 s.
        if s == 50 {
            fleets = vec![fleet("f", "v2")];
        }
        let down = (60..63).contains(&s);
        let db = if down {
            DbView::Unavailable { cause: None }
        } else {
            available(t(s))
        };
        let rows = if down { Vec::new() } else { story_rows(s) };
        let input = PlanInput {
            db: &db,
            rows: &rows,
            workers: &objects,
            fleets: &fleets,
            written: &written,
            recovery_from: (63..70).contains(&s).then(|| t(59)),
            now: t(s),
            refresh_allowance: 1,
            jobs: &JobsView::Absent,
        };
        let fresh = plan(&input, &config());
        let before = memos.len();
        let remembered = plan_with(&input, &config(), &mut memos);
        memo_hits += usize::from(before > 0);
        assert_eq!(format!("{remembered:?}"), format!("{fresh:?}"), "at {s} s");
        written.forget_shown(&fresh, &fleets);
        remember(&mut written, &fresh);
        // The watch catches up every third cycle; in between, `written` is what counts.
        if s % 3 == 0 {
            objects = watched(&objects, &written);
        }
    }
    assert!(memo_hits > 60, "the memo was used ({memo_hits} cycles)");
    // And it held something worth holding: every worker but the ones just written.
    assert!(memos.len() >= 4, "{}", memos.len());
}

// ---- the steps, one at a time ----

fn input<'a>(
    db: &'a DbView,
    rows: &'a [SnapshotRow],
    workers: &'a [Arc<CachedWorker>],
    fleets: &'a [Arc<AmpWorkerFleet>],
    written: &'a Written,
) -> PlanInput<'a> {
    PlanInput {
        db,
        rows,
        workers,
        fleets,
        written,
        recovery_from: None,
        now: t(0),
        refresh_allowance: usize::MAX,
        jobs: &JobsView::Absent,
    }
}

#[test]
fn step_discovery_creates_for_unclaimed_running_rows_by_node_id_and_never_while_down() {
    use crate::metadata_db::LockState::{Free, Held};
    let rows = [
        with_lock(row("b", "v1", t(0)), Held),
        with_lock(row("a", "v1", t(0)), Held),
        with_lock(row("claimed", "v1", t(0)), Held),
        with_lock(row("stopped", "v1", t(0)), Free),
        with_lock(row("gone", "v1", t(-25 * 3600)), Held),
    ];
    let workers = [existing("mine", "claimed", false)];
    let (written, config) = (Written::default(), config());
    let db = available(t(0));
    let i = input(&db, &rows, &workers, &[], &written);
    let found: Vec<String> = discovery::discover(&Cycle::new(&i, &config, &mut Default::default()))
        .iter()
        .map(|w| w.spec.node_id.clone())
        .collect();
    assert_eq!(found, ["a", "b"]);
    let down = input(
        &DbView::Unavailable { cause: None },
        &rows,
        &workers,
        &[],
        &written,
    );
    assert!(discovery::discover(&Cycle::new(&down, &config, &mut Default::default())).is_empty());
}

#[test]
fn step_discovery_plans_a_chunk_a_cycle_smallest_node_ids_first_then_the_rest() {
    use crate::metadata_db::LockState::Held;
    let n = discovery::DISCOVERY_CHUNK + 5;
    let id = |i: usize| format!("w-{i:05}");
    // Newest first, so the chunk is chosen, not merely the rows' order.
    let rows: Vec<SnapshotRow> = (0..n)
        .rev()
        .map(|i| with_lock(row(&id(i), "v1", t(0)), Held))
        .collect();
    let (written, config) = (Written::default(), config());
    let db = available(t(0));
    let discover = |workers: &[Arc<CachedWorker>]| -> Vec<String> {
        let i = input(&db, &rows, workers, &[], &written);
        discovery::discover(&Cycle::new(&i, &config, &mut Default::default()))
            .iter()
            .map(|w| w.spec.node_id.clone())
            .collect()
    };
    let first = discover(&[]);
    let chunk: Vec<String> = (0..discovery::DISCOVERY_CHUNK).map(id).collect();
    assert_eq!(first, chunk);
    // The whole plan creates that chunk, each with its first status.
    let p = run(&db, &rows, &[], &[], &written);
    let created: Vec<&str> = p
        .creates
        .iter()
        .map(|(w, _, _)| w.spec.node_id.as_str())
        .collect();
    assert_eq!(created, chunk);
    // Once they exist (shown by the watch or still pending), the next cycle creates the rest.
    let chunk_objects: Vec<Arc<CachedWorker>> = first
        .iter()
        .map(|node| existing(&object_name(node), node, true))
        .collect();
    let rest: Vec<String> = (discovery::DISCOVERY_CHUNK..n).map(id).collect();
    assert_eq!(discover(&chunk_objects), rest);
    let all: Vec<Arc<CachedWorker>> = (0..n)
        .map(|i| existing(&object_name(&id(i)), &id(i), true))
        .collect();
    assert!(discover(&all).is_empty());
}

#[test]
fn step_gc_collects_only_discovered_objects_and_says_which_rule() {
    use crate::metadata_db::LockState::{Free, Held};
    let workers = [
        existing("dup", "shared", true),
        existing("users", "shared", false),
        existing("gone", "gone", true),
        existing("stopped", "stopped", true),
        existing("fine", "fine", true),
    ];
    let rows = [
        with_lock(row("gone", "v1", t(-25 * 3600)), Held),
        with_lock(row("stopped", "v1", t(-16 * 60)), Free),
        with_lock(row("fine", "v1", t(0)), Held),
    ];
    let (written, config, db) = (Written::default(), config(), available(t(0)));
    let i = input(&db, &rows, &workers, &[], &written);
    let c = Cycle::new(&i, &config, &mut Default::default());
    let why: Vec<Option<String>> = workers
        .iter()
        .map(|w| gc::collect(&c, w, c.node(&w.spec.node_id), None).map(|d| d.why))
        .collect();
    assert_eq!(
        why,
        [
            Some("an AmpWorker created by a user already has nodeId \"shared\"".to_string()),
            None,
            Some("worker \"gone\" gone longer than --gc-after".to_string()),
            Some("worker \"stopped\" stopped longer than --gc-stopped-after".to_string()),
            None,
        ]
    );
}

#[test]
fn step_refresh_scheduling_writes_the_oldest_within_the_allowance() {
    let workers = fleet_of(4);
    let stored: Vec<AmpWorkerStatus> = [30, 10, 20, 40]
        .iter()
        .map(|s| AmpWorkerStatus {
            heartbeat_at: Some(t(*s)),
            ..Default::default()
        })
        .collect();
    let mut pending = refresh::Pending::new(2);
    for (w, st) in workers.iter().zip(&stored) {
        pending.push_due(refresh::Due {
            old: st.heartbeat_at,
            worker: w,
            status: refresh::DueStatus::Stored(stored::Stored::Written(st), t(100)),
            fill: false,
        });
    }
    pending.heartbeating = 4000;
    let (refreshes, stats) = refresh::schedule(pending, Some(t(100)), &config());
    let names: Vec<&str> = refreshes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["w00001", "w00002"]);
    assert!(
        refreshes
            .iter()
            .all(|r| r.status.heartbeat_at == Some(t(100)))
    );
    assert_eq!((stats.due, stats.deferred), (4, 2));
    // The oldest heartbeat still shown is the deferred one from 30 s.
    assert_eq!(stats.oldest_shown_age_secs, 70.0);
    // 4,000 heartbeating workers at 20/s: 200 s round the fleet.
    assert_eq!(stats.interval_secs, 200.0);
}

/// The bounded heap of due refreshes writes what sorting every due one and cutting at
/// the allowance writes, in the same order, for any arrival order (equal heartbeats
/// ordered by name), and defers and shows the rest the same way.
#[test]
fn step_refresh_scheduling_keeps_the_oldest_whatever_the_arrival_order() {
    let workers = fleet_of(60);
    // Many equal heartbeats (workers discovered in the same second), one never shown.
    let stored: Vec<AmpWorkerStatus> = (0..60)
        .map(|i| AmpWorkerStatus {
            heartbeat_at: (i != 17).then(|| t(((i * 37) % 7) as i64)),
            ..Default::default()
        })
        .collect();
    let order: Vec<usize> = (0..60).map(|i| (i * 43) % 60).collect();
    for allowance in [0, 1, 5, 59, 60, 100] {
        let mut pending = refresh::Pending::new(allowance);
        for &i in &order {
            pending.push_due(refresh::Due {
                old: stored[i].heartbeat_at,
                worker: &workers[i],
                status: refresh::DueStatus::Stored(stored::Stored::Written(&stored[i]), t(100)),
                fill: false,
            });
        }
        let (refreshes, stats) = refresh::schedule(pending, Some(t(100)), &config());
        let mut all: Vec<(Option<DateTime<Utc>>, String)> = (0..60)
            .map(|i| (stored[i].heartbeat_at, workers[i].name_any()))
            .collect();
        all.sort();
        let expected: Vec<&str> = all
            .iter()
            .take(allowance)
            .map(|(_, n)| n.as_str())
            .collect();
        let names: Vec<&str> = refreshes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, expected, "allowance {allowance}");
        let deferred = 60 - allowance.min(60);
        assert_eq!((stats.due, stats.deferred), (60, deferred));
        let oldest_deferred = all.iter().skip(allowance).filter_map(|(hb, _)| *hb).min();
        let age = oldest_deferred.map_or(0.0, |hb| (t(100) - hb).num_seconds() as f64);
        assert_eq!(stats.oldest_shown_age_secs, age, "allowance {allowance}");
    }
}

#[test]
fn step_fleet_planning_picks_the_oldest_matching_fleet_and_writes_only_changes() {
    let mut older = (*fleet("older", "v1")).clone();
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
    ));
    let mut newer = (*fleet("newer", "v2")).clone();
    newer.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(2).unwrap(),
    ));
    let fleets_in = [Arc::new(newer), Arc::new(older)];
    let sels = fleets::ordered(&fleets_in);
    assert_eq!(fleets::fleet_of(&sels, None), Some(0));
    assert_eq!(sels[0].fleet.name_any(), "older");
    let (written, db) = (Written::default(), available(t(0)));
    let i = input(&db, &[], &[], &fleets_in, &written);
    let mut p = Plan::default();
    fleets::plan_fleets(&i, &sels, fleets::tallies(&sels, None), &mut p);
    assert_eq!(p.fleet_writes.len(), 2, "no status yet: both written");
    assert_eq!(p.fleet_conditions.len(), 6);
    // Once stored, the same tally writes nothing.
    let mut stored_fleets = Vec::new();
    for (f, w) in fleets_in.iter().zip(p.fleet_writes.iter().rev()) {
        let mut f = (**f).clone();
        f.status = Some(w.status.clone());
        stored_fleets.push(Arc::new(f));
    }
    let sels = fleets::ordered(&stored_fleets);
    let i = input(&db, &[], &[], &stored_fleets, &written);
    let mut again = Plan::default();
    fleets::plan_fleets(&i, &sels, fleets::tallies(&sels, None), &mut again);
    assert!(again.fleet_writes.is_empty(), "{:?}", again.fleet_writes);
}

/// A fleet's heartbeatTimeoutSeconds judges every worker it selects that sets none of its
/// own (Amp's scheduler gives up after 5 s); the operator's default judges the rest, and
/// a change of the fleet's timeout is judged at once, not from a remembered verdict.
#[test]
fn the_fleets_heartbeat_timeout_judges_its_workers_and_a_workers_own_wins() {
    let rows = [row("a", "v1", t(0)), row("b", "v1", t(0))];
    let mut own = (*existing("b", "b", false)).clone();
    own.spec.heartbeat_timeout_seconds = Some(60);
    let workers = [existing("a", "a", false), Arc::new(own)];
    let state = |p: &Plan, name: &str| {
        p.worker_writes
            .iter()
            .find(|w| w.name == name)
            .and_then(|w| w.status.state.clone())
    };
    let mut quick = (*fleet("amp", "v1")).clone();
    quick.spec.heartbeat_timeout_seconds = Some(5);
    let quick = [Arc::new(quick)];
    let p = run(
        &available(t(6)),
        &rows,
        &workers,
        &quick,
        &Written::default(),
    );
    assert_eq!(state(&p, "a").as_deref(), Some("Stale"));
    assert_eq!(state(&p, "b").as_deref(), Some("Ready"));
    // Without the fleet's timeout, the default (30 s) judges a.
    let p = run(
        &available(t(6)),
        &rows,
        &workers,
        &[fleet("amp", "v1")],
        &Written::default(),
    );
    assert_eq!(state(&p, "a").as_deref(), Some("Ready"));
    // The same objects judged with memos: the fleet's timeout is part of the memo.
    let mut memos = Judgements::default();
    let written = Written::default();
    let lenient = [fleet("amp", "v1")];
    let stored: Vec<Arc<CachedWorker>> = workers
        .iter()
        .map(|w| {
            let mut w = (**w).clone();
            w.status = p
                .worker_writes
                .iter()
                .find(|x| x.name == w.name_any())
                .map(|x| x.status.clone().into());
            Arc::new(w)
        })
        .collect();
    let at = |fleets: &[Arc<AmpWorkerFleet>], memos: &mut Judgements| {
        plan_with(
            &PlanInput {
                db: &available(t(6)),
                rows: &rows,
                workers: &stored,
                fleets,
                written: &written,
                recovery_from: None,
                now: t(0),
                refresh_allowance: usize::MAX,
                jobs: &JobsView::Absent,
            },
            &config(),
            memos,
        )
    };
    assert!(at(&lenient, &mut memos).worker_writes.is_empty());
    let p = at(&quick, &mut memos);
    assert_eq!(state(&p, "a").as_deref(), Some("Stale"));
}

// ---- Amp's jobs ----

fn jobs_view(nodes: Vec<crate::metadata_db::NodeJobs>) -> JobsView {
    use crate::operator::status::jobs::JobsIndex;
    JobsView::Known(Arc::new(JobsIndex::new(crate::metadata_db::JobsSnapshot {
        db_now: t(0),
        schema: crate::metadata_db::JobSchema::Nightly,
        nodes,
        unknown_statuses: vec![],
    })))
}

fn jobs_of(
    node: &str,
    registered: bool,
    running: u64,
    oldest: Option<(i64, i64)>,
) -> crate::metadata_db::NodeJobs {
    crate::metadata_db::NodeJobs {
        node_id: node.into(),
        registered,
        running,
        scheduled: u64::from(oldest.is_some()),
        oldest_scheduled: oldest.map(|(id, since)| crate::metadata_db::ScheduledJob {
            id,
            since: t(since),
        }),
        ..Default::default()
    }
}

fn condition_of(s: &AmpWorkerStatus, type_: &str) -> Option<(String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[test]
fn jobs_reach_worker_and_fleet_statuses_and_the_stranded_total() {
    use crate::metadata_db::LockState::{Free, Held};
    let rows = [
        with_lock(row("busy", "v1", t(0)), Held),
        // Stopped 101 s ago: past the fleet's retirement delay, so no longer a member.
        with_lock(row("dead", "v1", t(-100)), Free),
        with_lock(row("retired", "v1", t(0)), Free),
        with_lock(row("new", "v1", t(0)), Held),
    ];
    let workers = [
        existing("busy", "busy", true),
        existing("dead", "dead", true),
    ];
    let mut retiring = (*fleet("f", "v1")).clone();
    retiring.spec.retire_stopped_after_seconds = Some(60);
    let fleets = [Arc::new(retiring)];
    let view = jobs_view(vec![
        jobs_of("busy", true, 2, None),
        jobs_of("dead", true, 3, None),
        jobs_of("ghost", false, 1, None),
        // A stopped worker discovery never made an AmpWorker for.
        jobs_of("retired", true, 2, None),
        // A running worker whose AmpWorker is being created counts once it exists.
        jobs_of("new", true, 5, None),
    ]);
    let written = Written::default();
    let db = available(t(1));
    let mut i = input(&db, &rows, &workers, &fleets, &written);
    i.jobs = &view;
    let p = plan(&i, &config());
    let status = |name: &str| {
        p.worker_writes
            .iter()
            .find(|w| w.name == name)
            .map(|w| w.status.clone())
            .unwrap()
    };
    assert_eq!(status("busy").jobs.map(|j| j.active), Some(2));
    assert_eq!(
        condition_of(&status("dead"), "JobsStranded"),
        Some(("True".into(), "JobsStranded".into()))
    );
    assert_eq!(p.jobs_stranded, Some(6), "dead's 3, ghost's 1, retired's 2");
    let fleet_status = &p.fleet_writes[0].status;
    let jobs = fleet_status.jobs.clone().unwrap();
    assert_eq!(
        (
            jobs.active,
            jobs.running,
            jobs.stranded,
            jobs.unregistered_assignees
        ),
        (10, 10, 6, 1)
    );
    assert_eq!(jobs.stranded_workers, ["dead", "ghost", "retired"]);
    assert!(
        p.fleet_conditions
            .contains(&("f".into(), "JobsStranded".into(), "True".into()))
    );
    // Not part of the rollout's Ready: the fleet's members (busy) are Ready.
    assert_eq!(fleet_status.retired_workers, 1);
    assert_eq!(
        fleet_status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.as_str()),
        Some("True")
    );

    // Without job tables: nothing about jobs anywhere.
    let i = input(&db, &rows, &workers, &fleets, &written);
    let p = plan(&i, &config());
    assert_eq!(p.jobs_stranded, None);
    assert!(p.worker_writes.iter().all(|w| w.status.jobs.is_none()));
    assert_eq!(p.fleet_writes[0].status.jobs, None);
}

#[test]
fn remembered_judgements_follow_the_jobs_read() {
    let mut objects = vec![existing("w", "w", true)];
    let mut written = Written::default();
    let mut memos = Judgements::default();
    let mut not_picked_up_at = None;
    // One jobs read serves many cycles (the operator reads every 10 s): the same `Arc`,
    // which a memo may take as unchanged unless a job waits for pickup.
    let waiting = jobs_view(vec![jobs_of("w", true, 1, Some((7, 46)))]);
    let idle = jobs_view(vec![jobs_of("w", true, 1, None)]);
    for s in 0..200 {
        let rows = [row("w", "v1", t(s))];
        // Job 7 is scheduled at 46 s and never picked up; it is gone at 180 s. (It
        // turns late between two refreshes of the status, while the memo stands.)
        let view = if (10..180).contains(&s) {
            &waiting
        } else {
            &idle
        };
        let db = available(t(s));
        let mut i = input(&db, &rows, &objects, &[], &written);
        i.now = t(s);
        i.jobs = view;
        let fresh = plan(&i, &config());
        let remembered = plan_with(&i, &config(), &mut memos);
        assert_eq!(format!("{remembered:?}"), format!("{fresh:?}"), "at {s} s");
        for w in &fresh.worker_writes {
            if condition_of(&w.status, "AcceptingJobs").is_some_and(|(st, _)| st == "False")
                && not_picked_up_at.is_none()
            {
                not_picked_up_at = Some(s);
                assert_eq!(w.status.state.as_deref(), Some("NotAcceptingJobs"));
                assert!(w.events.iter().any(|e| e.reason == "JobNotPickedUp"));
            }
        }
        written.forget_shown(&fresh, &[]);
        remember(&mut written, &fresh);
        objects = watched(&objects, &written);
    }
    // Scheduled at 46 s, 120 s timeout: late from 167 s on (the DB clock).
    assert_eq!(not_picked_up_at, Some(167));
    let late = jobs_view(vec![jobs_of("w", true, 1, Some((7, 10)))]);
    let db = available(t(140));
    let rows = [row("w", "v1", t(140))];
    let p = plan(
        &PlanInput {
            jobs: &late,
            ..input(&db, &rows, &objects, &[], &written)
        },
        &config(),
    );
    assert_eq!(p.workers_not_accepting_jobs, 1);
    let last = objects[0].status.as_ref().unwrap().whole();
    assert_eq!(
        condition_of(&last, "AcceptingJobs"),
        Some(("True".into(), "JobsPickedUp".into()))
    );
    assert_eq!(last.state.as_deref(), Some("Ready"));
}

/// The label is remembered per object, not per place: a new version of an object, or
/// another object at the same place, is read again.
#[test]
fn discovered_flags_follow_the_objects_not_their_places() {
    let a = existing("a", "a", true);
    let b = existing("b", "b", false);
    let mut flags = object_facts::ObjectFacts::default();
    let read = |f: &object_facts::ObjectFacts| f.discovered().collect::<Vec<_>>();
    flags.follow(&[a.clone(), b.clone()]);
    assert_eq!(read(&flags), [true, false]);
    // A user's object taken over by a new version that carries the label, and the
    // objects in another order.
    let b_labelled = existing("b", "b", true);
    flags.follow(&[b_labelled, a.clone()]);
    assert_eq!(read(&flags), [true, true]);
    flags.follow(std::slice::from_ref(&b));
    assert_eq!(read(&flags), [false]);
    flags.follow(&[b, a]);
    assert_eq!(read(&flags), [false, true]);
}

/// A Pod's place in an index is remembered per object and per index: another index
/// (the Pods changed) or another object at the same place is looked up again.
#[test]
fn pod_positions_follow_the_index_and_the_object() {
    use crate::operator::pods::{PodIndex, WorkerPod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let pod = |name: &str| {
        let mut p = k8s_openapi::api::core::v1::Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("amp".into());
        Arc::new(WorkerPod::from(p))
    };
    let all = kube::core::Selector::try_from(LabelSelector::default()).unwrap();
    let index = |pods: &[Arc<WorkerPod>]| Arc::new(PodIndex::build(&all, "amp", pods));
    let first = index(&[pod("a"), pod("b")]);
    let (a, b) = (existing("a", "a", true), existing("b", "b", true));
    let mut facts = object_facts::ObjectFacts::default();
    facts.follow(&[a.clone(), b.clone()]);
    assert_eq!(facts.pod_position(1, Some(&first)), Some(1));
    assert_eq!(facts.pod_position(1, Some(&first)), Some(1));
    // The Pods changed: b's Pod is first in the new index, a has none.
    let second = index(&[pod("b")]);
    assert_eq!(facts.pod_position(1, Some(&second)), Some(0));
    assert_eq!(facts.pod_position(0, Some(&second)), None);
    // Another object at place 1.
    facts.follow(&[a, existing("c", "a", true)]);
    assert_eq!(facts.pod_position(1, Some(&first)), Some(0));
    assert_eq!(facts.pod_position(2, Some(&first)), None, "no object there");
    // The fleet stopped selecting Pods: no index is held any more.
    assert_eq!(facts.holding_an_index(), 2);
    assert_eq!(facts.pod_position(0, None), None);
    assert_eq!(facts.pod_position(1, None), None);
    assert_eq!(facts.holding_an_index(), 0);
}
