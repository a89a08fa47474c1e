//! Every `helm upgrade` the README and docs/ show keeps the release's other values
//! (`--reuse-values` or a values file): without either, Helm resets them to the chart's
//! defaults. Where the doc is about an existing Amp (docs/amp.md, the existing-Amp
//! section of docs/helm.md), each upgrade is rendered with `helm template` the way
//! `--reuse-values` applies it (the doc's install values, then the upgrade's `--set`s)
//! and must stay in existing-Amp mode: no bundled PostgreSQL, no migration Job, no worker
//! StatefulSet of ours. The same upgrade flags alone (what Helm does without
//! `--reuse-values`) render the bundled PostgreSQL and our workers, so the check can fail.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::{have_helm, tool, yaml_objects};
use regex::Regex;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A version for the docs' `<new>` placeholder.
const NEW_VERSION: &str = "v0.0.36-12-g0a1b2c3d";

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// README.md and every docs/*.md, by path.
fn documents() -> Vec<(String, String)> {
    let mut docs = vec![("README.md".to_owned(), read("README.md"))];
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    for name in names {
        let rel = format!("docs/{name}");
        docs.push((rel.clone(), read(&rel)));
    }
    docs
}

/// Helm commands (`helm upgrade …`, `helm install …`) written in `text`: lines of fenced
/// blocks (continuations joined) and inline code spans with arguments, whitespace
/// normalised.
fn helm_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut prose = String::new();
    let mut fenced = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            prose.push_str(line);
            prose.push('\n');
            continue;
        }
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(&format!("{head} ")),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    let inline = Regex::new(r"`([^`]+)`").unwrap();
    commands.extend(inline.captures_iter(&prose).map(|c| c[1].to_owned()));
    commands
        .into_iter()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|c| c.trim_start_matches("$ ").to_owned())
        .filter(|c| {
            (c.starts_with("helm upgrade ") || c.starts_with("helm install "))
                && c.contains(" charts/amp")
        })
        .collect()
}

fn is_upgrade(command: &str) -> bool {
    command.starts_with("helm upgrade ")
}

/// The `--set` values and `-f` files of a command, in order.
fn values_flags(command: &str) -> Vec<String> {
    let tokens: Vec<&str> = command.split_whitespace().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            "--set" | "-f" | "--values" if i + 1 < tokens.len() => {
                flags.push(tokens[i].to_owned());
                flags.push(tokens[i + 1].replace("<new>", NEW_VERSION));
                i += 2;
            }
            other if other.starts_with("--set=") => {
                flags.push(other.replace("<new>", NEW_VERSION));
                i += 1;
            }
            _ => i += 1,
        }
    }
    flags
}

fn keeps_values(command: &str) -> bool {
    let tokens: Vec<&str> = command.split_whitespace().collect();
    tokens
        .iter()
        .any(|t| matches!(*t, "--reuse-values" | "-f" | "--values") || t.starts_with("--values="))
}

#[test]
fn every_helm_upgrade_in_the_docs_keeps_the_release_values() {
    let mut seen = 0;
    for (path, text) in documents() {
        for command in helm_commands(&text).iter().filter(|c| is_upgrade(c)) {
            seen += 1;
            assert!(
                keeps_values(command),
                "{path}: `{command}` resets every value it does not set: add --reuse-values (or -f VALUES)"
            );
        }
    }
    // README, k3s, external DB, RDS, CloudNativePG, rollouts, existing Amp (two docs).
    assert!(seen >= 8, "found only {seen} helm upgrade commands");
}

/// `helm template` of the chart with `flags`; its objects.
fn render(flags: &[String]) -> Vec<Value> {
    let out = Command::new(tool("helm"))
        .current_dir(ROOT)
        .args(["template", "amp", "charts/amp", "-n", "amp"])
        .args(flags)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_objects(&String::from_utf8_lossy(&out.stdout))
}

/// Objects that only exist outside existing-Amp mode: the bundled PostgreSQL and our
/// worker StatefulSet, the migration Job.
fn writers_of_ours(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("StatefulSet" | "Job")))
        .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
        .collect()
}

fn fleet_version(objects: &[Value]) -> Option<String> {
    objects
        .iter()
        .find(|o| o["kind"] == "AmpWorkerFleet")
        .and_then(|o| o["spec"]["version"].as_str().map(str::to_owned))
}

/// The part of a doc about an existing Amp: all of docs/amp.md, the existing-Amp section
/// of docs/helm.md.
fn existing_amp_docs() -> Vec<(&'static str, String)> {
    let helm = read("docs/helm.md");
    let start = helm
        .find("\n## Existing Amp")
        .expect("docs/helm.md has an existing-Amp section");
    let section = &helm[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    vec![
        ("docs/amp.md", read("docs/amp.md")),
        ("docs/helm.md#existing-amp", section[..end].to_owned()),
    ]
}

#[test]
fn upgrades_in_the_existing_amp_docs_stay_in_existing_amp_mode() {
    if !have_helm() {
        if amp_operator::testing::envtest::in_ci() {
            panic!("helm missing in CI (.ci/install-tools.sh installs it)");
        }
        eprintln!("SKIPPED (not run, not passed): helm not found (.ci/install-tools.sh)");
        return;
    }
    for (doc, text) in existing_amp_docs() {
        let commands = helm_commands(&text);
        let install = commands
            .iter()
            .find(|c| c.starts_with("helm install "))
            .unwrap_or_else(|| panic!("{doc}: no helm install"));
        let installed = values_flags(install);
        let installed_objects = render(&installed);
        assert_eq!(
            writers_of_ours(&installed_objects),
            Vec::<String>::new(),
            "{doc}: `{install}`"
        );
        let upgrades: Vec<&String> = commands
            .iter()
            .filter(|c| is_upgrade(c) && c.contains("--reuse-values"))
            .collect();
        assert!(
            !upgrades.is_empty(),
            "{doc}: no upgrade with --reuse-values"
        );
        for upgrade in upgrades {
            let own = values_flags(upgrade);
            // --reuse-values: the release's values, then this command's.
            let reused: Vec<String> = installed.iter().chain(&own).cloned().collect();
            let objects = render(&reused);
            assert_eq!(
                writers_of_ours(&objects),
                Vec::<String>::new(),
                "{doc}: `{upgrade}` leaves existing-Amp mode"
            );
            if own.iter().any(|flag| flag.contains("fleet.version=")) {
                assert_eq!(
                    fleet_version(&objects).as_deref(),
                    Some(NEW_VERSION),
                    "{doc}: `{upgrade}` moves the fleet's version"
                );
            }
            // Without --reuse-values Helm starts from the chart's defaults: the check bites.
            let reset = writers_of_ours(&render(&own));
            assert!(
                reset.iter().filter(|o| o.contains("StatefulSet")).count() == 2,
                "{doc}: `{upgrade}` without its install values should render the bundled PostgreSQL and our workers: {reset:?}"
            );
        }
    }
}

#[test]
fn commands_are_found_in_blocks_and_inline() {
    let text = "x `helm upgrade` y `helm upgrade amp charts/amp -n amp -f v.yaml`\n\
                ```bash\nhelm upgrade --install amp charts/amp -n amp \\\n  --set a=b\n```\n";
    assert_eq!(
        helm_commands(text),
        [
            "helm upgrade --install amp charts/amp -n amp --set a=b",
            "helm upgrade amp charts/amp -n amp -f v.yaml",
        ]
    );
    assert!(!keeps_values(
        "helm upgrade amp charts/amp --set fleet.version=<new>"
    ));
    assert_eq!(
        values_flags("helm upgrade amp charts/amp --reuse-values --set fleet.version=<new>"),
        ["--set", &format!("fleet.version={NEW_VERSION}")]
    );
}
