#!/usr/bin/env bash
# amp on an existing k3s node (run on the node, as root): build the image, import it into
# k3s's containerd, helm install, wait for the fleet to be Ready. Needs docker, k3s, helm.
set -euo pipefail
cd "$(dirname "$0")/.."
# helm from `bash .ci/install-tools.sh` works too.
export PATH="$PATH:$PWD/.ci/bin"
for tool in docker k3s helm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "k3s-up: $tool not found (run on a k3s node with Docker; see docs/helm.md)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "k3s-up: run as root (k3s ctr and /etc/rancher/k3s/k3s.yaml need it)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "k3s-up: no Docker engine is running" >&2; exit 1; }
export KUBECONFIG=${KUBECONFIG:-/etc/rancher/k3s/k3s.yaml}
k3s kubectl get nodes >/dev/null || { echo "k3s-up: k3s is not running (systemctl start k3s)" >&2; exit 1; }
tag=${AMP_TAG:-dev}
namespace=${AMP_NAMESPACE:-amp}

docker build -t "amp:$tag" --build-arg "AMPD_VERSION=$tag" .
docker save "amp:$tag" | k3s ctr images import -
helm upgrade --install amp charts/amp --namespace "$namespace" --create-namespace \
  --set image.repository=docker.io/library/amp --set image.tag="$tag" --set image.pullPolicy=Never \
  --wait --timeout 5m
k3s kubectl -n "$namespace" rollout status statefulset/amp-worker --timeout=5m
k3s kubectl -n "$namespace" wait --for=condition=Ready ampworkerfleet/amp --timeout=5m
k3s kubectl -n "$namespace" get ampworkers
