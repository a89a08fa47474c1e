//! The Kubernetes operator: CRDs, status logic and the controller.

pub mod crd;
pub mod naming;
pub mod status;

use kube::CustomResourceExt;

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot render CRDs: {0}")]
    Render(#[from] serde_yaml::Error),
}

pub async fn main(
    _args: OperatorArgs,
    _shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), OperatorError> {
    Ok(())
}

pub fn crd_yaml() -> Result<String, OperatorError> {
    let a = serde_yaml::to_string(&crd::AmpWorker::crd())?;
    let b = serde_yaml::to_string(&crd::AmpWorkerFleet::crd())?;
    Ok(format!("---\n{a}---\n{b}"))
}
