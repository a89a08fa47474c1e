//! The shell scripts on a user's machine: the one-node cluster's port check and early-exit
//! report (e2e/node/lib.sh, run in isolation: the node itself needs root and images),
//! binaries found through cargo (CARGO_TARGET_DIR), and every script parses.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script` in bash from the checkout with e2e/node/lib.sh sourced, its state in `dir`.
fn with_node_lib(dir: &Path, script: &str) -> Output {
    Command::new("bash")
        .current_dir(checkout())
        .env("AMP_NODE_DIR", dir)
        .args([
            "-c",
            &format!("set -euo pipefail; . e2e/node/lib.sh; {script}"),
        ])
        .output()
        .expect("run bash")
}

fn have_ss() -> bool {
    Command::new("ss").arg("-V").output().is_ok()
}

#[test]
fn node_port_check_fails_at_once_naming_the_port_and_its_holder() {
    if !have_ss() {
        eprintln!("SKIPPED (not run, not passed): node port check: `ss` (iproute2) missing");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let out = with_node_lib(
        dir.path(),
        &format!("need_port kube-apiserver tcp 0.0.0.0 {port}"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(
        stderr.starts_with(&format!(
            "node: FAILED: kube-apiserver needs tcp port 0.0.0.0:{port}, held by "
        )) && stderr.contains(&format!("(pid {})", std::process::id())),
        "{stderr}"
    );

    // Held on another address than the one the component binds: not a conflict.
    let out = with_node_lib(
        dir.path(),
        &format!("need_port dns tcp 192.0.2.77 {port} && echo free"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "free");
}

#[test]
fn node_component_exiting_during_start_up_is_reported_at_once_with_its_own_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    // An etcd that cannot bind, as etcd says it (JSON log), while up.sh waits for the
    // API server: the report must name etcd and its error, not time out on /readyz.
    let fake_etcd = r#"start etcd bash -c 'echo starting; echo "{\"level\":\"fatal\",\"msg\":\"discovery failed\",\"error\":\"listen tcp 127.0.0.1:23791: bind: address already in use\"}"; exit 1'
wait_for "kube-apiserver /readyz" 90 false"#;
    let started = Instant::now();
    let out = with_node_lib(dir.path(), fake_etcd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        "node: FAILED: etcd exited during start-up: discovery failed: listen tcp 127.0.0.1:23791: bind: address already in use",
        "{stderr}"
    );
    assert!(
        stderr.contains("starting"),
        "its own log is shown: {stderr}"
    );
    assert!(!stderr.contains("/readyz"), "{stderr}");
}

#[test]
fn cargo_target_dir_is_where_the_scripts_look() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new("bash")
        .current_dir(checkout())
        .env("CARGO_TARGET_DIR", dir.path())
        .args(["-c", ". scripts/lib/cargo.sh; cargo_target_dir"])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dir.path().to_string_lossy()
    );
}

fn scripts() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for sub in ["scripts", "scripts/lib", "e2e", "e2e/node", ".ci"] {
        for entry in std::fs::read_dir(checkout().join(sub)).expect("read dir") {
            let path = entry.expect("entry").path();
            let is_shell = path.extension().is_some_and(|e| e == "sh")
                || std::fs::read_to_string(&path)
                    .is_ok_and(|t| t.starts_with("#!/usr/bin/env bash"));
            if path.is_file() && is_shell {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn scripts_parse_and_never_hard_code_a_target_binary() {
    let all = scripts();
    assert!(all.len() > 10, "{all:?}");
    for path in all {
        let out = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("bash -n");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // A hard-coded path runs a missing or stale binary when CARGO_TARGET_DIR is set:
        // scripts ask cargo (scripts/lib/cargo.sh).
        let text = std::fs::read_to_string(&path).expect("read script");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            assert!(
                !line.contains("target/debug/") && !line.contains("target/release/"),
                "{}:{}: hard-coded binary path: {line}",
                path.display(),
                n + 1
            );
        }
    }
}
