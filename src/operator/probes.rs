//! The operator's /healthz, /readyz and /metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::metrics::OperatorMetrics;

pub struct OperatorProbes {
    /// Caches synced: this replica can lead (or is a warm standby).
    pub ready: AtomicBool,
    pub metrics: Arc<OperatorMetrics>,
}

pub fn router(probes: Arc<OperatorProbes>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(p): State<Arc<OperatorProbes>>| async move { readiness(&p) }),
        )
        .route(
            "/metrics",
            get(|State(p): State<Arc<OperatorProbes>>| async move { p.metrics.metrics_response() }),
        )
        .with_state(probes)
}

/// Ready once the caches synced, and while the last metadata DB read (a leader's) worked;
/// otherwise the cause, in a fixed summary.
fn readiness(p: &OperatorProbes) -> (StatusCode, String) {
    if !p.ready.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the AmpWorker and AmpWorkerFleet caches to sync".to_owned(),
        );
    }
    match p.metrics.metadata_db_cause() {
        None => (StatusCode::OK, "ready".to_owned()),
        Some(cause) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metadata DB unavailable: {cause}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_the_caches_then_follows_the_metadata_db() {
        let probes = OperatorProbes {
            ready: AtomicBool::new(false),
            metrics: Arc::new(OperatorMetrics::new()),
        };
        assert_eq!(
            readiness(&probes),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for the AmpWorker and AmpWorkerFleet caches to sync".to_owned()
            )
        );
        probes.ready.store(true, Ordering::Relaxed);
        assert_eq!(readiness(&probes), (StatusCode::OK, "ready".to_owned()));
        probes
            .metrics
            .set_metadata_db_cause(Some("connection refused"));
        assert_eq!(
            readiness(&probes),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "metadata DB unavailable: connection refused".to_owned()
            )
        );
        probes.metrics.set_metadata_db_cause(None);
        assert_eq!(readiness(&probes).0, StatusCode::OK);
    }
}
