//! The side-effecting half of a cycle: read the DB once ([`db_read`]), plan, then write
//! to Kubernetes ([`execute`]: creates, server-side-apply status patches, deletes), with
//! failed writes backing off ([`retry`]) and events published best effort ([`events`]).

mod db_read;
mod events;
mod execute;
mod remediate;
mod retry;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::{Api, Client};
use sqlx::PgPool;

use super::cache::CachedWorker;
use super::crd::{AmpWorker, AmpWorkerFleet};
use super::metrics::OperatorMetrics;
use super::plan::{
    Judgements, PlanConfig, PlanInput, PodInput, RefreshBudget, RemediationHistory, Written,
    plan_with_pods,
};
use super::remediation::SkipReason;
use super::status::DbView;
use db_read::DbReader;
use events::Publisher;
pub use events::{MAX_EVENT_NOTE_BYTES, NAME_COLLISION_REASON, truncate_note};
use k8s_openapi::api::core::v1::Pod;
pub use remediate::REMEDIATION_FORBIDDEN_REASON;
use retry::Retries;

/// Objects created this process whose creation the watch has not shown yet are
/// kept this long, so a lagging store does not trigger a second create.
const PENDING_CREATE_TTL: Duration = Duration::from_secs(60);
/// Refresh budget saved up while cycles are slow or nothing is due; small, so a pause
/// never turns into a burst the API server would feel.
const REFRESH_BURST_SECS: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub namespace: String,
    pub plan: PlanConfig,
    /// Concurrent Kubernetes writes within one cycle.
    pub write_concurrency: usize,
    /// Reported as the events' reporting instance.
    pub identity: String,
}

/// What one cycle did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub db_available: bool,
    pub created: usize,
    /// Status writes: creates' first status and transitions.
    pub status_writes: usize,
    /// Budgeted writes: heartbeat-only refreshes (patches of `heartbeatAt`) and fills
    /// (applies of a status that only lacked fields this operator writes).
    pub refreshes: usize,
    pub fleet_writes: usize,
    pub deleted: usize,
    pub events: usize,
    pub errors: usize,
    /// Creates refused because another object of another nodeId holds the name.
    pub collisions: usize,
    /// Hung workers' Pods deleted.
    pub remediated: usize,
}

impl CycleReport {
    pub fn wrote_anything(&self) -> bool {
        self.created
            + self.status_writes
            + self.refreshes
            + self.fleet_writes
            + self.deleted
            + self.events
            + self.collisions
            + self.remediated
            > 0
    }
}

pub struct Reconciler {
    workers_api: Api<AmpWorker>,
    fleets_api: Api<AmpWorkerFleet>,
    events: Publisher,
    db: DbReader,
    config: ReconcilerConfig,
    metrics: Arc<OperatorMetrics>,
    written: Written,
    /// Each worker's last judgement: an unchanged worker costs the planner a comparison.
    judgements: Judgements,
    pending: HashMap<String, (Instant, Arc<CachedWorker>)>,
    retries: Retries,
    refresh_budget: RefreshBudget,
    last_cycle: Option<Instant>,
    pods_api: Api<Pod>,
    /// Past remediations: the per-worker back-off and the fleets' rate limit.
    history: RemediationHistory,
    /// Each due worker's last skip reason, so a skip is counted once per change.
    last_skips: HashMap<String, SkipReason>,
    /// A Pod delete was answered 403: said once, not tried again.
    delete_forbidden: bool,
}

impl Reconciler {
    pub fn new(
        client: Client,
        pool: PgPool,
        config: ReconcilerConfig,
        metrics: Arc<OperatorMetrics>,
    ) -> Self {
        Self {
            workers_api: Api::namespaced(client.clone(), &config.namespace),
            fleets_api: Api::namespaced(client.clone(), &config.namespace),
            pods_api: Api::namespaced(client.clone(), &config.namespace),
            history: RemediationHistory::default(),
            last_skips: HashMap::new(),
            delete_forbidden: false,
            events: Publisher::new(client, &config.identity, metrics.clone()),
            db: DbReader::new(pool),
            refresh_budget: RefreshBudget::new(config.plan.refresh_budget, REFRESH_BURST_SECS),
            last_cycle: None,
            config,
            metrics,
            written: Written::default(),
            judgements: Judgements::default(),
            pending: HashMap::new(),
            retries: Retries::default(),
        }
    }

    /// Sets how often Amp's jobs are read (default 10 s).
    pub fn with_jobs_interval(mut self, interval: Duration) -> Self {
        self.db.jobs.interval = interval;
        self
    }

    /// Sets the bound of each snapshot read (default [`crate::metadata_db::DEFAULT_DB_TIMEOUT`]).
    pub fn with_db_timeout(mut self, timeout: Duration) -> Self {
        self.db.timeout = timeout;
        self
    }

    /// Forgets what this replica wrote (after losing leadership another replica may
    /// have written since).
    pub fn forget(&mut self) {
        self.written = Written::default();
        self.judgements = Judgements::default();
        self.pending.clear();
        self.retries.clear();
        // A new leader starts from what the AmpWorkers' statuses record.
        self.history = RemediationHistory::default();
        self.last_skips.clear();
    }

    /// One cycle over the given objects (from the watch's mirrors in production, from
    /// the test in tests).
    pub async fn cycle(
        &mut self,
        workers: Vec<Arc<CachedWorker>>,
        fleets: Vec<Arc<AmpWorkerFleet>>,
    ) -> CycleReport {
        self.cycle_with_pods(&workers, &fleets, &[]).await
    }

    /// [`Self::cycle`] with the namespace's Pods (slimmed; empty when no fleet selects
    /// Pods): placement from the live Pod, fleets' `status.pods`, and remediation.
    pub async fn cycle_with_pods(
        &mut self,
        workers: &[Arc<CachedWorker>],
        fleets: &[Arc<AmpWorkerFleet>],
        pods: &[Arc<super::pods::WorkerPod>],
    ) -> CycleReport {
        let started = Instant::now();
        let (db, rows) = self.db.read(&self.metrics).await;
        let db_ok = matches!(db, DbView::Available { .. });
        let jobs = self.db.read_jobs(db_ok, &self.metrics).await;
        let workers = self.with_pending(workers);
        let since_last = self.last_cycle.map_or(Duration::ZERO, |t| t.elapsed());
        self.last_cycle = Some(Instant::now());
        let input = PlanInput {
            db: &db,
            rows: &rows,
            workers: &workers,
            fleets,
            written: &self.written,
            recovery_from: self.db.recovery_from(),
            now: Utc::now(),
            refresh_allowance: self.refresh_budget.refill(since_last),
            jobs: &jobs,
        };
        let pod_input = PodInput {
            pods,
            namespace: &self.config.namespace,
            history: std::mem::take(&mut self.history),
        };
        let mut plan = plan_with_pods(&input, &pod_input, &self.config.plan, &mut self.judgements);
        // Before this cycle's writes are remembered.
        self.written.forget_shown(&plan, fleets);
        self.history = pod_input.history;
        self.count_skips(&std::mem::take(&mut plan.remediation_skips));
        self.metrics
            .set_remediation_paused(&std::mem::take(&mut plan.remediation_paused));
        let remediations = std::mem::take(&mut plan.remediations);
        self.metrics.set_worker_conditions(&plan.worker_conditions);
        self.metrics.set_fleet_conditions(&plan.fleet_conditions);
        self.metrics.set_refresh_stats(&plan.refresh_stats);
        if let Some(stranded) = plan.jobs_stranded {
            self.metrics.jobs_stranded.set(stranded);
        }
        self.metrics
            .workers_not_accepting_jobs
            .set(plan.workers_not_accepting_jobs);
        self.retries.drop_backed_off(&mut plan);
        self.refresh_budget.spend(plan.refreshes.len());
        let mut report = CycleReport {
            db_available: matches!(db, DbView::Available { .. }),
            ..Default::default()
        };
        if !plan.is_empty() {
            self.execute(plan, &mut report).await;
        }
        // After the status writes: a worker's record of its last restart follows in the
        // next cycle's judgement, from the remembered history.
        report.remediated = self.remediate(remediations).await;
        if report.errors > 0 {
            self.metrics.cycle_errors.inc();
        }
        self.metrics.observe_cycle(started.elapsed());
        report
    }

    /// The cache's objects plus the ones this process created that the watch has not
    /// shown yet (a copy of the list only then, during a discovery).
    fn with_pending<'w>(
        &mut self,
        workers: &'w [Arc<CachedWorker>],
    ) -> Cow<'w, [Arc<CachedWorker>]> {
        if self.pending.is_empty() {
            return Cow::Borrowed(workers);
        }
        let seen: std::collections::HashSet<&str> = workers
            .iter()
            .filter_map(|w| w.metadata.uid.as_deref())
            .collect();
        self.pending.retain(|_, (at, obj)| {
            at.elapsed() < PENDING_CREATE_TTL
                && !obj
                    .metadata
                    .uid
                    .as_deref()
                    .is_some_and(|uid| seen.contains(uid))
        });
        if self.pending.is_empty() {
            return Cow::Borrowed(workers);
        }
        let mut all = workers.to_vec();
        all.extend(self.pending.values().map(|(_, obj)| obj.clone()));
        Cow::Owned(all)
    }
}
