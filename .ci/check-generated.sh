#!/usr/bin/env bash
# Fails when checked-in generated files (CRDs, OpenAPI document) differ from what the code produces.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cargo.sh
# cargo says where ampd is (CARGO_TARGET_DIR): a hard-coded path could be stale.
ampd=$(cargo_bin ampd --locked --bin ampd)
status=0
if [ -d crds ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$ampd" crdgen --out-dir "$tmp" >/dev/null
  if ! diff -ru crds "$tmp"; then
    echo "crds/ is stale: run cargo run --bin ampd -- crdgen --out-dir crds" >&2
    status=1
  fi
fi
if [ -f docs/openapi.json ]; then
  if ! "$ampd" openapi | diff -u docs/openapi.json -; then
    echo "docs/openapi.json is stale: run cargo run -q --bin ampd -- openapi > docs/openapi.json" >&2
    status=1
  fi
fi
exit $status
