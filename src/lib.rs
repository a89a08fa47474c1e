//! amp-operator: the Amp worker fleet, native to Kubernetes.
//!
//! - [`metadata_db`]: the PostgreSQL worker registry (schema, queries, advisory locks).
//! - [`worker`]: the `ampd worker` agent.
//! - [`admin_api`] / [`admin_client`] / [`ampctl`]: the read-only HTTP API and its CLI.
//! - [`operator`]: CRDs and the controller that mirrors the registry into Kubernetes.
//! - [`cli`]: the `ampd` and `ampctl` command lines (the binaries are thin shells).

pub mod admin_api;
pub mod admin_client;
pub mod ampctl;
pub mod backoff;
pub mod bounds;
pub mod build_info;
pub mod cli;
pub mod heap;
pub mod http_server;
pub mod metadata_db;
pub mod node_id;
pub mod operator;
pub mod secret_file;
pub mod shared;
pub mod shutdown;
pub mod telemetry;
pub mod terminal;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamps;
pub mod worker;
