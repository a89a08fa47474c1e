#!/usr/bin/env bash
# The e2e suite (e2e/operator_e2e.rs): the operator and workers as local processes
# against a Kubernetes API server and a throwaway local PostgreSQL.
#   KUBECONFIG set            -> that cluster (kind via scripts/kind-up.sh, k3s, ...)
#   else AMP_ENVTEST_KUBECONFIG -> the envtest control plane scripts/test.sh started
#   else                      -> a real etcd + kube-apiserver started here (envtest)
# It never reports a pass when it did not run: without any API server it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/envtest.sh
if [ -z "${KUBECONFIG:-}" ]; then
  if [ -z "${AMP_ENVTEST_KUBECONFIG:-}" ]; then
    envtest_dir=$(mktemp -d /tmp/amp-e2e-envtest.XXXXXX)
    trap 'envtest_stop; rm -rf "$envtest_dir"' EXIT
    envtest_start "$envtest_dir" || { echo "e2e: FAILED: no cluster (KUBECONFIG unset) and no envtest control plane" >&2; exit 1; }
  fi
  export KUBECONFIG=$AMP_ENVTEST_KUBECONFIG
  echo "e2e: against the envtest API server ($KUBECONFIG)"
else
  echo "e2e: against the cluster in KUBECONFIG ($KUBECONFIG)"
  kubectl apply --server-side -f crds/ >/dev/null
fi
extra=()
# The installed-chart test runs only when told where the chart is (scripts/kind-up.sh: amp).
if [ -n "${E2E_CHART_NAMESPACE:-}" ]; then extra=(--include-ignored); fi
cargo test --locked --features e2e,testing --test operator_e2e -- --test-threads=1 "${extra[@]}" "$@"
