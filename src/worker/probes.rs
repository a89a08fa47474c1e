//! The worker's /healthz, /readyz and /metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct WorkerProbes {
    ready: AtomicBool,
    registry: Registry,
    heartbeats: Counter,
    heartbeat_seconds: Histogram,
    session_up: Gauge,
    reconnects: Counter,
}

impl Default for WorkerProbes {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerProbes {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("amp_worker");
        let heartbeats = Counter::default();
        let heartbeat_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let session_up = Gauge::default();
        registry.register("heartbeats", "Heartbeats written", heartbeats.clone());
        registry.register(
            "heartbeat_duration_seconds",
            "Heartbeat round trip",
            heartbeat_seconds.clone(),
        );
        registry.register(
            "session_up",
            "1 while the lock-holding DB session is registered",
            session_up.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "reconnects",
            "Sessions re-established after losing the DB (the process did not restart)",
            reconnects.clone(),
        );
        Self {
            ready: AtomicBool::new(false),
            registry,
            heartbeats,
            heartbeat_seconds,
            session_up,
            reconnects,
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        self.session_up.set(i64::from(ready));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn count_reconnect(&self) {
        self.reconnects.inc();
    }

    pub fn observe_heartbeat(&self, took: Duration) {
        self.heartbeats.inc();
        self.heartbeat_seconds.observe(took.as_secs_f64());
    }

    pub fn metrics_response(&self) -> Response {
        crate::telemetry::metrics_response(&self.registry)
    }
}

pub fn router(probes: Arc<WorkerProbes>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(p): State<Arc<WorkerProbes>>| async move {
                if p.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not registered: no DB session holding the node lock",
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(p): State<Arc<WorkerProbes>>| async move { p.metrics_response() }),
        )
        .with_state(probes)
}
