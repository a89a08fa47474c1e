//! `ampctl`: the operator's CLI over the Admin API.
//!
//! Exit codes: 0 success; 1 the answer is bad news (unknown worker, failed check, more
//! than one version with `--expect-single`); 2 the question could not be answered (bad
//! flags, invalid node id, Admin API unreachable, slow, or not speaking its protocol).
//!
//! It works against our Admin API and against Amp's own (see [`crate::admin_client`]);
//! `ls` and `get` are aliases, as in Amp's ampctl, so its users' scripts keep working.

mod commands;
mod escape;
mod jobs;
pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin_client::{AdminClient, ClientError};
use crate::build_info::BuildInfo;
use crate::secret_file::{SecretFile, SecretFileError};

#[derive(Debug, Parser)]
#[command(name = "ampctl", about = "Inspect the Amp worker fleet through the Admin API", version = BuildInfo::current().version)]
pub struct Cli {
    /// Admin API base URL.
    #[arg(
        long,
        global = true,
        env = "AMP_ADMIN_URL",
        default_value = "http://localhost:1610"
    )]
    pub admin_url: String,
    /// Bearer token for an Admin API started with --auth-token.
    #[arg(long, global = true, env = "AMP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// File holding the bearer token (instead of --auth-token; trailing newline
    /// ignored), e.g. the Admin API's token Secret mounted in a Pod.
    #[arg(
        long,
        global = true,
        env = "AMPCTL_AUTH_TOKEN_FILE",
        conflicts_with = "auth_token"
    )]
    pub auth_token_file: Option<PathBuf>,
    /// Give up on a request after this long.
    #[arg(long, global = true, env = "AMP_TIMEOUT", default_value = "10s", value_parser = crate::bounds::bounded::<100, 600_000>)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: TopCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Worker commands.
    #[command(subcommand)]
    Worker(WorkerCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// List workers (table, JSON or CSV).
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one worker.
    #[command(visible_alias = "get")]
    Inspect(InspectArgs),
    /// Count workers per version (like `sort | uniq -c | sort -rn`).
    Versions(VersionsArgs),
    /// Health and version check with an exit code, for scripts and CI.
    Check(CheckArgs),
}

/// The heartbeat age past which a worker is stale, unless `--stale-after` says otherwise:
/// the operator's default `heartbeatTimeoutSeconds` and the Admin API's stale gauge too.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30);
/// [`DEFAULT_STALE_AFTER`] as clap's default text (a unit test keeps the two equal).
const DEFAULT_STALE_AFTER_ARG: &str = "30s";

/// `check --job-pickup-timeout`'s default: [`jobs::PICKUP_TIMEOUT_SECS`] (a unit test
/// keeps the two equal).
const DEFAULT_JOB_PICKUP_TIMEOUT_ARG: &str = "120s";

/// How long a worker may be stopped (no process holds its node id lock) before `check`
/// and `versions` retire it: the operator's `--gc-stopped-after` default, after which it
/// collects the worker's AmpWorker (a unit test keeps the two equal).
const DEFAULT_FORGET_STOPPED_AFTER_ARG: &str = "15m";

/// Which workers `check` and `versions` judge. Amp never deletes a `workers` row, so
/// every worker that ever ran stays listed: a stopped one is judged (a crash is a
/// failure) until it has been stopped `--forget-stopped-after`, then retired.
#[derive(Debug, Args)]
pub struct Retirement {
    /// A worker stopped longer than this (no process holds its node id; its last
    /// heartbeat is when it stopped) is retired: counted in one line, not judged.
    #[arg(long, env = "AMPCTL_FORGET_STOPPED_AFTER", default_value = DEFAULT_FORGET_STOPPED_AFTER_ARG, value_parser = crate::bounds::bounded::<1_000, 2_592_000_000>)]
    pub forget_stopped_after: Duration,
    /// Judge retired workers too.
    #[arg(long, env = "AMPCTL_ALL")]
    pub all: bool,
}

impl Retirement {
    /// The retirement delay in seconds; `None` with `--all`.
    pub fn forget_secs(&self) -> Option<i64> {
        (!self.all).then_some(self.forget_stopped_after.as_secs() as i64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the API's JSON document, timestamps in whole seconds (same as --output json).
    #[arg(long, env = "AMPCTL_JSON", conflicts_with = "output")]
    pub json: bool,
    /// Output format: table (the default), json or csv.
    #[arg(long, short = 'o', env = "AMPCTL_OUTPUT", value_enum)]
    pub output: Option<Output>,
    /// Only workers whose last heartbeat is older than this (e.g. 30s); also the
    /// threshold of the STATUS column (default 30s, as for `check`).
    #[arg(long, env = "AMPCTL_STALE_AFTER", value_parser = crate::bounds::bounded::<1_000, 2_592_000_000>)]
    pub stale_after: Option<Duration>,
    /// Redraw the table until interrupted.
    #[arg(long, short = 'w', env = "AMPCTL_WATCH", conflicts_with_all = ["json", "output"])]
    pub watch: bool,
    /// Redraw period for --watch.
    #[arg(long, env = "AMPCTL_WATCH_INTERVAL", default_value = "5s", value_parser = crate::bounds::bounded::<500, 3_600_000>, requires = "watch")]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Node id.
    pub id: String,
    /// Print the API's JSON object, timestamps in whole seconds.
    #[arg(long, env = "AMPCTL_JSON")]
    pub json: bool,
    /// Heartbeat age above which the worker is shown as Stale (as for `check`).
    #[arg(long, env = "AMPCTL_STALE_AFTER", default_value = DEFAULT_STALE_AFTER_ARG, value_parser = crate::bounds::bounded::<1_000, 2_592_000_000>)]
    pub stale_after: Duration,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// Exit 1 when more than one version runs.
    #[arg(long, env = "AMPCTL_EXPECT_SINGLE")]
    pub expect_single: bool,
    /// Print the counts as JSON: `{"versions": [{"version", "count"}], "mismatch",
    /// "retired"}`.
    #[arg(long, env = "AMPCTL_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub retirement: Retirement,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Heartbeat age above which a worker fails the check.
    #[arg(long, env = "AMPCTL_STALE_AFTER", default_value = DEFAULT_STALE_AFTER_ARG, value_parser = crate::bounds::bounded::<1_000, 2_592_000_000>)]
    pub stale_after: Duration,
    /// Every worker must run this version.
    #[arg(long, env = "AMPCTL_EXPECT_VERSION")]
    pub expect_version: Option<String>,
    /// A job SCHEDULED longer than this on a heartbeating worker fails it: not accepting
    /// jobs (the operator's default `jobPickupTimeoutSeconds`; Amp's worker looks for its
    /// jobs every 60 s). Judged where the Admin API serves each worker's jobs.
    #[arg(long, env = "AMPCTL_JOB_PICKUP_TIMEOUT", default_value = DEFAULT_JOB_PICKUP_TIMEOUT_ARG, value_parser = crate::bounds::bounded::<1_000, 2_592_000_000>)]
    pub job_pickup_timeout: Duration,
    /// Print the verdict as JSON (`ok`, counts, every finding); the exit code is the same.
    #[arg(long, env = "AMPCTL_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub retirement: Retirement,
}

/// What went wrong, mapped to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("worker \"{0}\" not found")]
    NotFound(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    TokenFile(#[from] SecretFileError),
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::NotFound(_) => 1,
            _ => 2,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            // One line, whatever the server put in its error message.
            eprintln!("error: {}", escape::escape_control(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode, CtlError> {
    let token = match &cli.auth_token_file {
        Some(path) => Some(SecretFile::new("the auth token file", path).read()?),
        None => cli.auth_token,
    };
    let client = AdminClient::new(&cli.admin_url, token, cli.timeout)?;
    let TopCommand::Worker(command) = cli.command;
    match command {
        WorkerCommand::List(args) if args.watch => commands::watch(&client, args).await,
        WorkerCommand::List(args) => commands::list(&client, args).await,
        WorkerCommand::Inspect(args) => commands::inspect(&client, args).await,
        WorkerCommand::Versions(args) => commands::versions(&client, args).await,
        WorkerCommand::Check(args) => commands::check(&client, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> WorkerCommand {
        let TopCommand::Worker(command) = Cli::parse_from(args).command;
        command
    }

    #[test]
    fn list_inspect_and_check_judge_staleness_by_the_same_default() {
        let WorkerCommand::Check(check) = parse(&["ampctl", "worker", "check"]) else {
            panic!("check")
        };
        let WorkerCommand::Inspect(inspect) = parse(&["ampctl", "worker", "inspect", "w1"]) else {
            panic!("inspect")
        };
        assert_eq!(check.stale_after, DEFAULT_STALE_AFTER);
        assert_eq!(inspect.stale_after, DEFAULT_STALE_AFTER);
        assert_eq!(commands::status_threshold(None), 30);
        assert_eq!(check.retirement.forget_secs(), Some(900));
        assert_eq!(
            check.job_pickup_timeout.as_secs() as i64,
            jobs::PICKUP_TIMEOUT_SECS
        );
        let WorkerCommand::Versions(all) = parse(&["ampctl", "worker", "versions", "--all"]) else {
            panic!("versions")
        };
        assert_eq!(all.retirement.forget_secs(), None);
        assert_eq!(
            commands::status_threshold(Some(Duration::from_secs(90))),
            90
        );
    }

    #[test]
    fn workers_are_retired_when_the_operator_collects_their_ampworkers() {
        let operator = <crate::operator::OperatorArgs as clap::Args>::augment_args(
            clap::Command::new("operator"),
        );
        let gc = operator
            .get_arguments()
            .find(|a| a.get_id() == "gc_stopped_after")
            .expect("--gc-stopped-after");
        let defaults: Vec<_> = gc.get_default_values().iter().map(|v| v.to_str()).collect();
        assert_eq!(defaults, [Some(DEFAULT_FORGET_STOPPED_AFTER_ARG)]);
    }
}
