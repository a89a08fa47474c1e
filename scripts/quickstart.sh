#!/usr/bin/env bash
# Quickstart: a throwaway PostgreSQL, migrations, two workers on different versions, the
# Admin API, and `ampctl worker list`. Everything lives in a temp dir and is removed on exit.
#   ./scripts/quickstart.sh            # runs until Ctrl-C
#   QUICKSTART_ONESHOT=1 ./scripts/quickstart.sh   # show the fleet once, then clean up
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL (Debian package)..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  else
    echo "PostgreSQL server binaries not found: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
fi

echo "building ampd and ampctl..."
cargo build --locked --bins -q
ampd=$PWD/target/debug/ampd
ampctl=$PWD/target/debug/ampctl

work=$(mktemp -d /tmp/amp-quickstart.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work"; as_pg=(runuser -u postgres --); fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -U amp -A trust --no-sync >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $work" start >/dev/null
export AMP_DATABASE_URL="postgres://amp@127.0.0.1:$port/postgres"
echo "PostgreSQL on 127.0.0.1:$port (data in $work)"

"$ampd" migrate
AMPD_VERSION=v0.0.22-15-g8b065bde "$ampd" --log-format text worker --node-id worker-01 >"$work/worker-01.log" 2>&1 &
pids+=($!)
AMPD_VERSION=v0.0.21-8-ga1b2c3d4 "$ampd" --log-format text worker --node-id worker-02 >"$work/worker-02.log" 2>&1 &
pids+=($!)

admin_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AMP_ADMIN_URL="http://127.0.0.1:$admin_port"
"$ampd" --log-format text admin-api --listen "127.0.0.1:$admin_port" >"$work/admin-api.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 50); do
  curl -fsS "$AMP_ADMIN_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
sleep 2
echo
echo "\$ ampctl worker list"
"$ampctl" worker list
echo
echo "\$ ampctl worker versions"
"$ampctl" worker versions || true

# With a cluster (KUBECONFIG), the operator mirrors the workers into AmpWorkers.
if [ -n "${KUBECONFIG:-}" ] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  ns=${QUICKSTART_NAMESPACE:-amp-quickstart}
  kubectl apply -f crds/ >/dev/null
  kubectl create namespace "$ns" >/dev/null 2>&1 || true
  "$ampd" --log-format text operator --namespace "$ns" --leader-election false \
    --listen 127.0.0.1:0 >"$work/operator.log" 2>&1 &
  pids+=($!)
  sleep 5
  echo
  echo "\$ kubectl get ampworkers -n $ns"
  kubectl get ampworkers -n "$ns"
else
  echo
  echo "operator: skipped (no reachable cluster in KUBECONFIG; see docs/operator.md)"
fi
echo
echo "export AMP_ADMIN_URL=$AMP_ADMIN_URL   # then try: $ampctl worker inspect worker-01 --json | jq ."

if [ "${QUICKSTART_ONESHOT:-}" = 1 ]; then exit 0; fi
echo "stack running; Ctrl-C to stop and clean up"
wait
