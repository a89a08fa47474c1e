//! The Kubernetes operator: CRDs, status logic and the controller.

pub mod crd;
pub mod crdgen;
pub mod naming;
pub mod status;

pub use crdgen::{crd_yaml, write_crds};

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {}

pub async fn main(
    _args: OperatorArgs,
    _shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), OperatorError> {
    Ok(())
}
