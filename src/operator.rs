//! Kubernetes operator. Placeholder: replaced by the Operator issue.

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {}

#[derive(Debug, thiserror::Error)]
#[error("the operator is not built yet")]
pub struct OperatorError;

pub async fn main(_args: OperatorArgs, _shutdown: tokio_util::sync::CancellationToken) -> Result<(), OperatorError> {
    Err(OperatorError)
}

pub fn crd_yaml() -> Result<String, OperatorError> {
    Err(OperatorError)
}
