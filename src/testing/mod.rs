//! Support for tests, benchmarks and the quickstart: real PostgreSQL, no mocks.

pub mod postgres;
