#!/usr/bin/env bash
# The e2e suite against the cluster in KUBECONFIG. Without one it is skipped, loudly;
# it is never reported as passed when it did not run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KUBECONFIG:-}" ]; then
  echo "e2e: SKIPPED (not run, not passed): no KUBECONFIG set."
  echo "e2e: run against kind with ./scripts/kind-up.sh, then KUBECONFIG=~/.kube/config e2e/run.sh"
  exit 0
fi
kubectl apply -f crds/ >/dev/null
exec cargo test --locked --features e2e --test operator_e2e -- --test-threads=1 "$@"
