//! The envtest harness and `amp-envtest` fail at once when a port is busy or etcd exits at
//! start-up, naming the process and its own error on the first line (not a 90 s
//! `/readyz` timeout naming the API server). Needs the envtest binaries; without them
//! (outside CI) the tests say SKIPPED.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use amp_operator::testing::envtest::{self, ControlPlane, EnvTestError, Ports, StartOptions};

/// Far below the 90 s readiness timeout, with room for a loaded 2-core machine.
const AT_ONCE: Duration = Duration::from_secs(20);

fn assets_or_skip(test: &str) -> bool {
    match envtest::assets_dir() {
        Ok(_) => true,
        Err(e) if envtest::in_ci() => panic!("{test}: envtest binaries missing in CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED (not run, not passed): {test}: {e}");
            false
        }
    }
}

/// A loopback port held by this test (as another program would hold it).
fn busy_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// Starts with `options`, expecting a fast failure; returns the error's first line.
async fn start_fails(options: StartOptions) -> String {
    let started = Instant::now();
    let err: EnvTestError = match ControlPlane::start_with_options(options).await {
        Ok(_) => panic!("the control plane started although it should not"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        started.elapsed() < AT_ONCE,
        "failed only after {:?}: {text}",
        started.elapsed()
    );
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn busy_etcd_port_fails_at_once_with_etcds_own_error() {
    if !assets_or_skip("busy_etcd_port_fails_at_once_with_etcds_own_error") {
        return;
    }
    let (_held, port) = busy_port();
    let ports = Ports {
        etcd_client: port,
        ..Ports::free().expect("free ports")
    };
    let line = start_fails(StartOptions {
        ports: Some(ports),
        ..StartOptions::default()
    })
    .await;
    assert!(line.starts_with("etcd exited during start-up"), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{port}: bind: address already in use")),
        "{line}"
    );
}

#[tokio::test]
async fn busy_apiserver_port_fails_at_once_with_the_apiservers_own_error() {
    if !assets_or_skip("busy_apiserver_port_fails_at_once_with_the_apiservers_own_error") {
        return;
    }
    let (_held, port) = busy_port();
    let ports = Ports {
        apiserver: port,
        ..Ports::free().expect("free ports")
    };
    let line = start_fails(StartOptions {
        ports: Some(ports),
        ..StartOptions::default()
    })
    .await;
    assert!(
        line.starts_with("kube-apiserver exited during start-up"),
        "{line}"
    );
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("address already in use"), "{line}");
}

#[tokio::test]
async fn etcd_exiting_at_start_up_is_reported_with_its_own_last_words() {
    if !assets_or_skip("etcd_exiting_at_start_up_is_reported_with_its_own_last_words") {
        return;
    }
    let line = start_fails(StartOptions {
        extra_etcd_args: vec!["--amp-test-bogus-flag".into()],
        ..StartOptions::default()
    })
    .await;
    assert!(line.starts_with("etcd exited during start-up"), "{line}");
    assert!(
        line.contains("flag provided but not defined: -amp-test-bogus-flag"),
        "{line}"
    );
}

#[test]
fn amp_envtest_with_a_busy_port_exits_at_once_with_one_line() {
    if !assets_or_skip("amp_envtest_with_a_busy_port_exits_at_once_with_one_line") {
        return;
    }
    let (_held, port) = busy_port();
    let free = Ports::free().expect("free ports");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_amp-envtest"))
        .arg(&kubeconfig)
        .env(
            "AMP_ENVTEST_PORTS",
            format!("{port},{},{}", free.etcd_peer, free.apiserver),
        )
        .output()
        .expect("run amp-envtest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < AT_ONCE, "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("amp-envtest: etcd exited during start-up")
            && first.contains(&format!("127.0.0.1:{port}: bind: address already in use")),
        "{stderr}"
    );
    assert!(!kubeconfig.exists(), "a kubeconfig was written");
}

#[test]
fn fixed_ports_parse() {
    assert_eq!(
        Ports::parse("2379, 2380,6443"),
        Ok(Ports {
            etcd_client: 2379,
            etcd_peer: 2380,
            apiserver: 6443
        })
    );
    assert!(Ports::parse("2379,2380").is_err());
    assert!(Ports::parse("2379,x,6443").is_err());
}
