//! Read-only Admin API. Placeholder: replaced by the Admin API issue.

#[derive(Debug, clap::Args)]
pub struct AdminApiArgs {}

#[derive(Debug, thiserror::Error)]
#[error("the Admin API is not built yet")]
pub struct AdminApiError;

pub async fn main(_args: AdminApiArgs, _shutdown: tokio_util::sync::CancellationToken) -> Result<(), AdminApiError> {
    Err(AdminApiError)
}
