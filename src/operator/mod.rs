//! The Kubernetes operator: CRDs, status logic and the controller.

pub mod cache;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod fleet_status;
pub mod metrics;
pub mod mirror;
pub mod naming;
pub mod plan;
pub mod pods;
mod probes;
pub mod remediation;
mod run;
pub mod status;

use std::net::SocketAddr;
use std::time::Duration;

pub use crdgen::{crd_yaml, write_crds};
pub use run::{PodAccess, check_crds, main, pod_access};

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub credentials: crate::metadata_db::DbCredentialArgs,
    /// Namespace whose AmpWorkers and fleets this operator manages.
    #[arg(long, env = "AMP_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "AMP_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Only the holder of the Lease writes; turn off for a single local replica.
    #[arg(long, env = "AMP_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the coordination.k8s.io Lease (in --namespace).
    #[arg(long, env = "AMP_LEASE_NAME", default_value = "amp-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease and in events (the chart passes the Pod's
    /// name). The default is this host's name (a Pod's name inside Kubernetes).
    #[arg(long, env = "POD_NAME", default_value_t = default_identity())]
    pub identity: String,
    /// Lease duration; a dead leader is replaced after at most this long.
    #[arg(long, env = "AMP_LEASE_DURATION", default_value = "15s", value_parser = crate::bounds::bounded::<2_000, 300_000>)]
    pub lease_duration: Duration,
    /// How often the whole fleet is read from the metadata DB.
    #[arg(long, env = "AMP_POLL_INTERVAL", default_value = "1s", value_parser = crate::bounds::bounded::<100, 300_000>)]
    pub poll_interval: Duration,
    /// heartbeatAt alone is rewritten at most this often.
    #[arg(long, env = "AMP_STATUS_REFRESH", default_value = "60s", value_parser = crate::bounds::bounded::<1_000, 86_400_000>)]
    pub status_refresh: Duration,
    /// Heartbeat-only status refreshes per second for the whole fleet. Transitions are
    /// never limited; refreshes wait their turn (oldest first), so a large fleet's
    /// heartbeatAt refresh interval stretches to workers / budget (see docs/operator.md).
    #[arg(long, env = "AMP_STATUS_REFRESH_BUDGET", default_value_t = 20.0, value_parser = crate::bounds::rate)]
    pub status_refresh_budget: f64,
    /// Delete discovered AmpWorkers whose worker is gone this long (0 disables).
    #[arg(long, env = "AMP_GC_AFTER", default_value = "24h", value_parser = crate::bounds::zero_or_bounded::<1_000, 2_592_000_000>)]
    pub gc_after: Duration,
    /// Delete discovered AmpWorkers whose worker stopped this long ago (no process holds
    /// its node id lock: scaled down, retired); 0 disables. The row is never deleted.
    #[arg(long, env = "AMP_GC_STOPPED_AFTER", default_value = "15m", value_parser = crate::bounds::zero_or_bounded::<1_000, 2_592_000_000>)]
    pub gc_stopped_after: Duration,
    /// Heartbeat timeout of workers whose AmpWorker and fleet set none (whole seconds):
    /// past it a worker whose process holds its node id is Stale. Amp's scheduler stops
    /// assigning jobs to a worker after 5s.
    #[arg(long, env = "AMP_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = crate::bounds::bounded::<1_000, 3_600_000>)]
    pub heartbeat_timeout: Duration,
    /// Bound of each fleet snapshot read (pool acquire included; also the server-side
    /// statement_timeout): past it worker health goes `Unknown`.
    #[arg(long, env = "AMP_DB_TIMEOUT", default_value = "3s", value_parser = crate::bounds::bounded::<100, 600_000>)]
    pub db_timeout: Duration,
    /// Concurrent Kubernetes writes per cycle (a discovery or a fleet-wide transition is
    /// one write per worker).
    // 16: 50,000 workers were discovered about 10% sooner than with 8 on a two-core
    // control plane (docs/benchmarks.md); a steady fleet's refreshes are budgeted anyway.
    #[arg(long, env = "AMP_WRITE_CONCURRENCY", default_value_t = 16, value_parser = crate::bounds::count::<1, 256>)]
    pub write_concurrency: usize,
    /// How often Amp's jobs are read from the metadata DB (per-worker job counts, jobs not
    /// picked up, stranded jobs): a read of its own, less often than the fleet poll.
    #[arg(long, env = "AMP_JOBS_INTERVAL", default_value = "10s", value_parser = crate::bounds::bounded::<1_000, 600_000>)]
    pub jobs_interval: Duration,
}

/// A Kubernetes error as a person reads it: the API server's message, or the transport's
/// innermost cause, never a Debug dump.
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => {
            let mut cause: &dyn std::error::Error = other;
            while let Some(next) = cause.source() {
                cause = next;
            }
            cause.to_string()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "the {kind} CustomResourceDefinition is not installed in the cluster: install it with `kubectl apply -f crds/` (or the Helm chart)"
    )]
    CrdMissing { kind: &'static str },
    #[error("cannot reach the Kubernetes API server: {0}")]
    Kube(#[source] kube::Error),
    #[error("cannot reach the Kubernetes API server at {server}: {message}")]
    KubeAt { server: String, message: String },
    #[error(
        "no Kubernetes cluster configured ({0}): set KUBECONFIG to a cluster's kubeconfig, or run in a Pod; for a local cluster: ./scripts/kind-up.sh"
    )]
    KubeConfig(String),
    #[error("namespace {0:?} not found: kubectl create namespace {0}")]
    NamespaceMissing(String),
    #[error(transparent)]
    Db(#[from] crate::metadata_db::DbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("leader election failed: {0}")]
    LeaderElection(String),
}

impl OperatorError {
    /// Names the API server in a Kubernetes error (one line to act on), the rest as is.
    pub fn at(self, server: &str) -> Self {
        match self {
            Self::Kube(e) => Self::KubeAt {
                server: server.trim_end_matches('/').to_owned(),
                message: kube_message(&e),
            },
            other => other,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidOption(_)
            | Self::Db(
                crate::metadata_db::DbError::InvalidUrl { .. }
                | crate::metadata_db::DbError::Credentials(_),
            ) => 2,
            _ => 1,
        }
    }
}

/// `$HOSTNAME` when exported, else the kernel's host name, else `amp-operator-<pid>`
/// (shells keep `HOSTNAME` unexported, so the kernel's is what a terminal gets).
pub fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("amp-operator-{}", std::process::id()))
}
