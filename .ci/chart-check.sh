#!/usr/bin/env bash
# Lints and renders charts/amp (defaults and every feature on), validates every rendered
# manifest against the Kubernetes schemas offline, checks RBAC/securityContext/secrets,
# the CRD copies, and runs the Argo CD health check tests. Needs .ci/bin on PATH
# (.ci/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/amp
k8s_version=1.33.0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "chart CRDs are the generated ones"
diff -ru crds "$chart/files/crds"

for variant in default all-features; do
  args=()
  [ "$variant" = all-features ] && args=(-f "$chart/ci/all-features-values.yaml")
  echo "helm lint ($variant)"
  helm lint --strict "$chart" "${args[@]}"
  echo "helm template ($variant)"
  helm template amp "$chart" --namespace amp --include-crds "${args[@]}" >"$out/$variant.yaml"
  echo "kubernetes-validate ($variant, Kubernetes $k8s_version)"
  # Custom resources (AmpWorkerFleet, ServiceMonitor, PrometheusRule) have no built-in
  # schema: they are checked against their CRDs by test_chart.py where we ship the CRD.
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
  kubernetes-validate --strict --quiet -k "$k8s_version" "$out/$variant"/*.yaml
  python3 .ci/test_chart.py "$out/$variant.yaml"
done

echo "values.schema.json rejects bad values"
for bad in "logFormat=xml" "bogus=1" "operator.replicas=-1" "postgresql.enabled=false"; do
  if helm template amp "$chart" --set "$bad" >/dev/null 2>&1; then
    echo "FAIL: --set $bad was accepted" >&2
    exit 1
  fi
done

if [ -f .ci/test-argocd-health.sh ]; then
  echo "Argo CD health checks"
  bash .ci/test-argocd-health.sh
fi
echo "chart checks passed"
