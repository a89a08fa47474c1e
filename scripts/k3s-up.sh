#!/usr/bin/env bash
# amp on an existing k3s node (run on the node, as root): build the image, import it into
# k3s's containerd, helm install, wait for the fleet to be Ready. Needs docker, k3s, helm.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in docker k3s helm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "k3s-up: $tool not found" >&2; exit 1; }
done
export KUBECONFIG=${KUBECONFIG:-/etc/rancher/k3s/k3s.yaml}
tag=${AMP_TAG:-dev}
namespace=${AMP_NAMESPACE:-amp}

docker build -t "amp:$tag" --build-arg "AMPD_VERSION=$tag" .
docker save "amp:$tag" | k3s ctr images import -
helm upgrade --install amp charts/amp --namespace "$namespace" --create-namespace \
  --set image.repository=docker.io/library/amp --set image.tag="$tag" --set image.pullPolicy=Never \
  --wait --timeout 5m
k3s kubectl -n "$namespace" wait --for=condition=Ready ampworkerfleet/amp --timeout=5m
k3s kubectl -n "$namespace" get ampworkers
