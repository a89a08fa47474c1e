#!/usr/bin/env bash
# Lints and renders charts/amp (defaults and every charts/amp/ci/*-values.yaml; Helm 4,
# and Helm 3 which must render the same), validates
# every rendered manifest against the Kubernetes schemas offline (the chart's minimum and
# the newest version kubernetes-validate knows), checks RBAC / securityContext / secrets /
# hooks / CRDs with .ci/test_chart.py (and proves those checks fail on 35 deliberate
# breakages), checks the values schema rejects bad values, the CRD copies, the CRD and
# fleet switches, the conventions (name overrides, ServiceAccounts, security contexts,
# priorityClassName, PodDisruptionBudgets, helm test), and runs the Argo CD health check tests.
# Needs .ci/bin on PATH (.ci/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/amp
min_k8s=$(sed -n 's/^kubeVersion: *">=\([0-9.]*\).*/\1/p' "$chart/Chart.yaml")
latest_k8s=$(python3 -c 'import kubernetes_validate.utils as u; print(u.latest_version())')
# Helm 3 too when installed (.ci/install-tools.sh puts it at .ci/bin/helm3).
helm3=$(command -v helm3 || true)
[ -n "$helm3" ] || echo "NOTE: helm3 not on PATH: Helm 3 compatibility not checked" >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
step() { printf -- '-- %s\n' "$*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

step "chart CRDs are byte-identical copies of crds/"
diff -r crds "$chart/files/crds" || die "charts/amp/files/crds differs from crds/: cp crds/*.yaml $chart/files/crds/"

variants=(default)
for f in "$chart"/ci/*-values.yaml; do variants+=("$(basename "$f" -values.yaml)"); done
for variant in "${variants[@]}"; do
  args=()
  [ "$variant" = default ] || args=(-f "$chart/ci/$variant-values.yaml")
  step "helm lint --strict ($variant)"
  helm lint --strict --namespace amp "$chart" "${args[@]}"
  step "helm template ($variant)"
  helm template amp "$chart" --namespace amp --include-crds "${args[@]}" >"$out/$variant.yaml"
  # Custom resources (AmpWorkerFleet, ServiceMonitor, PrometheusRule) have no built-in
  # schema: test_chart.py checks the AmpWorkerFleet against crds/.
  python3 - "$out/$variant.yaml" "$out/$variant" <<'PY'
import os, sys, yaml
src, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
custom = {"amp.io/v1alpha1", "monitoring.coreos.com/v1"}
n = 0
for i, d in enumerate(yaml.safe_load_all(open(src))):
    if not d or d.get("apiVersion") in custom:
        continue
    with open(os.path.join(dest, f"{i:03d}-{d['kind']}.yaml"), "w") as f:
        yaml.safe_dump(d, f)
    n += 1
print(f"{n} built-in manifests to validate")
PY
  for k8s in "$min_k8s" "$latest_k8s"; do
    step "kubernetes-validate --strict ($variant, Kubernetes $k8s)"
    python3 -m kubernetes_validate --strict --quiet -k "$k8s" "$out/$variant"/*.yaml
  done
  step "RBAC, securityContext, secrets, hooks, CRDs ($variant)"
  python3 .ci/test_chart.py "$out/$variant.yaml"
  if [ -n "$helm3" ]; then
    step "Helm 3: lint and the same render ($variant)"
    "$helm3" lint --strict --namespace amp "$chart" "${args[@]}" >/dev/null
    "$helm3" template amp "$chart" --namespace amp --include-crds "${args[@]}" >"$out/$variant.helm3.yaml"
    # Generated passwords differ per render; everything else must be identical.
    diff <(grep -v 'password\|url:' "$out/$variant.yaml") <(grep -v 'password\|url:' "$out/$variant.helm3.yaml") \
      || die "Helm 3 renders $variant differently"
  fi
done

step "the checks catch deliberate breakages"
python3 .ci/test_chart.py --self-test "$out/all-features.yaml"

step "switches: CRDs, keep policy, fleet version and hook"
python3 - "$out" <<'PY'
import sys, yaml
out = sys.argv[1]
def docs(v):
    return [d for d in yaml.safe_load_all(open(f"{out}/{v}.yaml")) if d]
def one(ds, kind):
    found = [d for d in ds if d["kind"] == kind]
    assert len(found) == 1, f"{kind}: {len(found)} rendered"
    return found[0]
d, a, g = docs("default"), docs("all-features"), docs("gitops")
crds = [x for x in d if x["kind"] == "CustomResourceDefinition"]
assert len(crds) == 2, "crds.install=true renders both CRDs"
assert all(x["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for x in crds), "crds.keep"
assert not [x for x in g if x["kind"] == "CustomResourceDefinition"], "crds.install=false renders no CRD"
# The fleet expects the worker image tag unless fleet.version is set.
assert one(a, "AmpWorkerFleet")["spec"]["version"] == "v0.0.23", "fleet.version defaults to worker.image.tag"
ws = one(a, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"]
assert ws.endswith(":v0.0.23"), ws
assert one(d, "AmpWorkerFleet")["spec"]["version"] == "0.1.0", "default: the chart's appVersion"
assert one(g, "AmpWorkerFleet")["spec"]["version"] == "v0.0.22"
assert "helm.sh/hook" in one(a, "AmpWorkerFleet")["metadata"]["annotations"]
assert "helm.sh/hook" not in (one(g, "AmpWorkerFleet")["metadata"].get("annotations") or {}), "fleet.hook=false"
assert one(a, "AmpWorkerFleet")["spec"]["progressDeadlineSeconds"] == 900
# Migrations: a pre-install/pre-upgrade hook Job with an external DB.
job = one(a, "Job")
assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
# The demo DB: a generated Secret by default, none with postgresql.auth.existingSecret.
assert [x["metadata"]["name"] for x in d if x["kind"] == "Secret"] == ["amp-db"]
assert not [x for x in g if x["kind"] == "Secret"]
# Replicas and the leader election switch.
deps = {x["metadata"]["name"]: x for x in a if x["kind"] == "Deployment"}
assert deps["amp-operator"]["spec"]["replicas"] == 2 and deps["amp-admin-api"]["spec"]["replicas"] == 2
# Conventions: name overrides, pre-created ServiceAccounts, no fixed uid, PriorityClass,
# pod annotations, PodDisruptionBudgets only where replicas > 1, the helm test pod.
c = docs("conventions")
workloads = [x for x in c if x["kind"] in ("Deployment", "StatefulSet") and "postgresql" not in x["metadata"]["name"]]
assert sorted(x["metadata"]["name"] for x in workloads) == ["amp-prod-admin-api", "amp-prod-operator", "amp-prod-worker"], "fullnameOverride"
assert not [x for x in c if x["kind"] == "ServiceAccount"], "serviceAccount.create=false renders no ServiceAccount"
for w in workloads:
    spec = w["spec"]["template"]["spec"]
    comp = w["metadata"]["labels"]["app.kubernetes.io/component"]
    assert spec["serviceAccountName"] == f"platform-amp-{comp}", spec["serviceAccountName"]
    assert spec["priorityClassName"] == "amp-critical", "priorityClassName"
    assert "runAsUser" not in spec["securityContext"] and "fsGroup" not in spec["securityContext"], "podSecurityContext without a fixed uid"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert w["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "data", "podAnnotations"
assert one(c, "RoleBinding")["subjects"][0]["name"] == "platform-amp-operator"
pdbs = {x["metadata"]["name"]: x for x in c if x["kind"] == "PodDisruptionBudget"}
assert sorted(pdbs) == ["amp-prod-admin-api", "amp-prod-operator"], sorted(pdbs)
op = [w for w in workloads if w["metadata"]["name"] == "amp-prod-operator"][0]
assert pdbs["amp-prod-operator"]["spec"]["selector"]["matchLabels"] == op["spec"]["selector"]["matchLabels"], "PDB selects the operator pods"
assert not [x for x in d if x["kind"] == "PodDisruptionBudget"], "one replica: no PodDisruptionBudget"
assert len([x for x in a if x["kind"] == "PodDisruptionBudget"]) == 2
sa_names = sorted(x["metadata"]["name"] for x in d if x["kind"] == "ServiceAccount")
assert sa_names == ["amp-admin-api", "amp-operator", "amp-worker"], sa_names
dsec = [x for x in d if x["kind"] == "StatefulSet" and x["metadata"]["name"] == "amp-worker"][0]["spec"]["template"]["spec"]["securityContext"]
assert dsec["runAsUser"] == 65532 and dsec["fsGroup"] == 65532, "hardened defaults kept"
tests = [x for x in d if x["kind"] == "Pod" and x["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
assert len(tests) == 1 and tests[0]["spec"]["containers"][0]["command"] == ["ampctl"], "helm test pod"
# databaseTLS: every pod that talks to the DB mounts the CA and client certificate and
# gets the libpq variables (all-features: Secrets + verify-full; conventions: a ConfigMap
# CA); the default renders no TLS volume and no PG* variable.
def db_containers(ds):
    for x in ds:
        if x["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = x["spec"]["template"]["spec"]
        for ct in spec.get("initContainers", []) + spec["containers"]:
            if any(e["name"] in ("AMP_DATABASE_URL", "AMP_DATABASE_URL_FILE") for e in ct.get("env", [])):
                yield x, spec, ct
def tls_env(ct):
    return {e["name"]: e.get("value") for e in ct["env"] if e["name"].startswith("PGSSL")}
roles = sorted((x["metadata"]["name"], ct["name"]) for x, _, ct in db_containers(a))
assert roles == [("amp-admin-api", "admin-api"), ("amp-migrate", "migrate"), ("amp-operator", "operator"), ("amp-worker", "worker")], roles
for x, spec, ct in db_containers(a):
    assert tls_env(ct) == {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/amp/db-tls/ca.crt",
                           "PGSSLCERT": "/etc/amp/db-tls/tls.crt", "PGSSLKEY": "/etc/amp/db-tls/tls.key"}, tls_env(ct)
    vol = [v for v in spec["volumes"] if v["name"] == "db-tls"][0]["projected"]
    assert vol["defaultMode"] == 0o440
    assert [s["secret"]["name"] for s in vol["sources"]] == ["amp-db-ca", "amp-db-client"], vol
for x, spec, ct in db_containers(c):
    assert tls_env(ct) == {"PGSSLROOTCERT": "/etc/amp/db-tls/ca.crt"}, tls_env(ct)
    vol = [v for v in spec["volumes"] if v["name"] == "db-tls"][0]["projected"]
    assert vol["defaultMode"] == 0o444 and vol["sources"] == [{"configMap": {"name": "rds-ca-bundle", "items": [{"key": "global-bundle.pem", "path": "ca.crt"}]}}], vol
for x, spec, ct in db_containers(d):
    assert not tls_env(ct) and not [v for v in spec["volumes"] if v["name"] == "db-tls"], "default: no DB TLS"
    assert [m["name"] for m in ct["volumeMounts"]] == ["db-credentials"], "default: no DB TLS"
# databaseCredentials: by default (and all-features) the URLs, passwords and the token
# are files from the Secrets, never env (checkov CKV_K8S_35), the helm test pod's token
# too; mode=env (gitops) the old way.
def pod_env(ds):
    for x in ds:
        if x["kind"] in ("Deployment", "StatefulSet", "Job"):
            spec = x["spec"]["template"]["spec"]
        elif x["kind"] == "Pod":
            spec = x["spec"]
        else:
            continue
        for ct in spec.get("initContainers", []) + spec["containers"]:
            yield from ct.get("env", [])
def env_names(ds):
    return {e["name"] for e in pod_env(ds)}
for ds, name in ((d, "default"), (a, "all-features")):
    names = env_names(ds)
    assert not names & {"AMP_DATABASE_URL", "AMP_AUTH_TOKEN"}, (name, names)
    refs = [e for e in pod_env(ds) if "secretKeyRef" in e.get("valueFrom", {})]
    assert not refs, (name, refs)
assert {"AMP_DATABASE_PASSWORD_FILE", "AMP_AUTH_TOKEN_FILE", "AMPCTL_AUTH_TOKEN_FILE"} <= env_names(a)
admin = [x for x in a if x["kind"] == "Deployment" and x["metadata"]["name"] == "amp-admin-api"][0]["spec"]["template"]["spec"]
creds = [v for v in admin["volumes"] if v["name"] == "db-credentials"][0]["secret"]
assert creds == {"secretName": "amp-database", "defaultMode": 0o440, "items": [
    {"key": "reader-url", "path": "url"}, {"key": "reader-password", "path": "password"}]}, creds
g = docs("gitops")
assert "AMP_DATABASE_URL" in env_names(g) and "AMP_DATABASE_URL_FILE" not in env_names(g), "mode=env"
# networkPolicy: off by default; all-features: one per component, the Admin API open to
# this namespace, /metrics to the monitoring namespace, probes to the nodes' range.
assert not [x for x in d if x["kind"] == "NetworkPolicy"]
policies = {x["metadata"]["name"]: x["spec"] for x in a if x["kind"] == "NetworkPolicy"}
assert sorted(policies) == ["amp-admin-api", "amp-operator", "amp-worker"], sorted(policies)
monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
nodes = {"ipBlock": {"cidr": "10.0.0.0/8"}}
assert policies["amp-admin-api"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 1610}], "from": [{"podSelector": {}}, monitoring, nodes]}]
assert policies["amp-worker"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8081}], "from": [monitoring, nodes]}]
db = {"ports": [{"protocol": "TCP", "port": 5432}], "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
dns = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
assert policies["amp-worker"]["egress"] == [db, dns], policies["amp-worker"]["egress"]
assert policies["amp-operator"]["egress"] == [db, {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}, dns]
# existingAmp.enabled: nothing that writes to Amp's DB, the operator and Admin API on the
# reader URL, the fleet on the version the user set.
e = docs("existing-amp")
kinds = sorted({x["kind"] for x in e})
for absent in ("StatefulSet", "Job", "Secret", "PersistentVolumeClaim"):
    assert absent not in kinds, f"existingAmp renders a {absent}"
assert sorted(x["metadata"]["name"] for x in e if x["kind"] == "Deployment") == ["amp-admin-api", "amp-operator"]
assert sorted(x["metadata"]["name"] for x in e if x["kind"] == "ServiceAccount") == ["amp-admin-api", "amp-operator"]
for dep in (x for x in e if x["kind"] == "Deployment"):
    vol = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "db-credentials"][0]["secret"]
    assert vol["secretName"] == "amp-metadata-db" and vol["items"] == [{"key": "reader-url", "path": "url"}], vol
assert one(e, "AmpWorkerFleet")["spec"]["version"] == "v0.0.35-275-g188bfd41"
print("switches ok")
PY

step "existingAmp.enabled refuses to render without the fleet's version"
if msg=$(helm template amp "$chart" --set existingAmp.enabled=true --set externalDatabase.existingSecret=db 2>&1); then
  die "existingAmp.enabled rendered without fleet.version"
fi
grep -q "set fleet.version to the version your Amp workers report" <<<"$msg" || die "unexpected message: $msg"

step "values.schema.json rejects bad values"
for bad in "logFormat=xml" "bogus=1" "operator.bogus=1" "operator.replicas=-1" "worker.replicas=three" \
           "image.pullPolicy=Sometimes" "crds.install=yes" "operator.pollInterval=soon" \
           "adminApi.service.port=70000" "postgresql.enabled=false" \
           "databaseCredentials.mode=secret" "networkPolicy.enabled=yes" "networkPolicy.egress.database.port=0" \
           "operator.replicas=2,operator.leaderElection=false" "nameOverride=Amp_X" \
           "serviceAccount.create=maybe" "podSecurityContext.runAsUser=0" \
           "podSecurityContext.runAsNonRoot=false" "containerSecurityContext.allowPrivilegeEscalation=true" \
           "databaseTLS.sslMode=verify_full" "databaseTLS.bogus=1" "databaseTLS.defaultMode=777" \
           "databaseTLS.ca.secretName=a,databaseTLS.ca.configMapName=b" \
           "fleet.remediation.mode=Always" "fleet.remediation.maxUnhealthy=most" \
           "fleet.remediation.restartStaleAfterSeconds=0"; do
  for h in helm $helm3; do
    if "$h" template amp "$chart" --set "$bad" >/dev/null 2>&1; then
      die "$h: --set $bad was accepted"
    fi
  done
done
helm template amp "$chart" --set postgresql.enabled=false --set externalDatabase.existingSecret=db >/dev/null \
  || die "a valid external-database configuration was rejected"

if [ -f .ci/test-argocd-health.sh ]; then
  step "Argo CD health checks"
  bash .ci/test-argocd-health.sh
fi
echo "chart checks passed"
