#!/usr/bin/env bash
# Quickstart: the whole product on this machine. A throwaway PostgreSQL, migrations, two
# workers on different versions, the Admin API and ampctl; then the operator mirroring
# the workers into AmpWorkers and judging an AmpWorkerFleet, on
#   - the cluster in KUBECONFIG when it answers (kind: ./scripts/kind-up.sh), else
#   - an embedded control plane: a real etcd + kube-apiserver (envtest, no pods) from
#     KUBEBUILDER_ASSETS or ../shared/envtest (scripts/envtest-assets.sh), as the tests use.
# Everything lives in one temp dir (under TMPDIR) and is stopped and removed on exit.
#   ./scripts/quickstart.sh                         # runs until Ctrl-C
#   QUICKSTART_ONESHOT=1 ./scripts/quickstart.sh    # one picture, then clean up
# AMPD, AMPCTL and AMP_ENVTEST_BIN name prebuilt binaries (tests/quickstart.rs); else
# cargo builds them and says where they are (CARGO_TARGET_DIR is honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/envtest.sh # and scripts/lib/cargo.sh
export PATH=$PWD/.ci/bin:$PATH # kubectl from .ci/install-tools.sh, if it put one there

say() { printf 'quickstart: %s\n' "$*"; }
fail() { printf 'quickstart: FAILED: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- PostgreSQL server binaries --------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing PostgreSQL (Debian package)..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  else
    fail "PostgreSQL server binaries not found: sudo apt-get install -y postgresql"
  fi
fi

# --- where the operator runs: a cluster that answers, else envtest, else say why not ----
kube=     # cluster | envtest | empty (then kube_missing says why)
kube_missing=
if ! command -v kubectl >/dev/null 2>&1; then
  kube_missing="kubectl not found: bash .ci/install-tools.sh puts it in .ci/bin (or install kubectl)"
elif [ -n "${KUBECONFIG:-}" ] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  kube=cluster
else
  [ -n "${KUBECONFIG:-}" ] && say "KUBECONFIG=$KUBECONFIG does not answer; trying the embedded control plane"
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]; then
    kube=envtest
  elif assets=$(./scripts/envtest-assets.sh 2>"${TMPDIR:-/tmp}/amp-quickstart-assets.$$"); then
    export KUBEBUILDER_ASSETS=$assets
    kube=envtest
  else
    why=$(tail -n 1 "${TMPDIR:-/tmp}/amp-quickstart-assets.$$")
    cluster="KUBECONFIG unset"
    [ -n "${KUBECONFIG:-}" ] && cluster="KUBECONFIG=$KUBECONFIG does not answer"
    kube_missing="no cluster ($cluster) and no envtest binaries (${why#envtest-assets: }): run ./scripts/kind-up.sh (Docker) then KUBECONFIG=~/.kube/config ./scripts/quickstart.sh, or set KUBEBUILDER_ASSETS to a directory holding kube-apiserver and etcd"
  fi
  rm -f "${TMPDIR:-/tmp}/amp-quickstart-assets.$$"
fi

# --- binaries ----------------------------------------------------------------------------
ampd=${AMPD:-} ampctl=${AMPCTL:-} envtest_bin=${AMP_ENVTEST_BIN:-}
if [ -z "$ampd" ] || [ -z "$ampctl" ] || { [ "$kube" = envtest ] && [ -z "$envtest_bin" ]; }; then
  say "building ampd, ampctl and amp-envtest (cargo build --features testing --bins)..."
  # One build for all three: the same features as scripts/test.sh's amp-envtest.
  built=$(cargo_build_bins --locked --features testing --bins) || fail "cargo build"
  bin_path() { awk -v n="$1" '$1 == n {print $2}' <<< "$built"; }
  ampd=${AMPD:-$(bin_path ampd)} ampctl=${AMPCTL:-$(bin_path ampctl)}
  envtest_bin=${AMP_ENVTEST_BIN:-$(bin_path amp-envtest)}
fi
export AMP_ENVTEST_BIN=$envtest_bin

# --- processes, cleanup ------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/amp-quickstart.XXXXXX")
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work"; as_pg=(runuser -u postgres --); fi
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  envtest_stop
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn NAME CMD...: runs CMD in the background, logging to $work/NAME.log.
declare -A pid_of=()
spawn() {
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
}
# alive NAME: fails loudly, with the last lines of NAME's own log, when it has exited.
alive() {
  kill -0 "${pid_of[$1]}" 2>/dev/null && return 0
  printf 'quickstart: FAILED: %s exited during start-up; last lines of its log:\n' "$1" >&2
  tail -n 15 "$work/$1.log" >&2
  exit 1
}

# --- PostgreSQL, workers, Admin API ------------------------------------------------------
port=$(free_port)
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -U amp -A trust --no-sync >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $work" start >/dev/null \
  || { tail -n 15 "$work/pg.log" >&2; fail "PostgreSQL did not start (port $port)"; }
export AMP_DATABASE_URL="postgres://amp@127.0.0.1:$port/postgres"
say "PostgreSQL on 127.0.0.1:$port (data in $work)"

"$ampd" migrate >"$work/migrate.log" 2>&1 || { tail -n 15 "$work/migrate.log" >&2; fail "ampd migrate"; }
AMPD_VERSION=v0.0.22-15-g8b065bde spawn worker-01 "$ampd" --log-format text worker --node-id worker-01
AMPD_VERSION=v0.0.21-8-ga1b2c3d4 spawn worker-02 "$ampd" --log-format text worker --node-id worker-02

admin_port=$(free_port)
export AMP_ADMIN_URL="http://127.0.0.1:$admin_port"
spawn admin-api "$ampd" --log-format text admin-api --listen "127.0.0.1:$admin_port"

# Both workers listed by the Admin API (each registers within a second of starting).
for _ in $(seq 1 100); do
  alive worker-01; alive worker-02; alive admin-api
  [ "$("$ampctl" worker list 2>/dev/null | grep -c '^worker-0')" = 2 ] && break
  sleep 0.2
done
echo
echo "\$ ampctl worker list"
"$ampctl" worker list
echo
echo "\$ ampctl worker versions"
"$ampctl" worker versions 2>&1 || true

# --- the operator -----------------------------------------------------------------------
ns=${QUICKSTART_NAMESPACE:-amp-quickstart}
fleet_version=v0.0.22-15-g8b065bde
if [ "$kube" = envtest ]; then
  echo
  say "starting the embedded control plane (etcd + kube-apiserver, CRDs installed)..."
  envtest_start "$work/envtest" 2>"$work/envtest-start.log" \
    || { cat "$work/envtest-start.log" >&2; fail "embedded control plane (amp-envtest)"; }
  export KUBECONFIG=$AMP_ENVTEST_KUBECONFIG
elif [ "$kube" = cluster ]; then
  kubectl apply --server-side -f crds/ >/dev/null || fail "kubectl apply -f crds/"
fi
if [ -n "$kube" ]; then
  kubectl create namespace "$ns" >/dev/null 2>&1 || true
  kubectl apply -f - >/dev/null <<EOF || fail "kubectl apply AmpWorkerFleet"
apiVersion: amp.io/v1alpha1
kind: AmpWorkerFleet
metadata: {name: amp, namespace: $ns}
spec:
  version: $fleet_version
EOF
  spawn operator "$ampd" --log-format text operator --namespace "$ns" --leader-election false \
    --listen 127.0.0.1:0
  # The picture is complete when both workers are judged and the fleet has a status.
  states() { kubectl get ampworkers -n "$ns" -o jsonpath='{range .items[*]}{.status.state}{"\n"}{end}' 2>/dev/null | sort | tr '\n' ' '; }
  for i in $(seq 1 150); do
    alive operator
    [ "$(states)" = "Ready VersionMismatch " ] \
      && [ -n "$(kubectl get ampworkerfleet amp -n "$ns" -o jsonpath='{.status.readySummary}' 2>/dev/null)" ] && break
    [ "$i" = 150 ] && { tail -n 15 "$work/operator.log" >&2; fail "the operator did not judge both workers within 30 s (states: $(states))"; }
    sleep 0.2
  done
  echo
  echo "\$ kubectl get ampworkers -n $ns"
  kubectl get ampworkers -n "$ns"
  echo
  echo "\$ kubectl get ampworkerfleets -n $ns"
  kubectl get ampworkerfleets -n "$ns"
  where="the cluster in KUBECONFIG"
  [ "$kube" = envtest ] && where="embedded control plane: etcd + kube-apiserver, no pods"
  cat <<EOF

ampd operator mirrors each worker into an AmpWorker ($where).
The fleet expects $fleet_version; worker-02 runs v0.0.21-8-ga1b2c3d4, so it is
VersionMismatch and the fleet is not Ready. Try, from another shell:

  export KUBECONFIG=$KUBECONFIG
  export AMP_ADMIN_URL=$AMP_ADMIN_URL
  kubectl wait --for=condition=Ready ampworkerfleet/amp -n $ns --timeout=10s   # times out
  $ampctl worker check --expect-version $fleet_version   # ❌ worker-02, exit 1
  kill ${pid_of[worker-01]}   # stop worker-01: Stopped at once (its lock is released); kill -STOP freezes it instead: Stale after 30 s
  kubectl get ampworkers -n $ns -w
EOF
else
  echo
  echo "$ampctl worker inspect worker-01 --json   # with: export AMP_ADMIN_URL=$AMP_ADMIN_URL"
  echo
  say "operator not started: $kube_missing"
fi

if [ "${QUICKSTART_ONESHOT:-}" = 1 ]; then exit 0; fi
echo
say "running; Ctrl-C stops everything and removes $work"
wait "${pids[@]}"
