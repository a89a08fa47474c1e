#!/usr/bin/env bash
# Stops the one-node cluster of e2e/node/up.sh and leaves nothing running: the pods'
# containers first (while containerd still answers), then every process up.sh started,
# by PID, then the mounts, the pod bridge and the iptables rules kube-proxy and the CNI
# plugins made. Keeps $NODE_DIR (logs, certs) unless --purge.
set -uo pipefail
cd "$(dirname "$0")/../.."
. e2e/node/lib.sh

[ -d "$NODE_DIR/pids" ] || exit 0

# Ask kubelet to stop first so it does not restart what we kill.
for name in kubelet kube-proxy; do
  p=$(pid_of "$name") && kill -TERM "$p" 2>/dev/null
done
sleep 1

# Every container and sandbox of the node, then their shims.
if running containerd; then
  for task in $(ctr_k8s tasks ls -q 2>/dev/null); do
    ctr_k8s tasks kill -s SIGKILL "$task" >/dev/null 2>&1
  done
  sleep 1
  for task in $(ctr_k8s tasks ls -q 2>/dev/null); do
    ctr_k8s tasks delete -f "$task" >/dev/null 2>&1
  done
  for c in $(ctr_k8s containers ls -q 2>/dev/null); do
    ctr_k8s containers delete "$c" >/dev/null 2>&1
  done
fi
# Shims outlive containerd by design; ours are the ones whose -address is our socket.
pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null

for name in dns kube-scheduler kube-controller-manager kube-proxy kubelet containerd kube-apiserver etcd; do
  p=$(pid_of "$name") || continue
  kill -TERM "$p" 2>/dev/null || { rm -f "$NODE_DIR/pids/$name.pid"; continue; }
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  rm -f "$NODE_DIR/pids/$name.pid"
done

# kubelet's volume mounts (secrets, tmpfs) and containerd's overlay mounts.
awk -v d="$NODE_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null
done
ip link delete cni0 2>/dev/null
# The rules kube-proxy and the CNI plugins added (their chains only; the host's stay).
kube_proxy=$(cat "$NODE_DIR/bin" 2>/dev/null)/kube-proxy
[ -x "$kube_proxy" ] && "$kube_proxy" --cleanup >/dev/null 2>&1
# drop_chain TABLE CHAIN: the built-in chains' jumps to CHAIN, then CHAIN itself.
drop_chain() {
  iptables -t "$1" -S 2>/dev/null | grep -E "^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j $2( |$)" \
    | sed 's/^-A/-D/' | while read -r rule; do eval iptables -t "$1" "$rule" 2>/dev/null; done
  iptables -t "$1" -F "$2" 2>/dev/null && iptables -t "$1" -X "$2" 2>/dev/null
}
# kubelet's own chains (kube-proxy --cleanup leaves them), then the CNI plugins' ones.
for table in filter nat mangle; do
  for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do drop_chain "$table" "$chain"; done
done
iptables-save -t nat 2>/dev/null | grep -oE 'CNI-[0-9a-f]{24}' | sort -u | while read -r chain; do
  drop_chain nat "$chain"
done

if [ "${1:-}" = --purge ]; then
  rm -rf "$NODE_DIR"
fi
echo "node: stopped"
