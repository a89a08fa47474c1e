#!/usr/bin/env bash
# Fails when checked-in generated files (CRDs, OpenAPI document) differ from what the code produces.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bins -q
status=0
if [ -d crds ]; then
  tmp=$(mktemp -d)
  ./target/debug/ampd crdgen --out-dir "$tmp" >/dev/null
  if ! diff -ru crds "$tmp"; then
    echo "crds/ is stale: run ./target/debug/ampd crdgen --out-dir crds" >&2
    status=1
  fi
fi
if [ -f docs/openapi.json ]; then
  if ! ./target/debug/ampd openapi | diff -u docs/openapi.json -; then
    echo "docs/openapi.json is stale: run ./target/debug/ampd openapi > docs/openapi.json" >&2
    status=1
  fi
fi
exit $status
