//! `amp-envtest KUBECONFIG_OUT`: starts a throwaway etcd + kube-apiserver with the CRDs
//! installed, copies its admin kubeconfig to KUBECONFIG_OUT once ready, and runs until
//! SIGTERM/SIGINT, then stops both. scripts/test.sh, e2e/run.sh and scripts/quickstart.sh
//! start one per run. Ports are free ones unless `AMP_ENVTEST_PORTS=ETCD_CLIENT,ETCD_PEER,
//! APISERVER` fixes them. When etcd or kube-apiserver exits during start-up, the first
//! line of stderr names it and its own error, at once.

use std::process::ExitCode;

use amp_operator::testing::envtest::{ControlPlane, Ports, StartOptions};

/// Fixed ports from `AMP_ENVTEST_PORTS`, if set.
fn fixed_ports() -> Result<Option<Ports>, String> {
    match std::env::var("AMP_ENVTEST_PORTS") {
        Ok(text) => Ports::parse(&text).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("AMP_ENVTEST_PORTS: {e}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: amp-envtest KUBECONFIG_OUT");
        return ExitCode::from(2);
    };
    let ports = match fixed_ports() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("amp-envtest: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let options = StartOptions {
        install_crds: true,
        ports,
        ..StartOptions::default()
    };
    let plane = match ControlPlane::start_with_options(options).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("amp-envtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Copy then rename: a reader polling for the file never sees half of it.
    let tmp = std::path::PathBuf::from(format!("{}.part", out.to_string_lossy()));
    if let Err(e) =
        std::fs::copy(plane.kubeconfig(), &tmp).and_then(|_| std::fs::rename(&tmp, &out))
    {
        eprintln!("amp-envtest: write {}: {e}", out.to_string_lossy());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "amp-envtest: control plane ready in {:.1?}; kubeconfig {}",
        started.elapsed(),
        out.to_string_lossy()
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("amp-envtest: install SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(plane);
    ExitCode::SUCCESS
}
