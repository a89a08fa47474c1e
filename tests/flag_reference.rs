//! docs/configuration.md is the flag reference: for every command, each flag with its
//! environment variable, its default and its help line, exactly as `--help` has them.
//! Every flag has an environment variable. Regenerate the file with
//! `AMP_WRITE_REFERENCE=1 cargo nextest run --test flag_reference`.

use amp_operator::ampctl::Cli as AmpctlCli;
use amp_operator::cli::ampd::Cli as AmpdCli;
use clap::{Arg, Command, CommandFactory};

const DOC: &str = "docs/configuration.md";

/// The machine-specific default of `--identity`, written the way the docs say it.
fn shown_default(arg: &Arg) -> String {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    match values.as_slice() {
        [] => "none".to_owned(),
        [one]
            if arg.get_id() == "identity" && *one == amp_operator::operator::default_identity() =>
        {
            "the host name (`$HOSTNAME`, else the kernel's)".to_owned()
        }
        many => format!("`{}`", many.join(",")),
    }
}

fn flags(cmd: &Command) -> Vec<&Arg> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect()
}

fn table(cmd: &Command) -> String {
    let mut out = String::from("| flag | env | default | meaning |\n| --- | --- | --- | --- |\n");
    for arg in flags(cmd) {
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let help = arg
            .get_help()
            .map(|h| h.to_string().replace('|', "\\|"))
            .unwrap_or_default();
        let required = if arg.is_required_set() {
            "(required)".to_owned()
        } else {
            shown_default(arg)
        };
        out.push_str(&format!(
            "| `--{}` | {env} | {required} | {help} |\n",
            arg.get_long().unwrap_or_default()
        ));
    }
    out
}

/// (heading, command) for every runnable command, globals included in each.
fn commands() -> Vec<(String, Command)> {
    let mut ampd = AmpdCli::command();
    ampd.build();
    let mut ampctl = AmpctlCli::command();
    ampctl.build();
    let mut out = Vec::new();
    for sub in ampd.get_subcommands() {
        out.push((format!("ampd {}", sub.get_name()), sub.clone()));
    }
    for group in ampctl.get_subcommands().filter(|c| c.get_name() != "help") {
        for sub in group.get_subcommands().filter(|c| c.get_name() != "help") {
            out.push((
                format!("ampctl {} {}", group.get_name(), sub.get_name()),
                sub.clone(),
            ));
        }
    }
    out
}

fn render() -> String {
    let mut doc = String::from(
        "# Configuration\n\n\
         Every flag of every command, as `--help` shows it (generated: `AMP_WRITE_REFERENCE=1 \
         cargo nextest run --test flag_reference`; the test fails when this file and the \
         code differ). A flag's environment variable is read when the flag is not given. \
         Durations are written like `1s`, `500ms`, `2m`, `1h`; values out of range exit 2.\n\n\
         Logging, for every command: `RUST_LOG` sets the level (default `info`; e.g. `debug`, \
         or `info,amp_operator::operator=debug`), `NO_COLOR` turns colour off, and logs go \
         to stderr as JSON when stderr is not a terminal.\n",
    );
    for (heading, cmd) in commands() {
        if flags(&cmd).is_empty() {
            continue;
        }
        doc.push_str(&format!("\n## {heading}\n\n{}", table(&cmd)));
    }
    doc
}

#[test]
fn the_configuration_reference_matches_the_flags() {
    let want = render();
    if std::env::var_os("AMP_WRITE_REFERENCE").is_some() {
        std::fs::write(DOC, &want).expect("write docs/configuration.md");
    }
    let have = std::fs::read_to_string(DOC).unwrap_or_default();
    assert!(
        have == want,
        "{DOC} is out of date; regenerate it with AMP_WRITE_REFERENCE=1 cargo nextest run --test flag_reference\n--- want ---\n{want}"
    );
}

#[test]
fn every_flag_says_what_it_does() {
    let silent: Vec<String> = commands()
        .iter()
        .flat_map(|(heading, cmd)| {
            flags(cmd)
                .into_iter()
                .filter(|a| a.get_help().is_none_or(|h| h.to_string().trim().is_empty()))
                .map(move |a| format!("{heading} --{}", a.get_long().unwrap_or_default()))
        })
        .collect();
    assert!(silent.is_empty(), "flags without help: {silent:?}");
}

#[test]
fn every_flag_has_an_environment_variable() {
    let missing: Vec<String> = commands()
        .iter()
        .flat_map(|(heading, cmd)| {
            flags(cmd)
                .into_iter()
                .filter(|a| a.get_env().is_none())
                .map(move |a| format!("{heading} --{}", a.get_long().unwrap_or_default()))
        })
        .collect();
    assert!(missing.is_empty(), "flags without an env var: {missing:?}");
}
