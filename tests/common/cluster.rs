//! Helpers for tests against a real API server (envtest): kubectl and helm from
//! `.ci/bin` (where .ci/install-tools.sh puts them) or PATH, the chart rendered as objects.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `.ci/bin/NAME` when present, else NAME from PATH.
pub fn tool(name: &str) -> PathBuf {
    let local = Path::new(ROOT).join(".ci/bin").join(name);
    if local.is_file() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// Whether `helm` can be run (the chart tests need it).
pub fn have_helm() -> bool {
    Command::new(tool("helm"))
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a tool; returns (success, stdout, stderr).
pub fn run(
    tool_name: &str,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut child = Command::new(tool(tool_name))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {tool_name}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kubectl that must succeed; returns stdout.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = run("kubectl", kubeconfig, args, stdin);
    assert!(ok, "kubectl {args:?} failed: {err}{out}");
    out
}

/// `helm template` of charts/amp as release `amp` in `namespace`.
pub fn helm_template(namespace: &str, extra: &[&str]) -> String {
    let mut args = vec!["template", "amp", "charts/amp", "--namespace", namespace];
    args.extend_from_slice(extra);
    let (ok, out, err) = run("helm", Path::new("/dev/null"), &args, None);
    assert!(ok, "helm template failed: {err}");
    out
}

/// The objects of a multi-document YAML stream (empty documents dropped).
pub fn yaml_objects(text: &str) -> Vec<Value> {
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(text)
        .unwrap_or_else(|e| panic!("parse YAML stream: {e}"))
        .into_iter()
        .filter(|v| v.is_object())
        .collect()
}

/// A ServiceAccount token from the TokenRequest API.
pub fn create_token(kubeconfig: &Path, namespace: &str, service_account: &str) -> String {
    kubectl(
        kubeconfig,
        &[
            "create",
            "token",
            service_account,
            "-n",
            namespace,
            "--duration=1h",
        ],
        None,
    )
    .trim()
    .to_owned()
}
