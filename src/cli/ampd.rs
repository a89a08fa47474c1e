//! `ampd`: one binary, one role per subcommand (the Helm chart picks the role).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::build_info::BuildInfo;
use crate::telemetry::{self, LogFormat};
use crate::{admin_api, metadata_db, operator, shutdown, worker};

#[derive(Debug, Parser)]
#[command(name = "ampd", about = "Amp daemon: worker agent, Admin API, operator and migrations", version = short_version(), long_version = long_version())]
pub struct Cli {
    /// Log format (auto: JSON unless stderr is a terminal).
    #[arg(
        long,
        global = true,
        env = "AMP_LOG_FORMAT",
        value_enum,
        default_value = "auto"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker: lock the node id, register, heartbeat every second.
    Worker(worker::WorkerArgs),
    /// Apply the metadata DB migrations (idempotent).
    Migrate(MigrateArgs),
    /// Serve the read-only Admin API.
    AdminApi(admin_api::AdminApiArgs),
    /// Run the Kubernetes operator.
    Operator(operator::OperatorArgs),
    /// Print the CustomResourceDefinitions as YAML (or write one file each with --out-dir).
    Crdgen(CrdgenArgs),
    /// Print the Admin API's OpenAPI document (checked in as docs/openapi.json).
    Openapi,
}

#[derive(Debug, clap::Args)]
pub struct CrdgenArgs {
    /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
    #[arg(long, env = "AMP_CRDGEN_OUT_DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub credentials: crate::metadata_db::DbCredentialArgs,
    /// How long to keep trying while the server refuses connections (a database that is
    /// still starting); errors that waiting cannot fix stop at once.
    #[arg(long, env = "AMP_CONNECT_WAIT", default_value = "10s", value_parser = crate::bounds::bounded::<0, 600_000>)]
    pub connect_wait: std::time::Duration,
}

fn short_version() -> String {
    BuildInfo::current().version
}

fn long_version() -> String {
    BuildInfo::current().long_version()
}

/// Parses arguments, runs the role, maps errors to exit codes (2: bad input, 1: failure).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    // The operator runs one cycle at a time: on one thread its I/O (the snapshot read,
    // the status writes) wakes the thread that waits for it, where a worker pool woke
    // the `block_on` thread from another one on every socket event (a tenth of its CPU
    // in parking and unparking; docs/benchmarks.md, issue 32). The Admin API serves
    // requests in parallel and keeps the pool.
    let mut builder = match cli.command {
        Command::Operator(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    let shutdown = match shutdown::on_signals() {
        Ok(token) => token,
        Err(err) => return fail(1, format!("cannot install signal handlers: {err}")),
    };
    match command {
        Command::Worker(args) => match worker::main(args, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err.exit_code(), err.to_string()),
        },
        Command::Migrate(args) => match migrate(&args.credentials, args.connect_wait).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(
                if matches!(
                    err,
                    metadata_db::DbError::InvalidUrl { .. } | metadata_db::DbError::Credentials(_)
                ) {
                    2
                } else {
                    1
                },
                err.to_string(),
            ),
        },
        Command::AdminApi(args) => match admin_api::main(args, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(1, err.to_string()),
        },
        Command::Operator(args) => match operator::main(args, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err.exit_code(), err.to_string()),
        },
        Command::Openapi => match admin_api::openapi().to_pretty_json() {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(1, format!("cannot render the OpenAPI document: {err}")),
        },
        Command::Crdgen(args) => {
            let result = match args.out_dir {
                Some(dir) => operator::write_crds(&dir),
                None => operator::crd_yaml().map(|yaml| print!("{yaml}")),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(1, err.to_string()),
            }
        }
    }
}

/// Prints one line: what was applied, or the foreign schema found and left alone.
/// Waits up to `connect_wait` for a server still starting (the chart's bundled
/// PostgreSQL may be when the init container runs).
async fn migrate(
    credentials: &metadata_db::DbCredentialArgs,
    connect_wait: std::time::Duration,
) -> Result<(), metadata_db::DbError> {
    let url = &metadata_db::Credentials::from_args(credentials).read()?.url;
    let pool = metadata_db::connect_pool_waiting(url, "ampd-migrate", 2, connect_wait).await?;
    let outcome = metadata_db::migrate(&pool).await?;
    // In words, as printed (the outcome's Debug form is for developers).
    let summary = outcome.summary();
    tracing::info!(database = %metadata_db::redact_url(url), outcome = %summary, "migrate done");
    println!("{summary}");
    Ok(())
}

/// Reports the error once (see [`telemetry::fatal`]) and maps it to the exit code.
fn fail(code: u8, message: String) -> ExitCode {
    telemetry::fatal(&message);
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_every_roles_command_line_hides_the_password() {
        const S: &str = "S3cr3tPw";
        let raw = format!("postgres://amp:{S}@db/amp?password={S}");
        for role in ["worker", "admin-api", "operator", "migrate"] {
            let mut args = vec!["ampd", role, "--database-url", &raw];
            if role == "worker" {
                args.extend(["--node-id", "w1"]);
            }
            let cli = Cli::try_parse_from(&args).expect("parses");
            let debug = format!("{cli:?}");
            assert!(!debug.contains(S), "{role}: {debug}");
            assert!(debug.contains("***"), "{role}: {debug}");
        }
    }
}
