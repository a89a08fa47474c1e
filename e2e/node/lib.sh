# Sourced by e2e/node/*.sh: where the one-node cluster lives and how its processes are
# tracked. Everything it starts is recorded in $NODE_DIR/pids/NAME.pid and stopped by
# e2e/node/down.sh.
#
# NODE_DIR   state (certs, configs, logs, containerd and kubelet roots); default
#            target/node in the checkout
# HOST_IP    the machine's own interface address (pods cannot reach its loopback)

NODE_DIR=${AMP_NODE_DIR:-$PWD/target/node}
NODE_BIN=${NODE_BIN:-}
NODE_NAME=$(hostname | tr '[:upper:]' '[:lower:]')
HOST_IP=${AMP_NODE_HOST_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}')}
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
SERVICE_CIDR=10.96.0.0/16
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24
DNS_IP=10.96.0.10
API_PORT=6443
ETCD_PORT=23790

node_log() { printf 'node: %s\n' "$*" >&2; }
node_fail() { printf 'node: FAILED: %s\n' "$*" >&2; exit 1; }

pid_of() { cat "$NODE_DIR/pids/$1.pid" 2>/dev/null; }
running() { local p; p=$(pid_of "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# start NAME CMD...: runs CMD in the background (own session), logs to logs/NAME.log.
start() {
  local name=$1; shift
  if running "$name"; then return 0; fi
  mkdir -p "$NODE_DIR/pids" "$NODE_DIR/logs"
  setsid "$@" >>"$NODE_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$NODE_DIR/pids/$name.pid"
}

# poll SECONDS INTERVAL CMD...: runs CMD (quietly) every INTERVAL seconds until it
# succeeds; non-zero when SECONDS pass first.
poll() {
  local end=$(( $(date +%s) + $1 )) interval=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep "$interval"
  done
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds; fails loudly with the logs.
wait_for() {
  local what=$1 secs=$2; shift 2
  poll "$secs" 0.2 "$@" && return 0
  node_log "$what not ready within ${secs}s; last log lines:"
  tail -n 30 "$NODE_DIR"/logs/*.log >&2 2>/dev/null || true
  node_fail "$what"
}

kc() { kubectl --kubeconfig "$NODE_DIR/kubeconfig" "$@"; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# write_if_changed FILE < CONTENT: kube-proxy exits when its config file is written, even
# with the same content, so a second up.sh must leave unchanged files alone.
write_if_changed() {
  local tmp=$1.new
  cat > "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}
