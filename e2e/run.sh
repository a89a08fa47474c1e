#!/usr/bin/env bash
# The e2e suite against the cluster in KUBECONFIG. Without one it is skipped, loudly;
# it is never reported as passed when it did not run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KUBECONFIG:-}" ]; then
  echo "e2e: SKIPPED (not run, not passed): no KUBECONFIG set."
  echo "e2e: run against kind with ./scripts/kind-up.sh, then KUBECONFIG=~/.kube/config E2E_CHART_NAMESPACE=amp e2e/run.sh"
  exit 0
fi
kubectl apply -f crds/ >/dev/null
extra=()
# The installed-chart test runs only when told where the chart is (scripts/kind-up.sh: amp).
if [ -n "${E2E_CHART_NAMESPACE:-}" ]; then extra=(--include-ignored); fi
exec cargo test --locked --features e2e --test operator_e2e -- --test-threads=1 "${extra[@]}" "$@"
