//! `ampctl`: the operator's CLI over the Admin API.
//!
//! Exit codes: 0 success; 1 the answer is bad news (unknown worker, failed check, more
//! than one version with `--expect-single`); 2 the question could not be answered (bad
//! flags, invalid node id, Admin API unreachable, slow, or not speaking its protocol).

mod escape;
pub mod render;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin_api::wire::{Worker, WorkerList};
use crate::admin_client::{AdminClient, ClientError};
use crate::build_info::BuildInfo;
use crate::node_id::AmpNodeId;

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
    /// Give up on a request after this long.
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
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
    List(ListArgs),
    /// Show one worker.
    Inspect(InspectArgs),
    /// Count workers per version (like `sort | uniq -c | sort -rn`).
    Versions(VersionsArgs),
    /// Health and version check with an exit code, for scripts and CI.
    Check(CheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print exactly the API's JSON (same as --output json).
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
    /// Only workers whose last heartbeat is older than this (e.g. 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub stale_after: Option<Duration>,
    /// Redraw the table until interrupted.
    #[arg(long, short = 'w', conflicts_with_all = ["json", "output"])]
    pub watch: bool,
    /// Redraw period for --watch.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, requires = "watch")]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Node id.
    pub id: String,
    /// Print exactly the API's JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// Exit 1 when more than one version runs.
    #[arg(long)]
    pub expect_single: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Heartbeat age above which a worker fails the check.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,
    /// Every worker must run this version.
    #[arg(long)]
    pub expect_version: Option<String>,
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
}

impl CtlError {
    fn exit_code(&self) -> u8 {
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
    let client = AdminClient::new(&cli.admin_url, cli.auth_token, cli.timeout)?;
    let TopCommand::Worker(command) = cli.command;
    match command {
        WorkerCommand::List(args) if args.watch => watch(&client, args.interval).await,
        WorkerCommand::List(args) => list(&client, args).await,
        WorkerCommand::Inspect(args) => inspect(&client, args).await,
        WorkerCommand::Versions(args) => versions(&client, args).await,
        WorkerCommand::Check(args) => check(&client, args).await,
    }
}

fn print(out: &str) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The API's bytes, newline-terminated.
fn print_body(body: &[u8]) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(body)?;
    if !body.ends_with(b"\n") {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

/// The workers with server-supplied text escaped, for human-readable output.
fn terminal(workers: &[Worker]) -> Vec<Worker> {
    workers.iter().map(escape::for_terminal).collect()
}

async fn list(client: &AdminClient, args: ListArgs) -> Result<ExitCode, CtlError> {
    let mut workers = client.list_workers().await?;
    let now = Utc::now();
    let output = if args.json {
        Output::Json
    } else {
        args.output.unwrap_or(Output::Table)
    };
    if let Some(threshold) = args.stale_after {
        let secs = threshold.as_secs() as i64;
        workers.retain(|w| render::is_stale(w, now, secs));
    }
    match output {
        // Exactly the API's shape (`{"workers":[...]}`), whatever the number of pages.
        Output::Json => print_body(
            &serde_json::to_vec(&WorkerList {
                workers,
                continue_token: None,
            })
            .map_err(std::io::Error::other)?,
        )?,
        Output::Csv => print(&render::csv(&workers))?,
        Output::Table => print(&render::table(&terminal(&workers), now))?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn watch(client: &AdminClient, interval: Duration) -> Result<ExitCode, CtlError> {
    loop {
        let frame = match client.list_workers().await {
            Ok(workers) => render::table(&terminal(&workers), Utc::now()),
            Err(err) => format!("error: {}\n", escape::escape_control(&err.to_string())),
        };
        // Clear screen, home cursor, header like watch(1).
        print(&format!(
            "\x1b[2J\x1b[HEvery {}: ampctl worker list    {}\n\n{frame}",
            humantime::format_duration(interval),
            crate::timestamps::format_timestamp(&Utc::now())
        ))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn inspect(client: &AdminClient, args: InspectArgs) -> Result<ExitCode, CtlError> {
    // Amp's rule, not our worker's: the id may be one Amp's own worker registered.
    let id = AmpNodeId::parse(&args.id).map_err(|e| CtlError::Usage(e.to_string()))?;
    let fetched = match client.get_worker(id.as_str()).await {
        Err(err) if err.is_not_found() => return Err(CtlError::NotFound(id.to_string())),
        other => other?,
    };
    if args.json {
        print_body(&fetched.body)?;
    } else {
        print(&render::inspect(
            &escape::for_terminal(&fetched.value),
            Utc::now(),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn versions(client: &AdminClient, args: VersionsArgs) -> Result<ExitCode, CtlError> {
    let workers: Vec<Worker> = client.list_workers().await?;
    let counts = render::version_counts(&workers);
    if args.json {
        let json = serde_json::json!({
            "versions": counts.iter().map(|(c, v)| serde_json::json!({"version": v, "count": c})).collect::<Vec<_>>(),
            "mismatch": counts.len() > 1,
        });
        print(&format!("{json}\n"))?;
    } else {
        let shown: Vec<(usize, String)> = counts
            .iter()
            .map(|(n, v)| (*n, escape::escape_control(v)))
            .collect();
        print(&render::versions_text(&shown))?;
    }
    if counts.len() > 1 {
        eprintln!("⚠ version mismatch: {} versions running", counts.len());
        if args.expect_single {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(client: &AdminClient, args: CheckArgs) -> Result<ExitCode, CtlError> {
    let workers = client.list_workers().await?;
    if workers.is_empty() {
        // An empty fleet cannot pass a health check: a rollout that lost every worker must fail.
        print("❌ no workers registered\n")?;
        return Ok(ExitCode::from(1));
    }
    let findings = render::check(
        &terminal(&workers),
        Utc::now(),
        args.stale_after.as_secs() as i64,
        args.expect_version.as_deref(),
    );
    let out: String = findings.iter().map(|f| f.line() + "\n").collect();
    print(&out)?;
    let problems = findings.iter().filter(|f| f.is_problem()).count();
    if problems > 0 {
        eprintln!("{problems} problem(s) across {} worker(s)", workers.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
