//! An upgrade that adds status fields: every stored status lacks them, and the first
//! cycles write them within the refresh budget (oldest shown heartbeat first), not all
//! at once; a real transition in the same cycles is still written at once.

use super::*;
use crate::metadata_db::{LockState, Placement, WorkerInfo};
use crate::operator::status::{WorkerInputs, desired_status};
use chrono::TimeZone;

const BUDGET: f64 = 20.0;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn config() -> PlanConfig {
    PlanConfig {
        status_refresh: chrono::Duration::seconds(60),
        refresh_budget: BUDGET,
        gc_after: Some(chrono::Duration::hours(24)),
        gc_stopped_after: Some(chrono::Duration::minutes(15)),
        heartbeat_timeout_secs: 30,
    }
}

fn name(i: usize) -> String {
    format!("w{i:05}")
}

/// Worker `i`'s row at heartbeat `hb`; it reports where it runs. `stuck` workers'
/// heartbeats stopped at 0 s.
fn row(i: usize, hb: i64, stuck: bool) -> SnapshotRow {
    SnapshotRow {
        node_id: name(i),
        info: Arc::new(WorkerInfo {
            version: Some("v1".into()),
            placement: Some(Placement {
                pod: Some(format!("pod-{i}")),
                node: Some("node-1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        created_at: t(-10_000),
        registered_at: t(-10_000),
        heartbeat_at: t(if stuck { hb.min(0) } else { hb }),
        lock: LockState::Held,
    }
}

/// `n` Ready workers as the previous operator left them: heartbeats shown from up to
/// 500 s ago (its refreshes went round the fleet), no `placement.source`, and every
/// tenth without a placement at all.
fn upgraded_fleet(n: usize) -> Vec<Arc<CachedWorker>> {
    (0..n)
        .map(|i| {
            let shown = -(((i * 7919) % 500) as i64);
            let mut w = discovered_worker(&name(i));
            w.metadata.uid = Some(format!("uid-{i}"));
            w.metadata.generation = Some(1);
            let mut status = desired_status(&WorkerInputs {
                row: Some(&row(i, shown, false)),
                db: &available(t(shown)),
                spec: &w.spec,
                fleet_version: None,
                timeout: 30,
                previous: None,
                generation: Some(1),
                now: t(shown),
            });
            let placement = status.placement.as_mut().expect("reported");
            placement.source = None;
            if i % 10 == 0 {
                status.placement = None;
            }
            w.status = Some(status);
            Arc::new(w.into())
        })
        .collect()
}

fn available(now: DateTime<Utc>) -> DbView {
    DbView::Available {
        db_now: now,
        recovered_at: None,
    }
}

fn filled(w: &CachedWorker) -> bool {
    w.status
        .as_ref()
        .and_then(|s| s.placement())
        .is_some_and(|p| p.source.is_some())
}

/// What one cycle wrote.
#[derive(Debug, Default)]
struct Writes {
    transitions: Vec<String>,
    fills: usize,
    refreshes: usize,
}

impl Writes {
    fn total(&self) -> usize {
        self.transitions.len() + self.fills + self.refreshes
    }
}

/// The objects as the watch shows them once the plan's writes landed.
fn land(objects: &mut [Arc<CachedWorker>], p: &Plan) -> Writes {
    let mut writes = Writes::default();
    let mut put = |name: &str, status: &AmpWorkerStatus| {
        let i: usize = name[1..].parse().expect("w<number>");
        let mut o = (*objects[i]).clone();
        o.status = Some(status.clone().into());
        objects[i] = Arc::new(o);
    };
    for w in &p.worker_writes {
        put(&w.name, &w.status);
        writes.transitions.push(w.name.clone());
    }
    for r in &p.refreshes {
        put(&r.name, &r.status);
        if r.fill {
            writes.fills += 1;
        } else {
            writes.refreshes += 1;
        }
    }
    writes
}

/// A cycle every `every` seconds from the upgrade on, `cycles` of them: the writes of
/// each, and the second by which every worker had its fill.
fn upgrade(
    n: usize,
    every: i64,
    cycles: i64,
    stuck: &[usize],
    mut check: impl FnMut(i64, &PlanInput, &Plan),
) -> (Vec<Writes>, Option<i64>) {
    let mut objects = upgraded_fleet(n);
    // As the controller's: one cycle's budget at first, two seconds' saved up at most
    // (or one cycle's, for cycles longer than that).
    let mut budget = budget::RefreshBudget::new(BUDGET, every.max(2) as f64);
    let mut memos = Judgements::default();
    let written = Written::default();
    let mut writes = Vec::new();
    let mut all_filled = None;
    for sec in (1..=cycles).map(|c| c * every) {
        let rows: Vec<SnapshotRow> = (0..n).map(|i| row(i, sec, stuck.contains(&i))).collect();
        let db = available(t(sec));
        let input = PlanInput {
            db: &db,
            rows: &rows,
            workers: &objects,
            fleets: &[],
            written: &written,
            recovery_from: None,
            now: t(sec),
            refresh_allowance: budget.refill(std::time::Duration::from_secs(every as u64)),
            jobs: &JobsView::Absent,
        };
        let p = plan_with(&input, &config(), &mut memos);
        check(sec, &input, &p);
        budget.spend(p.refreshes.len());
        writes.push(land(&mut objects, &p));
        if all_filled.is_none() && objects.iter().all(|o| filled(o)) {
            all_filled = Some(sec);
        }
    }
    (writes, all_filled)
}

/// The figure of docs/benchmarks.md: 10,000 workers upgraded; before fills were
/// budgeted, the first cycle wrote all 10,000 statuses.
#[test]
fn an_upgrade_of_10000_workers_writes_within_the_refresh_budget() {
    const N: usize = 10_000;
    let budget = BUDGET as usize;
    // Cycles a second apart, as the operator runs: the bucket's two seconds first (it
    // starts with one and earns one), then a second's budget each.
    let (first, _) = upgrade(N, 1, 3, &[], |_, _, _| {});
    eprintln!(
        "upgrade of {N} workers, budget {BUDGET}/s: writes in the first 1 s cycles: {:?}",
        first.iter().map(Writes::total).collect::<Vec<_>>()
    );
    let counts: Vec<(usize, usize, usize)> = first
        .iter()
        .map(|w| (w.transitions.len(), w.fills, w.refreshes))
        .collect();
    assert_eq!(
        counts,
        [(0, 2 * budget, 0), (0, budget, 0), (0, budget, 0)],
        "(transitions, fills, refreshes)"
    );
}

/// Every worker has its fill within one trip round the fleet at the budget (cycles 10 s
/// apart: the same budget a second, fewer plans to run), and two workers whose
/// heartbeats stop go Stale at once whatever fills wait.
#[test]
fn every_worker_is_filled_within_one_trip_and_stale_is_written_at_once() {
    const N: usize = 2_000;
    let budget = BUDGET as usize;
    let stuck = [17, 1234];
    let trip = (N / budget) as i64;
    let (cycles, all_filled) = upgrade(N, 10, trip / 10 + 2, &stuck, |_, _, _| {});
    eprintln!("upgrade of {N} workers, budget {BUDGET}/s: all filled at {all_filled:?} s");
    for (c, w) in (1..).zip(&cycles) {
        assert!(w.fills + w.refreshes <= 10 * budget, "cycle {c}: {w:?}");
    }
    assert_eq!(cycles[0].fills, 10 * budget, "{:?}", cycles[0]);
    // The first cycle past the 30 s timeout (at 40 s).
    let transitions: Vec<(usize, &String)> = (1..)
        .zip(&cycles)
        .flat_map(|(c, w)| w.transitions.iter().map(move |n| (c, n)))
        .collect();
    assert_eq!(transitions, [(4, &name(17)), (4, &name(1234))]);
    let done = all_filled.expect("every status filled");
    assert!(done <= trip, "all filled at {done} s, one trip is {trip} s");
}

/// Fills with the judgement memo, cycle by cycle, plan exactly what fresh judgements do.
#[test]
fn remembered_judgements_plan_fills_exactly_as_fresh_ones() {
    const N: usize = 300;
    let mut compared = 0;
    let (_, all_filled) = upgrade(N, 1, 40, &[5], |sec, input, remembered| {
        let fresh = plan(input, &config());
        assert_eq!(
            format!("{remembered:?}"),
            format!("{fresh:?}"),
            "at {sec} s"
        );
        compared += 1;
    });
    assert_eq!(compared, 40);
    let done = all_filled.expect("every status filled");
    assert!(
        done <= (N as f64 / BUDGET) as i64 + 1,
        "all filled at {done} s"
    );
}
