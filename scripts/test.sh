#!/usr/bin/env bash
# The project's test command (README). Installs what a fresh Debian machine lacks
# (PostgreSQL server binaries and jq from Debian, schemathesis from PyPI), then runs
# every test with cargo-nextest.
# Tests start their own throwaway PostgreSQL; nothing else needs to be running.
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

# schemathesis fuzzes the Admin API from its OpenAPI document (tests/admin_api_fuzz.rs).
if ! command -v st >/dev/null 2>&1; then
  echo "installing: schemathesis (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
cargo nextest run --no-fail-fast "$@"
# The cluster suite runs only with a KUBECONFIG; otherwise it says it was skipped.
e2e/run.sh
