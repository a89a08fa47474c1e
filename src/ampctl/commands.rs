//! The `ampctl worker` commands. Each reads only what it shows: `list --json` and the
//! stale filter need just the list, while the table, CSV, `versions` and `check` need
//! every worker's details, which Amp's Admin API answers one worker at a time.

use std::io::IsTerminal;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::jobs::FleetJobs;
use super::{CheckArgs, CtlError, InspectArgs, ListArgs, Output, VersionsArgs, escape, render};
use crate::admin_api::wire::Worker;
use crate::admin_client::{AdminClient, Doc, Listed};
use crate::node_id::AmpNodeId;

fn print(out: &str) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// A JSON document, newline-terminated.
fn print_body(body: &[u8]) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(body)?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// The workers with server-supplied text escaped, for human-readable output.
fn terminal(workers: &[Worker]) -> Vec<Worker> {
    workers.iter().map(escape::for_terminal).collect()
}

/// The stderr line for an Admin API that does not say whether worker processes run
/// (Amp's own): STATUS and `check` then judge heartbeats only, and nothing is retired.
fn cannot_tell_note(workers: &[Worker]) -> Result<(), CtlError> {
    if workers.iter().any(|w| w.running.is_none()) {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(render::CANNOT_TELL_NOTE.as_bytes())?;
    }
    Ok(())
}

/// Prints [`render::retired_note`] to stderr, if any worker was retired.
fn retired_note(retired: usize, args: &super::Retirement, verb: &str) -> Result<(), CtlError> {
    let forget = args.forget_stopped_after.as_secs() as i64;
    if let Some(line) = render::retired_note(retired, forget, verb) {
        std::io::stderr().lock().write_all(line.as_bytes())?;
    }
    Ok(())
}

fn stale_filter(stale_after: Option<Duration>, now: DateTime<Utc>) -> impl Fn(&Listed) -> bool {
    move |entry| {
        stale_after.is_none_or(|t| render::older_than(entry.heartbeat_at, now, t.as_secs() as i64))
    }
}

/// The STATUS threshold of `list`, in seconds: its `--stale-after` filter, else
/// [`super::DEFAULT_STALE_AFTER`] (so a listed worker is Stale exactly when `check` fails it).
pub(super) fn status_threshold(stale_after: Option<Duration>) -> i64 {
    stale_after.unwrap_or(super::DEFAULT_STALE_AFTER).as_secs() as i64
}

pub(super) async fn list(client: &AdminClient, args: ListArgs) -> Result<ExitCode, CtlError> {
    let listing = client.list().await?;
    let now = Utc::now();
    let output = if args.json {
        Output::Json
    } else {
        args.output.unwrap_or(Output::Table)
    };
    // Heartbeats come with every list, so the filter runs before any detail request.
    let keep = stale_filter(args.stale_after, now);
    if output == Output::Json {
        // The server's document (pages joined), timestamps in our whole-second form.
        let body = listing
            .document(keep)
            .map_err(|e| client.invalid_list(&e.to_string()))?;
        print_body(&body)?;
        return Ok(ExitCode::SUCCESS);
    }
    let all = listing.into_entries();
    let registered = all.len();
    let entries: Vec<Listed> = all.into_iter().filter(keep).collect();
    // The CSV is the seeds' inventory export, byte for byte: no jobs in it.
    let jobs = match output {
        Output::Csv => FleetJobs::default(),
        _ => FleetJobs::of(client, &entries).await?,
    };
    let workers = client.complete(entries).await?;
    match output {
        Output::Csv => print(&render::csv(&workers))?,
        _ => print(&table_with_note(
            &workers,
            &jobs,
            registered,
            now,
            args.stale_after,
        ))?,
    }
    cannot_tell_note(&workers)?;
    jobs_note(&jobs)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints why the jobs are unknown to stderr, if they are.
fn jobs_note(jobs: &FleetJobs) -> Result<(), CtlError> {
    if let Some(note) = jobs.note() {
        let line = escape::escape_control(note.trim_end()) + "\n";
        std::io::stderr().lock().write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Every worker with its details, and their jobs, from one listing.
async fn workers_with_jobs(client: &AdminClient) -> Result<(Vec<Worker>, FleetJobs), CtlError> {
    let entries = client.list().await?.into_entries();
    let jobs = FleetJobs::of(client, &entries).await?;
    Ok((client.complete(entries).await?, jobs))
}

/// The table, and under an empty one what it means.
fn table_with_note(
    workers: &[Worker],
    jobs: &FleetJobs,
    registered: usize,
    now: DateTime<Utc>,
    stale_after: Option<Duration>,
) -> String {
    let mut out = render::table(
        &terminal(workers),
        &jobs.for_workers(workers),
        now,
        status_threshold(stale_after),
    );
    if workers.is_empty() {
        out.push_str(&render::empty_note(
            registered,
            stale_after.map(|d| d.as_secs() as i64),
        ));
    }
    out
}

pub(super) async fn watch(client: &AdminClient, args: ListArgs) -> Result<ExitCode, CtlError> {
    let interval = args.interval;
    let threshold = status_threshold(args.stale_after);
    loop {
        let now = Utc::now();
        let frame = match workers_with_jobs(client).await {
            Ok((mut workers, jobs)) => {
                // The same rows as `list` with these flags: --stale-after filters here too.
                let registered = workers.len();
                if args.stale_after.is_some() {
                    workers.retain(|w| render::is_stale(w, now, threshold));
                }
                let mut frame = table_with_note(&workers, &jobs, registered, now, args.stale_after);
                if let Some(note) = jobs.note() {
                    frame.push_str(&escape::escape_control(note.trim_end()));
                    frame.push('\n');
                }
                frame
            }
            Err(err) => format!("error: {}\n", escape::escape_control(&err.to_string())),
        };
        // On a terminal: clear screen and home cursor, like watch(1). Into a pipe or a
        // file: plain frames appended one after another, no control codes.
        let clear = if std::io::stdout().is_terminal() {
            "\x1b[2J\x1b[H"
        } else {
            ""
        };
        print(&format!(
            "{clear}Every {}: ampctl worker list    {}\n\n{frame}",
            humantime::format_duration(interval),
            crate::timestamps::format_timestamp(&Utc::now())
        ))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

pub(super) async fn inspect(client: &AdminClient, args: InspectArgs) -> Result<ExitCode, CtlError> {
    // Amp's rule (Unicode letters allowed): ids Amp's workers registered must be reachable.
    let id = AmpNodeId::parse(&args.id).map_err(|e| CtlError::Usage(e.to_string()))?;
    let fetched = match client.get_worker(id.as_str()).await {
        Err(err) if err.is_not_found() => return Err(CtlError::NotFound(id.to_string())),
        other => other?,
    };
    if args.json {
        // The server's object, timestamps in our whole-second form (already so from ours).
        let mut doc: Doc = serde_json::from_slice(&fetched.body)
            .map_err(|e| client.invalid_list(&e.to_string()))?;
        doc.rewrite_timestamps();
        print_body(&serde_json::to_vec(&doc).map_err(std::io::Error::other)?)?;
    } else {
        let worker = crate::admin_client::whole_second_worker(fetched.value);
        let threshold = args.stale_after.as_secs() as i64;
        let now = Utc::now();
        let mut out = render::inspect(&escape::for_terminal(&worker), now, threshold);
        // Ours serves the worker's jobs with it; Amp's own has them only in its `/jobs`.
        let amp = match worker.running {
            None => Some(FleetJobs::from_amp(client, std::iter::once(id.as_str())).await?),
            Some(_) => None,
        };
        let jobs = match &amp {
            None => super::jobs::of_body(&fetched.body),
            Some(amp) => amp.get(id.as_str()).cloned(),
        };
        if let Some(jobs) = jobs {
            let heartbeating =
                !render::is_stopped(&worker) && !render::is_stale(&worker, now, threshold);
            out.push_str(&super::jobs::section(&jobs, heartbeating));
        }
        print(&out)?;
        cannot_tell_note(std::slice::from_ref(&worker))?;
        if let Some(amp) = &amp {
            jobs_note(amp)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn versions(
    client: &AdminClient,
    args: VersionsArgs,
) -> Result<ExitCode, CtlError> {
    let listed: Vec<Worker> = client.list_workers().await?;
    let forget = args.retirement.forget_secs();
    let (workers, retired) = render::without_retired(listed, Utc::now(), forget);
    let counts = render::version_counts(&workers);
    if args.json {
        let json = serde_json::json!({
            "versions": counts.iter().map(|(c, v)| serde_json::json!({"version": v, "count": c})).collect::<Vec<_>>(),
            "mismatch": counts.len() > 1,
            "retired": retired,
        });
        print(&format!("{json}\n"))?;
    } else {
        let shown: Vec<(usize, String)> = counts
            .iter()
            .map(|(n, v)| (*n, escape::escape_control(v)))
            .collect();
        print(&render::versions_text(&shown))?;
    }
    retired_note(retired, &args.retirement, "counted")?;
    cannot_tell_note(&workers)?;
    if counts.len() > 1 {
        eprintln!("⚠ version mismatch: {} versions running", counts.len());
        if args.expect_single {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn check(client: &AdminClient, args: CheckArgs) -> Result<ExitCode, CtlError> {
    let (listed, fleet_jobs) = workers_with_jobs(client).await?;
    let registered = listed.len();
    let now = Utc::now();
    let (workers, retired) = render::without_retired(listed, now, args.retirement.forget_secs());
    let threshold = args.stale_after.as_secs() as i64;
    let expected = args.expect_version.as_deref();
    jobs_note(&fleet_jobs)?;
    let jobs = fleet_jobs.for_workers(&workers);
    let pickup = Some(args.job_pickup_timeout.as_secs() as i64);
    let judge = |workers: &[Worker]| {
        render::check_with_jobs(workers, &jobs, now, threshold, pickup, expected)
    };
    if args.json {
        // Machine output: serde escapes what a terminal would need escaped.
        let findings = judge(&workers);
        print(&render::check_json(&findings, workers.len(), retired))?;
        let failed = workers.is_empty() || findings.iter().any(|f| f.is_problem());
        return Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    if workers.is_empty() {
        // An empty fleet cannot pass a health check: a rollout that lost every worker must
        // fail, and so must one whose every worker stopped long ago.
        print(&if registered == 0 {
            "❌ no workers registered\n".to_owned()
        } else {
            format!("❌ no workers to judge: all {registered} registered are retired\n")
        })?;
        retired_note(retired, &args.retirement, "judged")?;
        return Ok(ExitCode::from(1));
    }
    let findings = judge(&terminal(&workers));
    let out: String = findings.iter().map(|f| f.line() + "\n").collect();
    print(&out)?;
    retired_note(retired, &args.retirement, "judged")?;
    cannot_tell_note(&workers)?;
    let problems = findings.iter().filter(|f| f.is_problem()).count();
    if problems > 0 {
        eprintln!("{problems} problem(s) across {} worker(s)", workers.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
