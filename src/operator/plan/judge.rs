//! Per-worker judgement: what each AmpWorker should show, and whether that is a
//! transition (written now), a due refresh (written when the budget allows) or nothing.
//!
//! The cost follows change, not the fleet: a worker whose object, row (but for a fresh
//! heartbeat), fleet version and health verdict are the ones of its last judgement, when
//! its status needed no transition, shows what it shows with a newer `heartbeatAt`. That
//! is a comparison; the status is built only when something moved (or a refresh is
//! written). [`Judgements`] remembers the last judgement of each worker.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use compact_str::CompactString;

use super::super::cache::CachedWorker;
use super::super::crd::{AmpWorker, AmpWorkerStatus};
use super::super::fleet_status::Member;
use super::super::status::jobs::{
    JobFacts, JobsIndex, JobsMemo, JobsView, WorkerJobsInput, apply_worker_jobs, job_events,
    worker_jobs_input,
};
use super::super::status::{
    ConditionStatus, DbView, ExpectedFrom, Health, WorkerInputs, WriteNeed, desired_status,
    info_cut_events, judge_health, transition_events, write_need,
};
use super::refresh::{Due, DueStatus, Pending, refresh_interval};
use super::stored::Stored;
use super::{Cycle, StatusWrite};
use crate::metadata_db::{LockState, SnapshotRow, WorkerInfo};
use crate::operator::pods;
use crate::timestamps::truncate;

/// The last judgement of each AmpWorker, kept from one cycle to the next.
#[derive(Debug, Default)]
pub struct Judgements {
    /// By the address of the object judged (the `Arc` the memo holds, so the address is
    /// not reused while it is here): a memo stands only for that very object anyway, and
    /// an address is hashed in a multiply, where a uid was 36 bytes hashed and compared
    /// per worker per cycle (a tenth of a cycle at 10,000 workers). Boxed: a memo is
    /// about 400 bytes, and a table of them inline kept that much for every free slot
    /// too (a third of a table at 10,000 workers, 2 MiB).
    by_object: foldhash::HashMap<usize, Box<Memo>>,
    cycle: u64,
    /// The fleets' Pod indexes (rebuilt only when the Pods or a selector change).
    pub(super) pods: crate::operator::pods::PodIndexes,
    /// What each cached worker's object alone says (its label, its Pod's place).
    pub(super) facts: super::object_facts::ObjectFacts,
}

/// The memo key: where the object lives (inside the `Arc` the cache holds it in).
fn address(object: &CachedWorker) -> usize {
    std::ptr::from_ref(object) as usize
}

/// Everything a judgement read, but for a fresh heartbeat and the clock.
#[derive(Debug)]
struct Memo {
    seen: u64,
    /// The object judged (spec, labels, generation and stored status): a new version
    /// from the watch is a new `Arc`. Held, so its address is never reused meanwhile.
    object: Arc<CachedWorker>,
    registered_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    info: Arc<WorkerInfo>,
    lock: LockState,
    /// Only when the verdict is not Fresh: Stale and Stopped messages name it.
    heartbeat_at: Option<DateTime<Utc>>,
    recovered_at: Option<DateTime<Utc>>,
    /// Inline (see [`Facts`]): compared for every worker every cycle.
    fleet_version: Option<CompactString>,
    timeout: i64,
    health: Health,
    /// The Pod and restarts its stored status was found to show.
    extras: ExtrasSeen,
    /// The worker's share of the jobs read, as judged.
    jobs: JobsMemo,
    /// The jobs read that share came from (held: compared by address).
    jobs_read: Option<Arc<JobsIndex>>,
    facts: Facts,
    /// A refresh was planned for the object since (see
    /// [`Judgements::nothing_written_since`]).
    written: bool,
}

/// What fleets and the condition gauge need of a judged worker. The node id and
/// version are held inline (short ones, as node ids and versions are): the fleet tally
/// compares and hashes them for every worker every cycle, and a `String` was a pointer
/// to chase into memory the cycle touches nowhere else.
#[derive(Debug, Clone)]
struct Facts {
    node_id: CompactString,
    version: Option<CompactString>,
    stopped: bool,
    stale: bool,
    not_registered: bool,
    not_accepting_jobs: bool,
    /// Registered, Healthy, VersionMatched, Ready.
    conditions: [ConditionStatus; 4],
    /// Registered and Healthy.
    healthy: bool,
    registered_at: Option<DateTime<Utc>>,
    stopped_at: Option<DateTime<Utc>>,
    /// Its jobs, for the fleet's totals (None without job tables).
    jobs: Option<JobFacts>,
}

impl Facts {
    fn of(status: &AmpWorkerStatus) -> Self {
        let m = Member::of(status);
        let mut conditions = [ConditionStatus::Unknown; 4];
        for (slot, c) in conditions.iter_mut().zip(&status.conditions) {
            *slot = ConditionStatus::parse(&c.status);
        }
        Self {
            node_id: m.node_id.into(),
            version: m.version.map(CompactString::from),
            stopped: m.stopped,
            stale: m.stale,
            not_registered: m.not_registered,
            not_accepting_jobs: m.not_accepting_jobs,
            conditions,
            healthy: m.healthy,
            registered_at: m.registered_at,
            stopped_at: m.stopped_at,
            jobs: JobFacts::of(status),
        }
    }

    fn member(&self) -> Member<'_> {
        Member {
            node_id: &self.node_id,
            version: self.version.as_deref(),
            stopped: self.stopped,
            stale: self.stale,
            not_registered: self.not_registered,
            not_accepting_jobs: self.not_accepting_jobs,
            ready: self.conditions[3] == ConditionStatus::True,
            healthy: self.healthy,
            health_unknown: self.conditions[1] == ConditionStatus::Unknown,
            registered_at: self.registered_at,
            stopped_at: self.stopped_at,
        }
    }
}

/// The order of [`Facts::conditions`], as `desired_status` builds them.
pub(super) const CONDITION_TYPES: [&str; 4] = ["Registered", "Healthy", "VersionMatched", "Ready"];

/// What a judgement asks of the cycle. Each is moved once into the plan, never kept in
/// bulk, so the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Verdict<'a> {
    Create(
        AmpWorker,
        AmpWorkerStatus,
        Vec<super::super::status::StatusEvent>,
    ),
    Write(StatusWrite<AmpWorkerStatus>),
    Due(Due<'a>),
    Unchanged,
}

impl Judgements {
    /// How many workers have a remembered judgement (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_object.len()
    }

    pub(super) fn start_cycle(&mut self) {
        self.cycle += 1;
    }

    /// Forgets workers not judged this cycle (deleted, or judged without a memo).
    pub(super) fn end_cycle(&mut self) {
        let cycle = self.cycle;
        self.by_object.retain(|_, m| m.seen == cycle);
    }

    /// Whether nothing was written for `object` since its memo was made: then no status
    /// this replica wrote can be ahead of it, and `Written` need not be looked up (a uid
    /// hashed per worker per cycle, while the last cycle's refreshes are there). A memo
    /// is made only when the stored status was the cache's own (not `Written`'s), and
    /// every write after that is planned against the object the memo holds: a refresh
    /// marks it ([`Self::mark_written`]), a transition leaves no memo for it.
    pub(super) fn nothing_written_since(&self, object: &Arc<CachedWorker>) -> bool {
        self.by_object
            .get(&address(object))
            .is_some_and(|m| !m.written)
    }

    /// Marks the memos of the objects a refresh is written for.
    pub(super) fn mark_written<'o>(&mut self, objects: impl Iterator<Item = &'o CachedWorker>) {
        for object in objects {
            if let Some(m) = self.by_object.get_mut(&address(object)) {
                m.written = true;
            }
        }
    }
}

/// Everything one worker's judgement reads.
pub(super) struct Subject<'a> {
    pub(super) worker: &'a CachedWorker,
    /// The `Arc` it came in (None for an object this cycle creates).
    pub(super) object: Option<&'a Arc<CachedWorker>>,
    pub(super) row: Option<&'a SnapshotRow>,
    pub(super) stored: Option<Stored<'a>>,
    /// True when `stored` is what this replica wrote, not yet shown by the watch.
    pub(super) from_written: bool,
    pub(super) fleet_version: Option<&'a str>,
    /// The worker's live Pod, when its fleet selects Pods and one is the worker's.
    pub(super) pod: Option<&'a crate::operator::pods::WorkerPod>,
    /// Pod deletions the operator made for this worker (the last, and how many).
    pub(super) restarts: Option<crate::operator::remediation::History>,
    /// Its heartbeat timeout (its own, its fleet's or the operator's default).
    pub(super) timeout: i64,
}

impl Subject<'_> {
    fn expected_from(&self) -> ExpectedFrom {
        if self.worker.spec.expected_version.is_some() {
            ExpectedFrom::Worker
        } else {
            ExpectedFrom::Fleet
        }
    }
}

/// Where a judged worker goes: its fleet's tally (and job totals) and the condition counts.
pub(super) type MemberSink<'m> = dyn FnMut(&Member, &[ConditionStatus; 4], Option<&JobFacts>) + 'm;

/// Judges one worker: adds it to its fleet's tally (via `member`), the condition counts
/// and the refresh bookkeeping, and says what to write.
pub(super) fn judge<'a>(
    c: &Cycle,
    s: &Subject<'a>,
    memos: &mut Judgements,
    pending: &mut Pending<'a>,
    member: &mut MemberSink,
) -> Verdict<'a> {
    let db = effective_db(c, s);
    let extras = ExtrasSeen::of(s, memos.pods.generation());
    let key = MemoKey::of(s, &db);
    if let (Some(key), Some(object)) = (&key, s.object)
        && let Some(memo) = memos.by_object.get_mut(&address(object))
        && memo.extras == extras
        && key.matches(memo, s)
        && jobs_unchanged(c, s, memo)
    {
        memo.seen = memos.cycle;
        member(
            &memo.facts.member(),
            &memo.facts.conditions,
            memo.facts.jobs.as_ref(),
        );
        return unchanged(c, s, key.heartbeat_at, memo.facts.conditions[1], pending);
    }
    // A memo stands for a stored status that already shows the Pod and the restarts.
    let key = key.filter(|_| extras_shown(s));
    let stored = s.stored.map(Stored::whole);
    let stored = stored.as_deref();
    let jobs = worker_jobs_input(c.input.jobs, &s.worker.spec, c.db_now);
    let mut desired = desired_status(&WorkerInputs {
        row: s.row,
        db: &db,
        spec: &s.worker.spec,
        fleet_version: s.fleet_version,
        timeout: s.timeout,
        previous: stored,
        generation: s.worker.metadata.generation,
        now: c.input.now,
    });
    apply_extras(&mut desired, s);
    apply_worker_jobs(
        &mut desired,
        &jobs,
        &db,
        &s.worker.spec,
        stored,
        c.input.now,
    );
    let facts = Facts::of(&desired);
    member(&facts.member(), &facts.conditions, facts.jobs.as_ref());
    let healthy = facts.conditions[1] == ConditionStatus::True;
    pending.heartbeating += usize::from(healthy);
    let Some(object) = s.object else {
        let events = info_cut_events(s.row, None, &desired);
        let created = super::discovery::discovered_worker(&s.worker.spec.node_id);
        return Verdict::Create(created, desired, events);
    };
    let need = write_need(stored, &desired, refresh_interval(c.config, s.timeout));
    // A memo says "the stored status, heartbeat aside": not true of a pending fill,
    // which is judged afresh until written.
    if matches!(need, WriteNeed::Refresh | WriteNeed::None)
        && let Some(key) = key
    {
        memos.by_object.insert(
            address(object),
            Box::new(key.into_memo(memos.cycle, object, s, facts, (&jobs, c.input.jobs), extras)),
        );
    }
    verdict(s, stored, need, desired, healthy, pending)
}

/// Whether the worker's share of the jobs view is what its memo was judged with. The
/// same jobs read (the same `Arc`, held by the memo) gives the same share unless the
/// worker has a job waiting for pickup, whose verdict moves with the clock: then, and
/// after a new read, its share is looked up and compared.
fn jobs_unchanged(c: &Cycle, s: &Subject, memo: &mut Memo) -> bool {
    let read = match c.input.jobs {
        JobsView::Known(index) => Some(index),
        _ => None,
    };
    if let (Some(read), Some(seen)) = (read, &memo.jobs_read)
        && Arc::ptr_eq(read, seen)
        && !memo.jobs.waiting_for_pickup()
    {
        return true;
    }
    let jobs = worker_jobs_input(c.input.jobs, &s.worker.spec, c.db_now);
    let same = memo.jobs.matches(&jobs);
    if same {
        memo.jobs_read = read.cloned();
    }
    same
}

/// The Pod (by address, within one Pod list: see `PodIndexes::generation`) and the
/// restarts a judgement saw: while they and the object are the same, the stored status
/// still shows them, and [`extras_shown`] (five string compares a worker) need not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExtrasSeen {
    pods_generation: u64,
    pod: Option<usize>,
    restarts: Option<crate::operator::remediation::History>,
}

impl ExtrasSeen {
    fn of(s: &Subject, pods_generation: u64) -> Self {
        Self {
            pods_generation,
            pod: s.pod.map(|p| std::ptr::from_ref(p) as usize),
            restarts: s.restarts,
        }
    }
}

/// Whether the stored status shows what the Pod and the restart history add to it.
fn extras_shown(s: &Subject) -> bool {
    let placement = s.stored.and_then(Stored::placement);
    let pod_shown = match s.pod {
        Some(pod) => pods::shows_pod(placement, pod),
        None => !pods::from_pod(placement),
    };
    let restarts_shown = s.restarts.is_none_or(|h| {
        s.stored.is_some_and(|st| {
            let (last, count) = st.remediation();
            last >= Some(truncate(h.last)) && count >= Some(h.count)
        })
    });
    pod_shown && restarts_shown
}

/// The live Pod's placement wins over the worker's own; the operator's restarts of the
/// worker are recorded (never lowered: the status may know of earlier ones).
fn apply_extras(status: &mut AmpWorkerStatus, s: &Subject) {
    match s.pod {
        Some(pod) => status.placement = Some(pods::placement_of(pod)),
        None if pods::from_pod(status.placement.as_ref()) => status.placement = None,
        None => {}
    }
    if let Some(h) = s.restarts {
        status.last_remediation_time = status.last_remediation_time.max(Some(truncate(h.last)));
        status.remediation_count = status.remediation_count.max(Some(h.count));
    }
}

/// What to do with a freshly built status, by how it differs from the stored one.
fn verdict<'a>(
    s: &Subject<'a>,
    stored: Option<&AmpWorkerStatus>,
    need: WriteNeed,
    desired: AmpWorkerStatus,
    healthy: bool,
    pending: &mut Pending<'a>,
) -> Verdict<'a> {
    match need {
        WriteNeed::Transition => Verdict::Write(StatusWrite {
            name: s.worker.name_any(),
            uid: s.worker.metadata.uid.clone(),
            events: [
                transition_events(stored, &desired, s.expected_from()),
                job_events(stored, &desired),
                info_cut_events(s.row, stored, &desired),
            ]
            .concat(),
            status: desired,
        }),
        WriteNeed::Refresh | WriteNeed::Fill => Verdict::Due(Due {
            old: stored.and_then(|st| st.heartbeat_at),
            worker: s.worker,
            status: DueStatus::Built(Box::new(desired)),
            fill: need == WriteNeed::Fill,
        }),
        WriteNeed::None => {
            if healthy && let Some(hb) = stored.and_then(|st| st.heartbeat_at) {
                pending.show(hb);
            }
            Verdict::Unchanged
        }
    }
}

/// A worker as judged last time, its heartbeat moved on: a refresh when due, else
/// nothing (the same rule as [`write_need`] with only `heartbeatAt` differing).
fn unchanged<'a>(
    c: &Cycle,
    s: &Subject<'a>,
    heartbeat_at: DateTime<Utc>,
    healthy: ConditionStatus,
    pending: &mut Pending<'a>,
) -> Verdict<'a> {
    let healthy = healthy == ConditionStatus::True;
    pending.heartbeating += usize::from(healthy);
    let Some(stored) = s.stored else {
        return Verdict::Unchanged;
    };
    let due = match stored.heartbeat_at() {
        Some(old) => heartbeat_at - old >= refresh_interval(c.config, s.timeout),
        None => true,
    };
    if due {
        return Verdict::Due(Due {
            old: stored.heartbeat_at(),
            worker: s.worker,
            status: DueStatus::Stored(stored, heartbeat_at),
            fill: false,
        });
    }
    if healthy && let Some(hb) = stored.heartbeat_at() {
        pending.show(hb);
    }
    Verdict::Unchanged
}

/// The DB as this worker is judged: the grace after an outage is for workers that were
/// alive when the DB went away.
fn effective_db(c: &Cycle, s: &Subject) -> DbView {
    effective_db_for(c, s.row, s.timeout)
}

/// [`effective_db`] for a row and heartbeat timeout (the remediation step judges health
/// too).
pub(super) fn effective_db_for(c: &Cycle, row: Option<&SnapshotRow>, timeout: i64) -> DbView {
    match (c.input.db, c.input.recovery_from, row) {
        (DbView::Available { db_now, .. }, Some(from), Some(r))
            if r.heartbeat_at + chrono::Duration::seconds(timeout) < from =>
        {
            DbView::Available {
                db_now: *db_now,
                recovered_at: None,
            }
        }
        (db, _, _) => db.clone(),
    }
}

/// What a memo must match for the last judgement to stand (None: always judge afresh,
/// e.g. while the DB is down, without a row, or for a status not yet shown by the watch).
struct MemoKey {
    health: Health,
    recovered_at: Option<DateTime<Utc>>,
    /// The heartbeat the status would show (whole seconds, as shown).
    heartbeat_at: DateTime<Utc>,
}

impl MemoKey {
    fn of(s: &Subject, db: &DbView) -> Option<Self> {
        let (
            DbView::Available {
                db_now,
                recovered_at,
            },
            Some(row),
            Some(_),
            false,
        ) = (db, s.row, s.object, s.from_written)
        else {
            return None;
        };
        let health = judge_health(row, *db_now, *recovered_at, s.timeout);
        Some(Self {
            health,
            recovered_at: *recovered_at,
            heartbeat_at: truncate(row.heartbeat_at),
        })
    }

    fn matches(&self, m: &Memo, s: &Subject) -> bool {
        let (Some(object), Some(row)) = (s.object, s.row) else {
            return false;
        };
        let heartbeat_ok = match m.heartbeat_at {
            None => self.health == Health::Fresh,
            Some(hb) => hb == row.heartbeat_at,
        };
        Arc::ptr_eq(object, &m.object)
            && self.health == m.health
            && heartbeat_ok
            && self.recovered_at == m.recovered_at
            && row.registered_at == m.registered_at
            && row.created_at == m.created_at
            && row.lock == m.lock
            && (Arc::ptr_eq(&row.info, &m.info) || row.info == m.info)
            && s.fleet_version == m.fleet_version.as_deref()
            && s.timeout == m.timeout
    }

    fn into_memo(
        self,
        seen: u64,
        object: &Arc<CachedWorker>,
        s: &Subject,
        facts: Facts,
        (jobs, view): (&WorkerJobsInput, &JobsView),
        extras: ExtrasSeen,
    ) -> Memo {
        let row = s.row.expect("a key is made only with a row");
        Memo {
            seen,
            object: object.clone(),
            registered_at: row.registered_at,
            created_at: row.created_at,
            info: row.info.clone(),
            lock: row.lock,
            heartbeat_at: (self.health != Health::Fresh).then_some(row.heartbeat_at),
            recovered_at: self.recovered_at,
            fleet_version: s.fleet_version.map(CompactString::from),
            timeout: s.timeout,
            health: self.health,
            extras,
            jobs: JobsMemo::of(jobs),
            jobs_read: match view {
                JobsView::Known(index) => Some(index.clone()),
                _ => None,
            },
            facts,
            written: false,
        }
    }
}
