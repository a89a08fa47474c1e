//! The operator's Prometheus metrics (`amp_operator_*`).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::plan::{ConditionCounts, RefreshStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetConditionLabels {
    pub fleet: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// create, status, fleet_status, delete, event
    pub kind: String,
    /// ok or error
    pub result: String,
}

/// `amp_worker_remediations_total`: result is restarted, dry_run, skipped or failed;
/// reason one of a fixed set (`remediation::SkipReason` labels, `forbidden`,
/// `api_error`, `pod_gone`, `due`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemediationLabels {
    pub result: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetLabels {
    pub fleet: String,
}

/// A job status: one of [`JOB_STATUS_LABELS`], never a job's or a node's id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStatusLabels {
    pub status: String,
}

/// The only values of `amp_jobs{status}`.
pub const JOB_STATUS_LABELS: [&str; 6] = [
    "scheduled",
    "running",
    "stop_requested",
    "stopping",
    "error",
    "unknown",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub reason: String,
}

pub struct OperatorMetrics {
    registry: Registry,
    pub cycles: Counter,
    pub cycle_errors: Counter,
    pub cycle_seconds: Histogram,
    pub poll_seconds: Histogram,
    pub writes: Family<WriteLabels, Counter>,
    pub events: Family<EventLabels, Counter>,
    pub workers: Family<ConditionLabels, Gauge>,
    pub fleet_condition: Family<FleetConditionLabels, Gauge>,
    pub leader: Gauge,
    pub metadata_db_up: Gauge,
    pub refresh_interval: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub refresh_oldest: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub refresh_deferred: Gauge,
    /// The process heap: allocated, and kept resident by the allocator (see `crate::heap`).
    pub heap_allocated: Gauge,
    pub heap_resident: Gauge,
    /// Creates refused because another object (of another nodeId) holds the name.
    pub name_collisions: Counter,
    /// Amp's unfinished jobs by status (all workers), from the latest jobs read.
    pub jobs: Family<JobStatusLabels, Gauge>,
    /// Unfinished jobs on workers that are Stale, Stopped or not registered.
    pub jobs_stranded: Gauge,
    /// 1 when the latest jobs read succeeded, 0 when the job tables cannot be read.
    pub jobs_known: Gauge,
    /// AmpWorkers whose AcceptingJobs condition is False.
    pub workers_not_accepting_jobs: Gauge,
    /// Label sets set last cycle, so vanished ones drop to zero instead of lingering.
    last_fleet_labels: Mutex<Vec<FleetConditionLabels>>,
    /// `amp_worker_*` (no `amp_operator_` prefix: they are about the workers).
    worker_registry: Registry,
    /// `amp_jobs*` (no `amp_operator_` prefix: they are about Amp's jobs).
    jobs_registry: Registry,
    pub remediations: Family<RemediationLabels, Counter>,
    pub remediation_paused: Family<FleetLabels, Gauge>,
    last_paused: Mutex<Vec<String>>,
    /// Why the last snapshot read failed (None after a good one): what `/readyz` says.
    /// Not exported: a cause is not a bounded label value.
    pub metadata_db_cause: Mutex<Option<&'static str>>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorMetrics {
    /// Records why the metadata DB cannot be read (None: it can).
    pub fn set_metadata_db_cause(&self, cause: Option<&'static str>) {
        *self
            .metadata_db_cause
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = cause;
    }

    /// The outcome of a snapshot read: `metadata_db_up` and the cause `/readyz` says,
    /// set together so they cannot disagree.
    pub fn record_metadata_db_read(&self, cause: Option<&'static str>) {
        self.metadata_db_up.set(i64::from(cause.is_none()));
        self.set_metadata_db_cause(cause);
    }

    /// Why the metadata DB could not be read last cycle.
    pub fn metadata_db_cause(&self) -> Option<&'static str> {
        *self
            .metadata_db_cause
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // One piece on purpose: a flat list of registrations (name, help, metric), read top
    // to bottom; splitting it would only scatter the exposition's names.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("amp_operator");
        let cycles = Counter::default();
        let cycle_errors = Counter::default();
        let cycle_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let poll_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let writes = Family::<WriteLabels, Counter>::default();
        let events = Family::<EventLabels, Counter>::default();
        let workers = Family::<ConditionLabels, Gauge>::default();
        let fleet_condition = Family::<FleetConditionLabels, Gauge>::default();
        let leader = Gauge::default();
        let metadata_db_up = Gauge::default();
        let refresh_interval = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let refresh_oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let refresh_deferred = Gauge::default();
        let heap_allocated = Gauge::default();
        let heap_resident = Gauge::default();
        registry.register(
            "heap_allocated_bytes",
            "Bytes the process has allocated on its heap, as of the last cycle",
            heap_allocated.clone(),
        );
        registry.register(
            "heap_resident_bytes",
            "Bytes the heap allocator keeps resident (allocated plus its own slack), as of the last cycle",
            heap_resident.clone(),
        );
        registry.register(
            "status_refresh_interval_seconds",
            "Expected interval between heartbeatAt refreshes of one worker: --status-refresh, stretched by --status-refresh-budget for large fleets",
            refresh_interval.clone(),
        );
        registry.register(
            "status_heartbeat_shown_age_seconds",
            "Age of the oldest heartbeatAt shown on a healthy AmpWorker (how old LAST HEARTBEAT is at worst)",
            refresh_oldest.clone(),
        );
        registry.register(
            "status_refresh_deferred",
            "Due heartbeatAt refreshes held back by the refresh budget last cycle",
            refresh_deferred.clone(),
        );
        let name_collisions = Counter::default();
        registry.register(
            "reconcile_cycles",
            "Poll-and-reconcile cycles run as leader",
            cycles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Cycles in which a Kubernetes write failed",
            cycle_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a whole cycle (poll, plan, writes)",
            cycle_seconds.clone(),
        );
        registry.register(
            "poll_duration_seconds",
            "Duration of the metadata DB snapshot read",
            poll_seconds.clone(),
        );
        registry.register(
            "writes",
            "Kubernetes writes by kind and result",
            writes.clone(),
        );
        registry.register("events", "Events published by reason", events.clone());
        registry.register(
            "workers",
            "AmpWorkers by condition and status",
            workers.clone(),
        );
        registry.register(
            "fleet_condition",
            "1 for each fleet's current condition status",
            fleet_condition.clone(),
        );
        registry.register("leader", "1 while this replica leads", leader.clone());
        registry.register(
            "metadata_db_up",
            "1 when the last snapshot read succeeded",
            metadata_db_up.clone(),
        );
        registry.register(
            "name_collisions",
            "Discovered workers whose AmpWorker name is held by an object of another nodeId (each backed-off attempt)",
            name_collisions.clone(),
        );
        let mut worker_registry = Registry::with_prefix("amp_worker");
        let remediations = Family::<RemediationLabels, Counter>::default();
        let remediation_paused = Family::<FleetLabels, Gauge>::default();
        worker_registry.register(
            "remediations",
            "Hung-worker remediations by result (restarted, dry_run, skipped, failed) and bounded reason; a skip is counted when a due worker's reason changes",
            remediations.clone(),
        );
        worker_registry.register(
            "remediation_paused",
            "1 while a fleet's remediation is paused because more members than maxUnhealthy are Stale",
            remediation_paused.clone(),
        );
        let jobs = Family::<JobStatusLabels, Gauge>::default();
        let jobs_stranded = Gauge::default();
        let jobs_known = Gauge::default();
        let workers_not_accepting_jobs = Gauge::default();
        registry.register(
            "workers_not_accepting_jobs",
            "AmpWorkers that heartbeat but left a job SCHEDULED longer than jobPickupTimeoutSeconds (AcceptingJobs False)",
            workers_not_accepting_jobs.clone(),
        );
        let mut jobs_registry = Registry::with_prefix("amp");
        jobs_registry.register(
            "jobs",
            "Amp's unfinished jobs by status (scheduled, running, stop_requested, stopping, error, unknown), from the latest jobs read; absent without job tables",
            jobs.clone(),
        );
        jobs_registry.register(
            "jobs_stranded",
            "Amp's unfinished jobs assigned to workers that are Stale, Stopped or not registered (including node ids without a row)",
            jobs_stranded.clone(),
        );
        jobs_registry.register(
            "jobs_known",
            "1 when the latest read of Amp's job tables succeeded, 0 when they cannot be read (a missing grant); absent without job tables",
            jobs_known.clone(),
        );
        Self {
            worker_registry,
            jobs_registry,
            remediations,
            remediation_paused,
            last_paused: Mutex::new(Vec::new()),
            registry,
            jobs,
            jobs_stranded,
            jobs_known,
            workers_not_accepting_jobs,
            cycles,
            cycle_errors,
            cycle_seconds,
            poll_seconds,
            writes,
            events,
            workers,
            fleet_condition,
            leader,
            metadata_db_up,
            metadata_db_cause: Mutex::new(None),
            refresh_interval,
            refresh_oldest,
            refresh_deferred,
            heap_allocated,
            heap_resident,
            name_collisions,
            last_fleet_labels: Mutex::new(Vec::new()),
        }
    }

    pub fn count_write(&self, kind: &str, ok: bool) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }

    pub fn count_event(&self, reason: &str) {
        self.events
            .get_or_create(&EventLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn observe_cycle(&self, took: Duration) {
        self.cycles.inc();
        self.cycle_seconds.observe(took.as_secs_f64());
        if let Some(heap) = crate::heap::stats() {
            self.heap_allocated
                .set(i64::try_from(heap.allocated).unwrap_or(i64::MAX));
            self.heap_resident
                .set(i64::try_from(heap.resident).unwrap_or(i64::MAX));
        }
    }

    pub fn set_refresh_stats(&self, stats: &RefreshStats) {
        self.refresh_interval.set(stats.interval_secs);
        self.refresh_oldest.set(stats.oldest_shown_age_secs);
        self.refresh_deferred
            .set(i64::try_from(stats.deferred).unwrap_or(i64::MAX));
    }

    /// Sets every (condition, status) pair, zeroing pairs absent this cycle.
    pub fn set_worker_conditions(&self, counts: &ConditionCounts) {
        use super::conditions::ConditionStatus;
        use super::status::{HEALTHY, READY, REGISTERED, VERSION_MATCHED};
        for condition in [REGISTERED, HEALTHY, VERSION_MATCHED, READY] {
            for status in [
                ConditionStatus::True,
                ConditionStatus::False,
                ConditionStatus::Unknown,
            ]
            .map(ConditionStatus::as_str)
            {
                let n = counts
                    .get(&(condition.to_owned(), status.to_owned()))
                    .copied()
                    .unwrap_or(0);
                self.workers
                    .get_or_create(&ConditionLabels {
                        condition: condition.to_owned(),
                        status: status.to_owned(),
                    })
                    .set(n);
            }
        }
    }

    pub fn set_fleet_conditions(&self, current: &[(String, String, String)]) {
        let labels: Vec<FleetConditionLabels> = current
            .iter()
            .map(|(fleet, condition, status)| FleetConditionLabels {
                fleet: fleet.clone(),
                condition: condition.clone(),
                status: status.clone(),
            })
            .collect();
        let mut last = self
            .last_fleet_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A series whose fleet is gone (or whose condition moved to another status) is
        // removed, not kept at 0: deleted fleets must not stay in /metrics forever.
        for old in last.iter().filter(|l| !labels.contains(l)) {
            self.fleet_condition.remove(old);
        }
        for l in &labels {
            self.fleet_condition.get_or_create(l).set(1);
        }
        *last = labels;
    }

    /// `amp_worker_remediations_total{result, reason}` as counted so far.
    pub fn remediations_counted(&self, result: &'static str, reason: &'static str) -> u64 {
        self.remediations
            .get_or_create(&RemediationLabels { result, reason })
            .get()
    }

    pub fn count_remediation(&self, result: &'static str, reason: &'static str) {
        self.remediations
            .get_or_create(&RemediationLabels { result, reason })
            .inc();
    }

    /// 1 for each paused fleet; a fleet no longer paused is removed.
    pub fn set_remediation_paused(&self, fleets: &[String]) {
        let mut last = self.last_paused.lock().unwrap_or_else(|p| p.into_inner());
        for old in last.iter().filter(|f| !fleets.contains(f)) {
            self.remediation_paused
                .remove(&FleetLabels { fleet: old.clone() });
        }
        for f in fleets {
            self.remediation_paused
                .get_or_create(&FleetLabels { fleet: f.clone() })
                .set(1);
        }
        *last = fleets.to_vec();
    }

    /// Job counts by status from a jobs read (None: the job tables cannot be read).
    pub fn set_jobs(&self, totals: Option<[i64; 6]>) {
        self.jobs_known.set(i64::from(totals.is_some()));
        let Some(totals) = totals else {
            self.jobs.clear();
            return;
        };
        for (status, n) in JOB_STATUS_LABELS.iter().zip(totals) {
            self.jobs
                .get_or_create(&JobStatusLabels {
                    status: (*status).to_owned(),
                })
                .set(n);
        }
    }

    pub fn metrics_response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut body = String::new();
        let encoded = prometheus_client::encoding::text::encode_registry(&mut body, &self.registry)
            .and_then(|()| {
                prometheus_client::encoding::text::encode_registry(&mut body, &self.worker_registry)
            })
            .and_then(|()| {
                prometheus_client::encoding::text::encode_registry(&mut body, &self.jobs_registry)
            })
            .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut body));
        if encoded.is_err() {
            return crate::telemetry::metrics_response(&self.registry);
        }
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod fleet_series_tests {
    use super::*;

    fn text(m: &OperatorMetrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        out
    }

    #[test]
    fn remediations_are_exported_without_the_operator_prefix() {
        let m = OperatorMetrics::new();
        m.count_remediation("skipped", "too_many_unhealthy");
        m.set_remediation_paused(&["amp".to_owned()]);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.worker_registry).unwrap();
        assert!(
            out.contains(
                r#"amp_worker_remediations_total{result="skipped",reason="too_many_unhealthy"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"amp_worker_remediation_paused{fleet="amp"} 1"#),
            "{out}"
        );
        m.set_remediation_paused(&[]);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.worker_registry).unwrap();
        assert!(!out.contains(r#"fleet="amp""#), "{out}");
    }

    #[test]
    fn a_deleted_fleets_series_are_removed() {
        let m = OperatorMetrics::new();
        let c = |f: &str, s: &str| (f.to_owned(), "Ready".to_owned(), s.to_owned());
        m.set_fleet_conditions(&[c("a", "True"), c("b", "False")]);
        assert!(text(&m).contains(r#"fleet="b""#));
        m.set_fleet_conditions(&[c("a", "False")]);
        let t = text(&m);
        assert!(!t.contains(r#"fleet="b""#), "deleted fleet kept:\n{t}");
        assert!(
            t.contains(
                r#"amp_operator_fleet_condition{fleet="a",condition="Ready",status="False"} 1"#
            ),
            "{t}"
        );
        assert!(!t.contains(r#"status="True""#), "old status kept:\n{t}");
    }
}

#[cfg(test)]
mod job_series_tests {
    use super::*;

    fn text(m: &OperatorMetrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.jobs_registry).unwrap();
        out
    }

    #[test]
    fn jobs_are_counted_by_status_and_dropped_when_unknown() {
        let m = OperatorMetrics::new();
        m.set_jobs(Some([1, 2, 3, 4, 5, 6]));
        m.jobs_stranded.set(7);
        let t = text(&m);
        for line in [
            r#"amp_jobs{status="scheduled"} 1"#,
            r#"amp_jobs{status="unknown"} 6"#,
            "amp_jobs_stranded 7",
            "amp_jobs_known 1",
        ] {
            assert!(t.contains(line), "{line} missing:\n{t}");
        }
        // Bounded labels: the status only, never a node or job id.
        assert_eq!(
            t.matches("amp_jobs{").count(),
            JOB_STATUS_LABELS.len(),
            "{t}"
        );
        assert!(!t.contains("node_id=") && !t.contains("job_id="), "{t}");
        m.set_jobs(None);
        let t = text(&m);
        assert!(!t.contains("amp_jobs{"), "{t}");
        assert!(t.contains("amp_jobs_known 0"), "{t}");
    }

    #[tokio::test]
    async fn the_served_metrics_carry_the_job_series_under_amp_jobs() {
        let m = OperatorMetrics::new();
        m.set_jobs(Some([1, 2, 3, 4, 5, 6]));
        m.jobs_stranded.set(7);
        let body = axum::body::to_bytes(m.metrics_response().into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            r#"amp_jobs{status="running"} 2"#,
            "amp_jobs_stranded 7",
            "amp_jobs_known 1",
            "amp_operator_workers_not_accepting_jobs 0",
        ] {
            assert!(body.contains(line), "{line} missing:\n{body}");
        }
        assert!(!body.contains("amp_operator_jobs"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1, "{body}");
    }
}
