//! Logging setup (JSON lines in containers, where stderr is not a TTY; readable text on a
//! terminal) and the `/metrics` response every process serves.

use std::io::IsTerminal;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr (where logs go) is not a terminal, text otherwise.
    Auto,
    Json,
    Text,
}

/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// `RUST_LOG` (or [`DEFAULT_FILTER`]), with kube's client quiet unless named: it logs
/// every failed connection at ERROR beside our own one WARN per outage.
fn filter() -> EnvFilter {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    let spec = if spec.contains("kube_client") {
        spec
    } else {
        format!("{spec},kube_client=off")
    };
    EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Installs the global subscriber. Filter from `RUST_LOG` (e.g. `debug`, or
/// `info,amp_operator::operator=debug`), default [`DEFAULT_FILTER`]. `NO_COLOR` turns
/// colour off even on a terminal. Logs go to stderr so that command output on stdout
/// stays machine-readable.
pub fn init(format: LogFormat) {
    let filter = filter();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: in a file or a log collector they are noise.
        .with_ansi(std::io::stderr().is_terminal() && !no_color());
    // try_init: tests may install a subscriber more than once per process.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// https://no-color.org: any non-empty `NO_COLOR` turns colour off.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Reports a fatal error once: one `error: ...` line on stderr (what humans, scripts and
/// tests read, whatever the log format) and, inside a Kubernetes container, the same text
/// as the termination message `kubectl describe pod` shows.
pub fn fatal(message: &str) {
    // The message may quote the database server or the API server.
    let message = &crate::terminal::escape_control(message);
    eprintln!("error: {message}");
    let path = std::path::Path::new("/dev/termination-log");
    if path.exists() {
        // Best effort: the kubelet caps the message at 4 KiB and may not provide the file.
        let _ = std::fs::write(path, message.chars().take(4000).collect::<String>());
    }
}

/// A registry as a `/metrics` answer (OpenMetrics text).
pub fn metrics_response(registry: &Registry) -> Response {
    let mut body = String::new();
    encode(&mut body, registry).expect("writing to a String cannot fail");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
