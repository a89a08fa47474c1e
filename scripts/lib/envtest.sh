# Sourced by scripts/test.sh, e2e/run.sh and scripts/quickstart.sh: one shared envtest
# control plane per run.
#   envtest_start DIR   prepares the binaries, starts amp-envtest, exports
#                       AMP_ENVTEST_KUBECONFIG=DIR/kubeconfig and ENVTEST_PID
#   envtest_stop        stops it (SIGTERM; it stops etcd and kube-apiserver by PID)
# Returns non-zero with the reason on stderr when it cannot start. AMP_ENVTEST_BIN names
# a built amp-envtest; else cargo builds it and says where it is (CARGO_TARGET_DIR).
. "$(dirname "${BASH_SOURCE[0]}")/cargo.sh"

envtest_start() {
  local dir=$1 assets
  if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
    assets=$(./scripts/envtest-assets.sh) || return 1
    export KUBEBUILDER_ASSETS=$assets
  fi
  local bin=${AMP_ENVTEST_BIN:-}
  if [ -z "$bin" ]; then
    bin=$(cargo_bin amp-envtest --locked --features testing --bin amp-envtest) || return 1
  fi
  mkdir -p "$dir"
  rm -f "$dir/kubeconfig"
  "$bin" "$dir/kubeconfig" >"$dir/amp-envtest.log" 2>&1 &
  ENVTEST_PID=$!
  local i
  for i in $(seq 1 600); do
    if [ -f "$dir/kubeconfig" ]; then
      export AMP_ENVTEST_KUBECONFIG=$dir/kubeconfig
      cat "$dir/amp-envtest.log" >&2
      return 0
    fi
    if ! kill -0 "$ENVTEST_PID" 2>/dev/null; then
      echo "envtest: the control plane did not start:" >&2
      cat "$dir/amp-envtest.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "envtest: the control plane was not ready within 120 s:" >&2
  cat "$dir/amp-envtest.log" >&2
  return 1
}

envtest_stop() {
  if [ -n "${ENVTEST_PID:-}" ]; then
    kill -TERM "$ENVTEST_PID" 2>/dev/null || true
    wait "$ENVTEST_PID" 2>/dev/null || true
    ENVTEST_PID=
  fi
}
