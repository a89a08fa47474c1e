#!/usr/bin/env bash
# Runs every Argo CD health_test.yaml case with lua5.4 and checks the argocd-cm patch is current.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v lua5.4 >/dev/null || { echo "lua5.4 missing (bash .ci/install-tools.sh)" >&2; exit 1; }
python3 charts/amp/argocd/render.py test
