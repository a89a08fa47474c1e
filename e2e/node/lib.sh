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
# etcd's ports are chosen free by up.sh (only the API server talks to etcd).

node_log() { printf 'node: %s\n' "$*" >&2; }
node_fail() { printf 'node: FAILED: %s\n' "$*" >&2; exit 1; }

pid_of() { cat "$NODE_DIR/pids/$1.pid" 2>/dev/null; }
running() { local p; p=$(pid_of "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# --- ports --------------------------------------------------------------------------------
# port_listeners PROTO PORT: "ADDRESS HOLDER" for every socket listening on PORT (ss from
# iproute2; the holder is "NAME (pid N)" when ss may see it).
port_listeners() {
  local flag=t
  [ "$1" = udp ] && flag=u
  ss -Hlnp$flag "( sport = :$2 )" 2>/dev/null | awk '{
    addr = $4; sub(/:[0-9*]+$/, "", addr); sub(/%.*/, "", addr); gsub(/[][]/, "", addr)
    holder = "a process ss cannot name (run as root to see it)"
    if (match($0, /users:\(\("[^"]*",pid=[0-9]+/)) {
      split(substr($0, RSTART + 9, RLENGTH - 9), part, "\",pid=")
      holder = part[1] " (pid " part[2] ")"
    }
    print addr, holder
  }'
}

# need_port NAME PROTO ADDRESS PORT: fails at once, in one line naming the port and its
# holder, when PORT is taken where NAME will bind it (ADDRESS, or any address for
# 0.0.0.0). NAME's own process from an earlier up.sh may hold it.
need_port() {
  local name=$1 proto=$2 addr=$3 port=$4 at holder
  command -v ss >/dev/null || node_fail "ss missing (checks the node's ports): apt-get install -y iproute2"
  running "$name" && return 0
  while read -r at holder; do
    case "$at" in
      "$addr" | 0.0.0.0 | "*" | "::" | "") ;;
      *) [ "$addr" = 0.0.0.0 ] || continue ;;
    esac
    node_fail "$name needs $proto port $addr:$port, held by $holder (see: ss -lnp${proto:0:1} 'sport = :$port')"
  done < <(port_listeners "$proto" "$port")
}

# free_port: a loopback TCP port nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- processes -----------------------------------------------------------------------------
# Every component started or found running by this script, watched by wait_for.
NODE_STARTED=()

# start NAME CMD...: runs CMD in the background (own session), logs to logs/NAME.log.
start() {
  local name=$1; shift
  NODE_STARTED+=("$name")
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

# exit_cause LOG: the line that says why a component stopped, in its own words: etcd's
# JSON fatal/error entry, a klog E/F line, else the last line reading like an error.
exit_cause() {
  local line
  line=$(grep -E '"level":"(fatal|panic|error)"|^[EF][0-9]{4} ' "$1" 2>/dev/null | tail -n 1)
  [ -n "$line" ] || line=$(grep -iE 'error|fatal|failed|address already in use' "$1" 2>/dev/null | tail -n 1)
  [ -n "$line" ] || line=$(tail -n 1 "$1" 2>/dev/null)
  # etcd: "msg" and "error" of the JSON entry; klog: the message after "] ".
  if [[ $line == "{"* ]]; then
    line=$(python3 -c 'import json, sys; e = json.loads(sys.argv[1]); print(e.get("msg", ""), e.get("error", ""), sep=": ")' "$line" 2>/dev/null || echo "$line")
  elif [[ $line =~ ^[EF][0-9]{4}\  ]]; then
    line=${line#*] }
  fi
  echo "${line:-(its log is empty)}" | cut -c1-400
}

# node_exited NAME: NAME is not running: its own last log lines, then one FAILED line.
node_exited() {
  local log=$NODE_DIR/logs/$1.log
  node_log "$1 exited during start-up; last lines of $log:"
  tail -n 20 "$log" >&2 2>/dev/null || true
  node_fail "$1 exited during start-up: $(exit_cause "$log")"
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds. A component that exits
# meanwhile fails at once with its own log (not as a timeout of WHAT); a timeout fails
# loudly with every log.
wait_for() {
  local what=$1 secs=$2 name; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    for name in "${NODE_STARTED[@]}"; do running "$name" || node_exited "$name"; done
    if [ "$(date +%s)" -ge "$end" ]; then
      node_log "$what not ready within ${secs}s; last log lines:"
      tail -n 30 "$NODE_DIR"/logs/*.log >&2 2>/dev/null || true
      node_fail "$what"
    fi
    sleep 0.2
  done
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
