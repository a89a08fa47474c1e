//! The one way every HTTP server here (Admin API, worker probes, operator probes) is
//! served, with the edge a hostile or broken client meets:
//!
//! - a header-read timeout: a client that never finishes its request headers is dropped
//!   (axum::serve has none, so one such client could hold a connection for ever);
//! - a per-request timeout (408) and a bound on requests in flight;
//! - a bound on open connections (beyond it, new connections wait in the kernel backlog);
//! - a request body limit (413; every endpoint is a GET).
//!
//! HTTP/1.1 only: probes, scrapers and ampctl speak it, and it keeps the surface small.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Limits of one server; [`Limits::default`] suits every server in this project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send its request headers, from the moment it connects.
    pub header_read_timeout: Duration,
    /// Time a request may take (handler included) before it is answered 408.
    pub request_timeout: Duration,
    /// Open connections; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Requests handled at once (the rest queue).
    pub max_in_flight: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            // Far above what probes and a handful of ampctl users need, below the
            // process's descriptor limit: 1,000 stalled clients cannot starve a real one.
            max_connections: 4096,
            max_in_flight: 256,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (up
/// to the request timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The address actually bound: with `--listen 127.0.0.1:0` nothing else tells it.
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving HTTP");
    }
    let app = router
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_in_flight,
        ));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let open = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        open.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
                }
            }
        });
    }
    open.close();
    let _ = tokio::time::timeout(limits.request_timeout, open.wait()).await;
    Ok(())
}
