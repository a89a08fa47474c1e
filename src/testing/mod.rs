//! Support for tests, benchmarks and the quickstart: real PostgreSQL, and an in-memory
//! Kubernetes API server for the operator (no cluster runs in CI).

pub mod amp_db;
pub mod envtest;
pub mod fake_apiserver;
pub mod pg_tls;
pub mod postgres;
