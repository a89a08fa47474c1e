//! `helm install`, `helm upgrade` and `helm uninstall` of charts/amp into a real
//! kube-apiserver (envtest): every object is accepted and created (no kubelet, so no pod
//! runs and nothing waits for pods), an upgrade moves the fleet's version, and uninstall
//! keeps the CRDs and the AmpWorkers as docs/helm.md says.

mod common;

use std::path::Path;

use amp_operator::testing::envtest::{self, ControlPlane};
use common::cluster::{have_helm, kubectl, run, yaml_objects};
use serde_json::Value;

const ALL_FEATURES: &str = "charts/amp/ci/all-features-values.yaml";

/// Stand-ins for the Prometheus Operator's CRDs (not available offline): enough for the
/// API server to accept the chart's ServiceMonitor and PrometheusRule.
const MONITORING_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PrometheusRule, plural: prometheusrules, singular: prometheusrule, listKind: PrometheusRuleList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

fn helm(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run("helm", kubeconfig, args, None);
    assert!(ok, "helm {args:?} failed: {err}{out}");
    out
}

/// Every object of the release's manifest exists in the cluster.
fn assert_all_created(kubeconfig: &Path, objects: &[Value], ns: &str) -> usize {
    assert!(!objects.is_empty(), "empty manifest");
    for o in objects {
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let (ok, _, err) = run(
            "kubectl",
            kubeconfig,
            &["get", kind, name, "-n", ns, "-o", "name"],
            None,
        );
        assert!(ok, "{kind}/{name} of the release is missing: {err}");
    }
    objects.len()
}

fn wait_established(kc: &Path, crds: &[&str]) {
    for crd in crds {
        kubectl(
            kc,
            &[
                "wait",
                "--for=condition=Established",
                &format!("crd/{crd}"),
                "--timeout=30s",
            ],
            None,
        );
    }
}

fn get_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(kubeconfig, &all, None)).expect("kubectl json")
}

async fn plane(test: &str) -> Option<ControlPlane> {
    if !have_helm() {
        if envtest::in_ci() {
            panic!("{test}: helm missing in CI (.ci/install-tools.sh installs it)");
        }
        eprintln!("SKIPPED (not run, not passed): {test}: helm not found (.ci/install-tools.sh)");
        return None;
    }
    // Its own control plane: Helm must find the cluster without our CRDs, as a user's does.
    envtest::require_own_without_crds(test).await
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_on_a_real_api_server() {
    let Some(plane) = plane("helm_install_upgrade_and_uninstall_on_a_real_api_server").await else {
        return;
    };
    let kc = plane.kubeconfig();

    // Default values: CRDs from the chart, bundled DB, fleet as a post-install hook.
    helm(
        kc,
        &[
            "install",
            "amp",
            "charts/amp",
            "-n",
            "amp",
            "--create-namespace",
            "--set",
            "image.tag=0.1.0",
            "--timeout",
            "120s",
        ],
    );
    let manifest = yaml_objects(&helm(kc, &["get", "manifest", "amp", "-n", "amp"]));
    let created = assert_all_created(kc, &manifest, "amp");
    wait_established(kc, &CRDS);
    let fleet = get_json(kc, &["get", "ampworkerfleet", "amp", "-n", "amp"]);
    assert_eq!(fleet["spec"]["version"], "0.1.0");
    println!("default values: {created} release objects created, fleet hook applied");

    // What the operator would have created: an AmpWorker for the first worker pod.
    kubectl(
        kc,
        &["apply", "-n", "amp", "-f", "-"],
        Some(
            "apiVersion: amp.io/v1alpha1\nkind: AmpWorker\nmetadata:\n  name: amp-worker-0\n  labels: {amp.io/discovered: \"true\"}\nspec:\n  nodeId: amp-worker-0\n",
        ),
    );

    // Upgrade to a new image tag: the rollout target follows.
    helm(
        kc,
        &[
            "upgrade",
            "amp",
            "charts/amp",
            "-n",
            "amp",
            "--set",
            "image.tag=0.2.0",
            "--timeout",
            "120s",
        ],
    );
    let fleet = get_json(kc, &["get", "ampworkerfleet", "amp", "-n", "amp"]);
    assert_eq!(fleet["spec"]["version"], "0.2.0");
    let sts = get_json(kc, &["get", "statefulset", "amp-worker", "-n", "amp"]);
    let image = sts["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.ends_with(":0.2.0"),
        "worker image after upgrade: {image}"
    );

    // Uninstall keeps the CRDs (crds.keep) and therefore every AmpWorker.
    helm(kc, &["uninstall", "amp", "-n", "amp", "--timeout", "60s"]);
    for crd in ["ampworkers.amp.io", "ampworkerfleets.amp.io"] {
        let (ok, _, err) = run("kubectl", kc, &["get", "crd", crd], None);
        assert!(ok, "CRD {crd} removed by uninstall: {err}");
    }
    let kept = get_json(kc, &["get", "ampworker", "amp-worker-0", "-n", "amp"]);
    assert_eq!(kept["spec"]["nodeId"], "amp-worker-0");
    let (ok, _, _) = run(
        "kubectl",
        kc,
        &["get", "statefulset", "amp-worker", "-n", "amp"],
        None,
    );
    assert!(!ok, "the release's StatefulSet survived uninstall");

    // Every optional feature, in a second namespace beside the kept CRDs. Hooks are left
    // out of the install (the migration Job would never finish without a kubelet) and
    // checked by a server-side dry run instead.
    kubectl(kc, &["apply", "-f", "-"], Some(MONITORING_CRDS));
    wait_established(
        kc,
        &[
            "servicemonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ],
    );
    helm(
        kc,
        &[
            "install",
            "amp",
            "charts/amp",
            "-n",
            "amp-all",
            "--create-namespace",
            "-f",
            ALL_FEATURES,
            "--set",
            "crds.install=false",
            "--no-hooks",
            "--timeout",
            "120s",
        ],
    );
    let manifest = yaml_objects(&helm(kc, &["get", "manifest", "amp", "-n", "amp-all"]));
    let created = assert_all_created(kc, &manifest, "amp-all");
    let kinds: Vec<String> = manifest
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "StatefulSet",
        "Deployment",
        "NetworkPolicy",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} not in the all-features release: {kinds:?}"
        );
    }
    assert_no_credential_in_env(&manifest);
    let hooks = helm(kc, &["get", "hooks", "amp", "-n", "amp-all"]);
    let hook_objects = yaml_objects(&hooks);
    assert!(
        hook_objects.iter().any(|o| o["kind"] == "Job")
            && hook_objects.iter().any(|o| o["kind"] == "AmpWorkerFleet"),
        "expected the migration Job and the fleet among the hooks: {hooks}"
    );
    kubectl(
        kc,
        &["apply", "--dry-run=server", "-n", "amp-all", "-f", "-"],
        Some(&hooks),
    );
    println!(
        "all-features values: {created} release objects created, {} hooks accepted (dry run)",
        hook_objects.len()
    );
    helm(
        kc,
        &[
            "uninstall",
            "amp",
            "-n",
            "amp-all",
            "--no-hooks",
            "--timeout",
            "60s",
        ],
    );
}

/// The credentials reach the release's pods as files (`databaseCredentials.mode=file`,
/// the default): no container's env names a DB URL or the Admin API token, neither as a
/// value nor from a Secret, so they show in no Pod spec (checkov's CKV_K8S_35).
fn assert_no_credential_in_env(manifest: &[Value]) {
    let mut checked = 0;
    for object in manifest {
        let spec = &object["spec"]["template"]["spec"];
        for container in [&spec["containers"], &spec["initContainers"]]
            .into_iter()
            .filter_map(|c| c.as_array())
            .flatten()
        {
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().unwrap_or_default();
                assert!(
                    !["AMP_DATABASE_URL", "AMP_AUTH_TOKEN"].contains(&name)
                        && env["valueFrom"].get("secretKeyRef").is_none(),
                    "{} of {}: env {name} carries a credential: {env:?}",
                    container["name"].as_str().unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap_or_default(),
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "no containers found in the manifest");
}

const CRDS: [&str; 2] = ["ampworkers.amp.io", "ampworkerfleets.amp.io"];

/// `helm install|upgrade RELEASE charts/amp -n NS --set image.tag=TAG`; the release's
/// manifest afterwards.
fn release(kc: &Path, verb: &str, release: &str, ns: &str, tag: &str) -> Vec<Value> {
    let tag = format!("image.tag={tag}");
    let mut args = vec![verb, release, "charts/amp", "-n", ns, "--set", &tag];
    args.extend(["--timeout", "120s"]);
    if verb == "install" {
        args.push("--create-namespace");
    }
    helm(kc, &args);
    yaml_objects(&helm(kc, &["get", "manifest", release, "-n", ns]))
}

fn install(kc: &Path, name: &str, ns: &str, tag: &str) -> Vec<Value> {
    release(kc, "install", name, ns, tag)
}

fn upgrade(kc: &Path, name: &str, ns: &str, tag: &str) -> Vec<Value> {
    release(kc, "upgrade", name, ns, tag)
}

fn crd_names(manifest: &[Value]) -> Vec<String> {
    manifest
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The release that owns a CRD (Helm's ownership annotations), "" for none.
fn crd_owner(kc: &Path, crd: &str) -> String {
    let o = get_json(kc, &["get", "crd", crd]);
    let ann = &o["metadata"]["annotations"];
    match (
        ann["meta.helm.sh/release-namespace"].as_str(),
        ann["meta.helm.sh/release-name"].as_str(),
    ) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => String::new(),
    }
}

/// The version the namespace's one fleet expects (its name follows the release's).
fn fleet_version(kc: &Path, ns: &str) -> Value {
    let list = get_json(kc, &["get", "ampworkerfleets", "-n", ns]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "fleets in {ns}: {list}");
    items[0]["spec"]["version"].clone()
}

/// README order: `kubectl apply -f crds/`, then `helm install` with default values. The
/// release must install, leave the CRDs to whoever applied them, and upgrade/uninstall
/// without touching them.
#[tokio::test]
async fn crds_applied_beforehand_are_left_alone_by_the_release() {
    let Some(plane) = plane("crds_applied_beforehand_are_left_alone_by_the_release").await else {
        return;
    };
    let kc = plane.kubeconfig();
    kubectl(kc, &["apply", "--server-side", "-f", "crds/"], None);
    wait_established(kc, &CRDS);

    let manifest = install(kc, "amp", "amp", "0.1.0");
    assert_eq!(
        crd_names(&manifest),
        Vec::<String>::new(),
        "the release took over pre-applied CRDs"
    );
    assert_all_created(kc, &manifest, "amp");
    assert_eq!(fleet_version(kc, "amp"), "0.1.0");

    let manifest = upgrade(kc, "amp", "amp", "0.2.0");
    assert_eq!(crd_names(&manifest), Vec::<String>::new());
    assert_eq!(fleet_version(kc, "amp"), "0.2.0");

    helm(kc, &["uninstall", "amp", "-n", "amp", "--timeout", "60s"]);
    for crd in CRDS {
        assert_eq!(crd_owner(kc, crd), "", "{crd} gained a Helm owner");
    }
}

/// Two releases of the chart, each in its own namespace: the first owns (and upgrades)
/// the CRDs, the second installs, upgrades and uninstalls beside it without touching them.
#[tokio::test]
async fn a_second_release_in_another_namespace_installs_beside_the_first() {
    let Some(plane) =
        plane("a_second_release_in_another_namespace_installs_beside_the_first").await
    else {
        return;
    };
    let kc = plane.kubeconfig();

    let first = install(kc, "one", "team-one", "0.1.0");
    assert_eq!(
        crd_names(&first).len(),
        2,
        "the first release installs the CRDs"
    );
    for crd in CRDS {
        assert_eq!(crd_owner(kc, crd), "team-one/one");
    }
    wait_established(kc, &CRDS);

    let second = install(kc, "two", "team-two", "0.1.0");
    assert_eq!(
        crd_names(&second),
        Vec::<String>::new(),
        "the second release took the CRDs"
    );
    assert_eq!(fleet_version(kc, "team-two"), "0.1.0");
    let second = upgrade(kc, "two", "team-two", "0.2.0");
    assert_eq!(crd_names(&second), Vec::<String>::new());
    assert_eq!(fleet_version(kc, "team-two"), "0.2.0");

    // The owner still renders (and so updates) its CRDs on upgrade.
    let first = upgrade(kc, "one", "team-one", "0.2.0");
    assert_eq!(
        crd_names(&first).len(),
        2,
        "the owner stopped managing its CRDs"
    );

    helm(
        kc,
        &["uninstall", "two", "-n", "team-two", "--timeout", "60s"],
    );
    for crd in CRDS {
        assert_eq!(crd_owner(kc, crd), "team-one/one");
    }
    assert_eq!(fleet_version(kc, "team-one"), "0.2.0");
}

/// docs/amp.md: `existingAmp.enabled` against a metadata DB Amp's own workers write. The
/// release installs (no migration Job, no workers, no bundled DB), and the operator as the
/// chart configures it, on a read-only role, judges Amp's workers with the fleet's version.
#[tokio::test(flavor = "multi_thread")]
async fn existing_amp_mode_installs_and_its_fleet_judges_amp_s_workers() {
    use amp_operator::testing::amp_db::{self, AmpSchema, AmpWorkerSim, amp_info};
    use amp_operator::testing::postgres::{TempPostgres, eventually};

    let Some(plane) = plane("existing_amp_mode_installs_and_its_fleet_judges_amp_s_workers").await
    else {
        return;
    };
    let kc = plane.kubeconfig();
    let pg = TempPostgres::start().unwrap();
    let pool = amp_operator::metadata_db::connect_pool(&pg.url(), "tests", 2)
        .await
        .unwrap();
    amp_db::create(&pool, AmpSchema::Current).await.unwrap();
    let version = "v0.0.35-275-g188bfd41";
    let _sims = [
        AmpWorkerSim::start(&pg.url(), "amp-0", amp_info(version))
            .await
            .unwrap(),
        AmpWorkerSim::start(&pg.url(), "amp-1", amp_info(version))
            .await
            .unwrap(),
    ];
    for statement in [
        "CREATE ROLE amp_reader LOGIN",
        "GRANT SELECT ON workers TO amp_reader",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let reader = format!("postgres://amp_reader@127.0.0.1:{}/postgres", pg.port());

    kubectl(kc, &["create", "namespace", "amp"], None);
    kubectl(
        kc,
        &[
            "create",
            "secret",
            "generic",
            "amp-metadata-db",
            "-n",
            "amp",
            &format!("--from-literal=url={}", pg.url()),
            &format!("--from-literal=reader-url={reader}"),
        ],
        None,
    );
    helm(
        kc,
        &[
            "install",
            "amp",
            "charts/amp",
            "-n",
            "amp",
            "-f",
            "charts/amp/ci/existing-amp-values.yaml",
            "--timeout",
            "120s",
        ],
    );
    let manifest = yaml_objects(&helm(kc, &["get", "manifest", "amp", "-n", "amp"]));
    assert_all_created(kc, &manifest, "amp");
    let kinds: Vec<&str> = manifest.iter().filter_map(|o| o["kind"].as_str()).collect();
    for absent in ["StatefulSet", "Job", "Secret"] {
        assert!(
            !kinds.contains(&absent),
            "existingAmp installed a {absent}: {kinds:?}"
        );
    }
    wait_established(kc, &CRDS);
    assert_eq!(fleet_version(kc, "amp"), version);

    let operator = manifest
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "amp-operator")
        .expect("the operator Deployment");
    // The chart mounts the Secret's reader-url at /etc/amp/db/url: here, a file of ours.
    let mounted = tempfile::tempdir().unwrap();
    std::fs::write(mounted.path().join("url"), &reader).unwrap();
    let env: Vec<(String, String)> = operator["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let value = e["value"].as_str()?;
            let value = match value.strip_prefix("/etc/amp/db/") {
                Some(file) => mounted.path().join(file).display().to_string(),
                None => value.to_owned(),
            };
            Some((e["name"].as_str()?.to_owned(), value))
        })
        .collect();
    assert!(
        env.iter().any(|(name, _)| name == "AMP_DATABASE_URL_FILE"),
        "{env:?}"
    );
    let op = common::Proc::spawn(
        "operator",
        std::process::Command::new(common::AMPD)
            .arg("operator")
            .envs(env)
            .env("KUBECONFIG", kc)
            .env_remove("AMP_DATABASE_URL")
            .env("AMP_NAMESPACE", "amp")
            .env("POD_NAME", "amp-operator-0")
            .env("AMP_OPERATOR_LISTEN", common::free_addr())
            .env_remove("KUBERNETES_SERVICE_HOST"),
    );
    let ready = eventually(std::time::Duration::from_secs(60), || async {
        let fleet = get_json(kc, &["get", "ampworkerfleet", "amp", "-n", "amp"]);
        let conditions = fleet["status"]["conditions"].as_array()?.clone();
        conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(fleet)
    })
    .await;
    let Some(ready) = ready else {
        let fleet = get_json(kc, &["get", "ampworkerfleet", "amp", "-n", "amp"]);
        op.signal(libc::SIGTERM);
        let (_, _, err) = op.wait_for_exit(std::time::Duration::from_secs(10));
        panic!("the fleet turns Ready on Amp's workers: {fleet}\noperator: {err}")
    };
    assert_eq!(ready["status"]["workers"], 2, "{ready}");
    assert_eq!(ready["status"]["updatedWorkers"], 2, "{ready}");
}
