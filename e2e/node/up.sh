#!/usr/bin/env bash
# A one-node Kubernetes v1.36 cluster on this machine, without Docker: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy from
# ../shared/envtest (or KUBEBUILDER_ASSETS plus the node binaries), Debian's containerd,
# runc and CNI plugins, a host DNS server for cluster.local. Facts behind every setting:
# ../shared/envtest/NODE.md.
#
#   e2e/node/up.sh      prints the kubeconfig path when the node is Ready
#   e2e/node/down.sh    stops everything this started (by PID) and cleans up
#
# Idempotent: a running node is left as it is. Needs root. Fails loudly (exit 1, with
# the failing component's log) when any piece cannot be had or does not come up.
set -euo pipefail
cd "$(dirname "$0")/../.."
. e2e/node/lib.sh

[ "$(id -u)" = 0 ] || node_fail "needs root (containerd, kubelet, iptables)"
[ -n "$HOST_IP" ] || node_fail "no interface address found (set AMP_NODE_HOST_IP)"
for tool in containerd runc ctr iptables conntrack openssl python3 kubectl; do
  command -v "$tool" >/dev/null || node_fail "$tool missing: apt-get install -y containerd runc containernetworking-plugins iptables conntrack (kubectl: .ci/install-tools.sh)"
done
[ -x /usr/lib/cni/bridge ] || node_fail "CNI plugins missing: apt-get install -y containernetworking-plugins"

# NODE_BIN, else KUBEBUILDER_ASSETS when it holds the node binaries too, else unpacked
# from ../shared/envtest into target/envtest/bin.
if [ -z "$NODE_BIN" ] && [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kubelet" ]; then
  NODE_BIN=$KUBEBUILDER_ASSETS
fi
if [ -z "$NODE_BIN" ]; then
  NODE_BIN=$(bash scripts/envtest-assets.sh --node) || node_fail "Kubernetes binaries (../shared/envtest)"
fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  [ -x "$NODE_BIN/$b" ] || node_fail "$b not in $NODE_BIN"
done
mkdir -p "$NODE_DIR"/{pki,pids,logs,etcd,cni/net.d,cni/ipam,containerd,kubelet,manifests}
echo "$NODE_BIN" > "$NODE_DIR/bin"

# --- ports: every one checked before anything starts -----------------------------------
# etcd's are free ones (only the API server uses them), kept in etcd.ports so that a
# second up.sh finds a running etcd, or restarts it where the API server expects it.
ETCD_PORT= ETCD_PEER_PORT=
if [ -f "$NODE_DIR/etcd.ports" ]; then read -r ETCD_PORT ETCD_PEER_PORT < "$NODE_DIR/etcd.ports"; fi
if ! running etcd && [ -n "$(port_listeners tcp "${ETCD_PORT:-0}")$(port_listeners tcp "${ETCD_PEER_PORT:-0}")" ]; then
  ETCD_PORT=
fi
if [ -z "$ETCD_PORT" ] || [ -z "$ETCD_PEER_PORT" ]; then
  ETCD_PORT=$(free_port)
  until ETCD_PEER_PORT=$(free_port) && [ "$ETCD_PEER_PORT" != "$ETCD_PORT" ]; do :; done
  echo "$ETCD_PORT $ETCD_PEER_PORT" > "$NODE_DIR/etcd.ports"
fi
# The others are the components' well-known ports, which their peers expect.
need_port etcd tcp 127.0.0.1 "$ETCD_PORT"
need_port etcd tcp 127.0.0.1 "$ETCD_PEER_PORT"
need_port kube-apiserver tcp 0.0.0.0 "$API_PORT"
need_port kube-controller-manager tcp 127.0.0.1 10257
need_port kube-scheduler tcp 127.0.0.1 10259
need_port kubelet tcp 0.0.0.0 10250
need_port kubelet tcp 127.0.0.1 10248
need_port kube-proxy tcp 0.0.0.0 10256
need_port kube-proxy tcp 127.0.0.1 10249
need_port dns udp "$HOST_IP" 53
need_port dns tcp "$HOST_IP" 53

# --- certificates: one CA for everything, a cert per identity -------------------------
pki=$NODE_DIR/pki
if [ ! -f "$pki/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=amp-node-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi
# cert NAME SUBJECT [SANS]
cert() {
  local name=$1 subj=$2 sans=${3:-}
  [ -f "$pki/$name.crt" ] && return 0
  local ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth,serverAuth"
  [ -n "$sans" ] && ext="$ext
subjectAltName=$sans"
  openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -out "$pki/$name.crt" -extfile <(echo "$ext") 2>/dev/null
}
cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:$HOST_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=amp-node-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME"
cert kubelet-serving "/CN=$NODE_NAME" "IP:$HOST_IP,IP:127.0.0.1,DNS:$NODE_NAME"

# kubeconfig NAME CERT: a kubeconfig for one identity, at the host address (pods and
# host alike reach it there).
kubeconfig() {
  write_if_changed "$NODE_DIR/$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: amp-node
  cluster: {server: "https://$HOST_IP:$API_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$pki/$2.crt", client-key: "$pki/$2.key"}
contexts:
- name: amp-node
  context: {cluster: amp-node, user: $2}
current-context: amp-node
EOF
}
kubeconfig kubeconfig admin
kubeconfig controller-manager.kubeconfig controller-manager
kubeconfig scheduler.kubeconfig scheduler
kubeconfig kube-proxy.kubeconfig kube-proxy
kubeconfig kubelet.kubeconfig kubelet-client

# --- host networking -------------------------------------------------------------------
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
modprobe br_netfilter 2>/dev/null && sysctl -qw net.bridge.bridge-nf-call-iptables=1 || true

# --- etcd + kube-apiserver -------------------------------------------------------------
start etcd "$NODE_BIN/etcd" --data-dir "$NODE_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
start kube-apiserver "$NODE_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 0.0.0.0 --advertise-address "$HOST_IP" --secure-port "$API_PORT" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --api-audiences https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --allow-privileged=true
wait_for "kube-apiserver /readyz" 90 kc get --raw /readyz

# --- controller-manager, scheduler -----------------------------------------------------
start kube-controller-manager "$NODE_BIN/kube-controller-manager" \
  --kubeconfig "$NODE_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$NODE_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$NODE_DIR/controller-manager.kubeconfig" \
  --controllers '*' --use-service-account-credentials \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$SERVICE_CIDR" --leader-elect=false --bind-address 127.0.0.1
start kube-scheduler "$NODE_BIN/kube-scheduler" \
  --kubeconfig "$NODE_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$NODE_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig "$NODE_DIR/scheduler.kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1

# --- containerd (its own root and socket: a system containerd is left alone) ----------
write_if_changed "$NODE_DIR/cni/net.d/10-amp-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "amp-node",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_DIR/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
write_if_changed "$NODE_DIR/containerd/config.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/amp-node/pause:1"
  # This VM has no CAP_SYS_RESOURCE: runc fails to raise oom_score_adj without these.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
start containerd containerd --config "$NODE_DIR/containerd/config.toml"
wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
bash e2e/node/images.sh pause

# --- kubelet, kube-proxy -----------------------------------------------------------------
write_if_changed "$NODE_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Local images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
staticPodPath: "$NODE_DIR/manifests"
serializeImagePulls: false
EOF
start kubelet "$NODE_BIN/kubelet" --config "$NODE_DIR/kubelet/config.yaml" \
  --kubeconfig "$NODE_DIR/kubelet.kubeconfig" --root-dir "$NODE_DIR/kubelet/root" \
  --hostname-override "$NODE_NAME" --node-ip "$HOST_IP" --v 1
write_if_changed "$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$NODE_DIR/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
# This VM may not change conntrack sysctls: leave them as they are.
conntrack: {maxPerCore: 0}
EOF
start kube-proxy "$NODE_BIN/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml"

# --- cluster DNS: a host server behind kube-system/kube-dns ------------------------------
if ! python3 -c 'import dnslib' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check dnslib==0.9.26 >&2 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages dnslib==0.9.26 >&2 \
    || node_fail "PyPI dnslib"
fi
upstream=$(awk '$1 == "nameserver" {print $2; exit}' /etc/resolv.conf)
start dns python3 e2e/node/dns.py --listen "$HOST_IP" --kubeconfig-dir "$NODE_DIR" \
  --api "https://$HOST_IP:$API_PORT" --upstream "${upstream:-127.0.0.1}"
kc apply --server-side --field-manager amp-node -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: amp-node}
addressType: IPv4
endpoints:
- addresses: ["$HOST_IP"]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF

# No StorageClass: the chart's bundled PostgreSQL uses an emptyDir unless
# postgresql.storage.persistent, which this node does not offer.

wait_for "node $NODE_NAME Ready" 120 kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
wait_for "default ServiceAccount" 60 kc get serviceaccount default -n default
node_log "node $NODE_NAME Ready (API https://$HOST_IP:$API_PORT)"
echo "$NODE_DIR/kubeconfig"
