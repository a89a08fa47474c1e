#!/usr/bin/env bash
# A kind cluster with amp installed: build the image, load it, helm install, wait for the
# fleet to be Ready. Needs docker, kind, kubectl and helm.
#   ./scripts/kind-up.sh            then: KUBECONFIG=~/.kube/config e2e/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# helm and kubectl from `bash .ci/install-tools.sh` work too.
export PATH="$PATH:$PWD/.ci/bin"
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kind-up: $tool not found (needs a Docker machine; see docs/helm.md)" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-up: no Docker engine is running" >&2; exit 1; }
tag=${AMP_TAG:-dev}
namespace=${AMP_NAMESPACE:-amp}

kind get clusters 2>/dev/null | grep -qx amp || kind create cluster --config kind-config.yaml
docker build -t "amp:$tag" --build-arg "AMPD_VERSION=$tag" .
kind load docker-image "amp:$tag" --name amp
helm upgrade --install amp charts/amp --namespace "$namespace" --create-namespace \
  --set image.repository=amp --set image.tag="$tag" --set image.pullPolicy=Never \
  --wait --timeout 5m
kubectl -n "$namespace" rollout status statefulset/amp-worker --timeout=5m
kubectl -n "$namespace" wait --for=condition=Ready ampworkerfleet/amp --timeout=5m
kubectl -n "$namespace" get ampworkers
