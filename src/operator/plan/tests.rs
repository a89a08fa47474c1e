use super::*;
use crate::metadata_db::WorkerInfo;
use crate::operator::crd::AmpWorkerFleetSpec;
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn row(node: &str, version: &str, heartbeat: DateTime<Utc>) -> WorkerRow {
    WorkerRow {
        node_id: node.into(),
        info: WorkerInfo {
            version: Some(version.into()),
            ..Default::default()
        },
        created_at: t(-1000),
        registered_at: t(-1000),
        heartbeat_at: heartbeat,
    }
}

fn existing(name: &str, node: &str, discovered: bool) -> Arc<AmpWorker> {
    let mut w = if discovered {
        discovered_worker(node)
    } else {
        AmpWorker::new(
            name,
            AmpWorkerSpec {
                node_id: node.into(),
                expected_version: None,
                heartbeat_timeout_seconds: None,
            },
        )
    };
    w.metadata.name = Some(name.into());
    w.metadata.uid = Some(format!("uid-{name}"));
    w.metadata.generation = Some(1);
    Arc::new(w)
}

fn fleet(name: &str, version: &str) -> Arc<AmpWorkerFleet> {
    let mut f = AmpWorkerFleet::new(
        name,
        AmpWorkerFleetSpec {
            version: version.into(),
            selector: None,
            min_ready: None,
            progress_deadline_seconds: None,
        },
    );
    f.metadata.uid = Some(format!("uid-{name}"));
    f.metadata.generation = Some(1);
    Arc::new(f)
}

fn config() -> PlanConfig {
    PlanConfig {
        status_refresh: chrono::Duration::seconds(60),
        gc_after: Some(chrono::Duration::hours(24)),
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
    rows: &[WorkerRow],
    workers: &[Arc<AmpWorker>],
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
        .map(|(w, _)| (w.name_any(), w.spec.node_id.clone()))
        .collect();
    assert_eq!(
        created,
        vec![
            (object_name("Worker_2"), "Worker_2".to_string()),
            ("worker-1".to_string(), "worker-1".to_string()),
        ]
    );
    let (w, status) = &p.creates[0];
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
        },
        &cfg,
    );
    assert!(p.deletes.is_empty());
    let p = run(&DbView::Unavailable, &[], &workers, &[], &written);
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
    b.metadata.labels = Some(BTreeMap::from([("tier".to_string(), "gpu".to_string())]));
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
