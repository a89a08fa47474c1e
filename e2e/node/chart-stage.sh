#!/usr/bin/env bash
# CI stage "chart on a real node": charts/amp with real pods on the one-node cluster of
# e2e/node/up.sh, images built here (e2e/node/images.sh). In order:
#   1. CRDs applied beforehand (README order), then `helm install --wait` with default
#      values (bundled PostgreSQL) and two operator replicas: install -> fleet Ready
#   2. the leader operator pod deleted: the standby takes the Lease, writes no duplicate
#      events, and keeps the fleet Ready
#   3. the installed-chart e2e test (a worker pod deleted, its restart counted)
#   4. `helm upgrade` to a second image tag: every worker rolls, every AmpWorker reports
#      the new version, the fleet is Ready again (timed)
#   5. a hung worker restarted: with fleet.remediation.mode=Restart, one worker's process
#      frozen from the host (SIGSTOP) goes Stale, the operator deletes its Pod, the
#      StatefulSet recreates it under the same name and the AmpWorker of that node id is
#      Ready again, its status and a Warning event recording the restart (timed)
#   6. a second release in another namespace installs beside the first
#   7. `helm uninstall` of both keeps the CRDs and the AmpWorkers
# Prints figures (seconds, image size). Starts from an empty node (e2e/node/down.sh
# --purge) and stops it on exit unless AMP_NODE_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
. e2e/node/lib.sh
export PATH=$PWD/.ci/bin:$PATH
# Before anything is built (a quarter of an hour cold): the tools the steps need.
for tool in helm kubectl; do
  command -v "$tool" >/dev/null \
    || { echo "chart-stage: $tool missing: bash .ci/install-tools.sh puts it in .ci/bin" >&2; exit 1; }
done

T1=${AMP_NODE_TAG1:-0.1.0-node.1}
T2=${AMP_NODE_TAG2:-0.1.0-node.2}
NS=amp
NS2=amp-two
stage_start=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
say() { printf '\n--- %s\n' "$*"; }
frozen_pid=""
fail() {
  printf 'chart-stage: FAILED: %s\n' "$*" >&2
  [ -z "$frozen_pid" ] || kill -CONT "$frozen_pid" 2>/dev/null || true
  kc get pods,ampworkers,ampworkerfleets -A -o wide >&2 || true
  kc get events -n "$NS" --sort-by=.lastTimestamp 2>/dev/null | tail -n 30 >&2 || true
  printf -- '--- operator logs (last lines of each replica)\n' >&2
  kc logs -n "$NS" -l app.kubernetes.io/component=operator --prefix --tail=25 >&2 2>/dev/null || true
  exit 1
}
cleanup() {
  if [ "${AMP_NODE_KEEP:-0}" != 1 ]; then bash e2e/node/down.sh >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# jsonpath of one object
jp() { kc get "$1" -n "${3:-$NS}" -o "jsonpath=$2" 2>/dev/null; }

# fleet_ready NS VERSION: Ready=True for the current generation, expecting VERSION.
fleet_ready() {
  local fleet
  fleet=$(kc get ampworkerfleets -n "$1" -o json) || return 1
  python3 - "$2" "$fleet" <<'EOF'
import json, sys
want, items = sys.argv[1], json.loads(sys.argv[2])["items"]
ok = len(items) == 1
for f in items:
    st = f.get("status") or {}
    ready = [c for c in st.get("conditions", []) if c["type"] == "Ready"]
    ok = ok and f["spec"].get("version") == want \
        and st.get("observedGeneration") == f["metadata"]["generation"] \
        and bool(ready) and ready[0]["status"] == "True"
sys.exit(0 if ok else 1)
EOF
}

# workers_on NS VERSION COUNT: COUNT AmpWorkers, all Ready and reporting VERSION.
workers_on() {
  local got
  got=$(kc get ampworkers -n "$1" -o jsonpath='{range .items[*]}{.status.state}/{.status.info.version}{"\n"}{end}') || return 1
  [ "$(grep -cx "Ready/$2" <<< "$got")" = "$3" ] && [ "$(grep -c . <<< "$got")" = "$3" ]
}

# has_condition OBJECT TYPE STATUS (in $NS)
has_condition() {
  [ "$(jp "$1" "{.status.conditions[?(@.type==\"$2\")].status}")" = "$3" ]
}
# state_is AMPWORKER STATE (in $NS)
state_is() { [ "$(jp "ampworker/$1" '{.status.state}')" = "$2" ]; }
# worker_pid POD: the host PID of the pod's `ampd worker` process (its container's
# init process, as containerd's task list says).
worker_pid() {
  local cid pid tasks cmd
  cid=$(jp "pod/$1" '{.status.containerStatuses[?(@.name=="worker")].containerID}')
  cid=${cid#containerd://}
  [ -n "$cid" ] || return 1
  tasks=$(ctr_k8s tasks ls) || return 1
  pid=$(awk -v id="$cid" '$1 == id {print $2}' <<<"$tasks")
  [ -n "$pid" ] && cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline") || return 1
  [[ $cmd == *"ampd worker"* ]] || return 1
  echo "$pid"
}
# stopped PID: every thread of PID has stopped (SIGSTOP is delivered asynchronously).
stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status"; }
# pod_deleted POD UID: the Pod with UID is being deleted, or gone.
pod_deleted() {
  local got
  got=$(jp "pod/$1" '{.metadata.uid}/{.metadata.deletionTimestamp}')
  [ "${got%%/*}" != "$2" ] || [ -n "${got#*/}" ]
}
# pod_recreated POD UID: a Pod of that name with another uid runs Ready.
pod_recreated() {
  local uid
  uid=$(jp "pod/$1" '{.metadata.uid}')
  [ -n "$uid" ] && [ "$uid" != "$2" ] \
    && [ "$(jp "pod/$1" '{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
# warned_since KIND NAME SINCE: a Warning HungWorkerRestarted event on that object, at
# SINCE (epoch seconds) or later: a rerun on the same node still holds earlier runs' events.
warned_since() {
  kc get events.events.k8s.io -n "$NS" -o json | python3 -c '
import datetime, json, sys
kind, name, since = sys.argv[1], sys.argv[2], float(sys.argv[3])
def at(e):
    t = (e.get("series") or {}).get("lastObservedTime") or e.get("eventTime") or e.get("deprecatedLastTimestamp")
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() if t else 0
def match(e):
    r = e.get("regarding") or {}
    return e.get("type") == "Warning" and e.get("reason") == "HungWorkerRestarted" \
        and r.get("kind") == kind and r.get("name") == name and at(e) >= since - 1
sys.exit(0 if any(match(e) for e in json.load(sys.stdin)["items"]) else 1)' "$@"
}
# registered_since AMPWORKER WHEN: a worker process registered the node id after WHEN.
registered_since() {
  local at
  at=$(jp "ampworker/$1" '{.status.registeredAt}')
  [ -n "$at" ] && [ "$at" != "$2" ]
}

until_ok() { # SECONDS WHAT CMD...: like wait_for, failing with the cluster's state
  local secs=$1 what=$2; shift 2
  poll "$secs" 1 "$@" || fail "$what (not within ${secs}s)"
}

say "node"
# Every run starts from an empty node: a run that failed after its install left its
# releases in the node's etcd, and the next `helm install` would fail (name in use).
bash e2e/node/down.sh --purge >/dev/null
t=$(date +%s.%N)
bash e2e/node/up.sh >/dev/null
node_up=$(since "$t")
echo "node Ready in ${node_up}s"

say "images (buildah, no Docker)"
t=$(date +%s.%N)
bash e2e/node/images.sh amp "$T1"
bash e2e/node/images.sh amp "$T2"
bash e2e/node/images.sh postgres
images_s=$(since "$t")
image_size=$(STORAGE_DRIVER=vfs buildah images --format '{{.Size}}' "localhost/amp:$T1" | head -n 1)
base_size=$(STORAGE_DRIVER=vfs buildah images --format '{{.Size}}' localhost/amp-node/debian:bookworm | head -n 1)
echo "images built and imported in ${images_s}s; localhost/amp:$T1 $image_size (Debian base $base_size)"
values=(--set "image.repository=localhost/amp" --set image.pullPolicy=Never
        --set postgresql.image=localhost/amp-node/postgres:15-files)

say "1. CRDs applied beforehand, helm install --wait (default values, 2 operator replicas)"
kc apply --server-side -f crds/ >/dev/null
t=$(date +%s.%N)
helm --kubeconfig "$NODE_DIR/kubeconfig" install amp charts/amp -n "$NS" --create-namespace \
  "${values[@]}" --set "image.tag=$T1" --set operator.replicas=2 --wait --timeout 5m \
  || fail "helm install"
helm_wait=$(since "$t")
until_ok 180 "fleet Ready on $T1" fleet_ready "$NS" "$T1"
until_ok 60 "3 AmpWorkers Ready on $T1" workers_on "$NS" "$T1" 3
install_ready=$(since "$t")
[ -z "$(jp crd/ampworkers.amp.io '{.metadata.annotations.meta\.helm\.sh/release-name}' default)" ] \
  || fail "the release took over the pre-applied CRDs"
echo "helm install --wait ${helm_wait}s; install -> fleet Ready with 3 AmpWorkers ${install_ready}s"

say "2. the leader operator pod deleted"
lease=$(kc get leases -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.holderIdentity}{"\n"}{end}' | grep -- '-operator' | head -n 1)
lease_name=${lease%% *}
leader=${lease#* }
[ -n "$leader" ] && kc get pod "$leader" -n "$NS" >/dev/null || fail "no operator Lease holder ($lease)"
events_before=$(kc get events.events.k8s.io -n "$NS" -o json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin)["items"] if e.get("reportingController") == "amp-operator"))')
t=$(date +%s.%N)
kc delete pod "$leader" -n "$NS" --wait=false >/dev/null
new_leader() {
  local h
  h=$(jp "lease/$lease_name" '{.spec.holderIdentity}')
  [ -n "$h" ] && [ "$h" != "$leader" ]
}
until_ok 60 "another operator replica holding the Lease" new_leader
failover=$(since "$t")
successor=$(jp "lease/$lease_name" '{.spec.holderIdentity}')
sleep 10 # ten poll intervals under the new leader
until_ok 30 "fleet Ready under the new leader" fleet_ready "$NS" "$T1"
dupes=$(kc get events.events.k8s.io -n "$NS" -o json | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)["items"]
          if e.get("reportingController") == "amp-operator" and e.get("reportingInstance") == sys.argv[1]))' "$successor")
[ "$dupes" = 0 ] || fail "the new leader $successor wrote $dupes events for an unchanged fleet"
echo "leader $leader deleted: $successor took the Lease in ${failover}s, 0 new events ($events_before before)"

say "3. installed-chart e2e test (a worker pod deleted, its restart counted)"
KUBECONFIG=$NODE_DIR/kubeconfig E2E_CHART_NAMESPACE=$NS E2E_CHART_RELEASE=amp \
  cargo test --locked --features e2e,testing --test operator_e2e -- --include-ignored --exact \
  installed_chart_fleet_is_ready_and_a_pod_restart_is_counted \
  || fail "installed-chart e2e test"

say "4. helm upgrade to $T2"
t=$(date +%s.%N)
helm --kubeconfig "$NODE_DIR/kubeconfig" upgrade amp charts/amp -n "$NS" --reuse-values \
  --set "image.tag=$T2" --wait --timeout 5m || fail "helm upgrade"
until_ok 300 "fleet Ready on $T2" fleet_ready "$NS" "$T2"
until_ok 60 "3 AmpWorkers Ready on $T2" workers_on "$NS" "$T2" 3
rollout=$(since "$t")
for i in 0 1 2; do
  image=$(jp "pod/amp-worker-$i" '{.spec.containers[0].image}')
  [ "$image" = "localhost/amp:$T2" ] || fail "amp-worker-$i runs $image"
done
echo "helm upgrade -> 3 workers rolled, fleet Ready on $T2: ${rollout}s"

say "5. a hung worker (SIGSTOP from the host) restarted by the operator"
helm --kubeconfig "$NODE_DIR/kubeconfig" upgrade amp charts/amp -n "$NS" --reuse-values \
  --set fleet.remediation.mode=Restart --set fleet.remediation.restartStaleAfterSeconds=5 \
  --set fleet.heartbeatTimeoutSeconds=5 --wait --timeout 5m || fail "helm upgrade to remediation mode Restart"
fleet=$(kc get ampworkerfleets -n "$NS" -o name)
[ "$(jp "$fleet" '{.spec.remediation.mode}')" = Restart ] || fail "$fleet has no spec.remediation.mode Restart"
until_ok 60 "$fleet RemediationAllowed" has_condition "$fleet" RemediationAllowed True
until_ok 60 "3 AmpWorkers Ready on $T2 (heartbeat timeout 5 s)" workers_on "$NS" "$T2" 3
victim=amp-worker-1
aw=$(kc get ampworkers -n "$NS" -o jsonpath="{.items[?(@.spec.nodeId==\"$victim\")].metadata.name}")
[ -n "$aw" ] || fail "no AmpWorker for node id $victim"
old_uid=$(jp "pod/$victim" '{.metadata.uid}')
old_registered=$(jp "ampworker/$aw" '{.status.registeredAt}')
restarts_before=$(jp "ampworker/$aw" '{.status.remediationCount}')
pid=$(worker_pid "$victim") || fail "no worker process found for pod $victim"
t=$(date +%s.%N)
kill -STOP "$pid"
frozen_pid=$pid
until_ok 5 "pid $pid of $victim stopped" stopped "$pid"
until_ok 60 "AmpWorker $aw Stale" state_is "$aw" Stale
to_stale=$(since "$t")
until_ok 60 "pod $victim deleted by the operator" pod_deleted "$victim" "$old_uid"
to_delete=$(since "$t")
until_ok 120 "pod $victim recreated under the same name" pod_recreated "$victim" "$old_uid"
frozen_pid="" # the old container is gone with its frozen process
to_recreate=$(since "$t")
until_ok 120 "a new process registering node id $victim" registered_since "$aw" "$old_registered"
kc wait -n "$NS" --for=condition=Ready "ampworker/$aw" --timeout=60s >/dev/null \
  || fail "AmpWorker $aw not Ready again"
to_ready=$(since "$t")
restarts=$(jp "ampworker/$aw" '{.status.remediationCount}')
[ "$restarts" = $(( ${restarts_before:-0} + 1 )) ] && [ -n "$(jp "ampworker/$aw" '{.status.lastRemediationTime}')" ] \
  || fail "AmpWorker $aw records remediationCount '$restarts' (before: '${restarts_before:-none}')"
for kind in AmpWorker:"$aw" Pod:"$victim"; do
  warned_since "${kind%%:*}" "${kind#*:}" "$t" || fail "no Warning event HungWorkerRestarted on $kind"
done
echo "$victim frozen (pid $pid): AmpWorker Stale ${to_stale}s, Pod deleted by the operator ${to_delete}s, recreated ${to_recreate}s, Ready again ${to_ready}s; remediationCount $restarts, Warning events on the AmpWorker and the Pod"

say "6. a second release in another namespace"
t=$(date +%s.%N)
helm --kubeconfig "$NODE_DIR/kubeconfig" install two charts/amp -n "$NS2" --create-namespace \
  "${values[@]}" --set "image.tag=$T1" --set worker.replicas=1 --wait --timeout 5m \
  || fail "second release"
until_ok 180 "second fleet Ready" fleet_ready "$NS2" "$T1"
echo "second release installed and Ready in $(since "$t")s"

say "7. helm uninstall keeps the CRDs and the AmpWorkers"
workers_before=$(kc get ampworkers -n "$NS" -o name | sort)
helm --kubeconfig "$NODE_DIR/kubeconfig" uninstall two -n "$NS2" --wait --timeout 2m || fail "uninstall two"
helm --kubeconfig "$NODE_DIR/kubeconfig" uninstall amp -n "$NS" --wait --timeout 2m || fail "uninstall amp"
kc get crd ampworkers.amp.io ampworkerfleets.amp.io >/dev/null || fail "CRDs removed by uninstall"
[ "$(kc get ampworkers -n "$NS" -o name | sort)" = "$workers_before" ] || fail "AmpWorkers removed by uninstall"
echo "uninstalled: CRDs and $(wc -l <<< "$workers_before") AmpWorkers kept"

say "figures"
cat <<EOF
node up                         ${node_up} s
images built + imported         ${images_s} s (amp $image_size, base $base_size)
helm install --wait             ${helm_wait} s
install -> fleet Ready          ${install_ready} s
operator failover (pod deleted) ${failover} s
upgrade -> 3 workers rolled     ${rollout} s
hung worker -> Stale            ${to_stale} s
hung worker -> Pod deleted      ${to_delete} s (by the operator)
hung worker -> AmpWorker Ready  ${to_ready} s (the frozen process killed after the 30 s grace period)
stage wall time                 $(since "$stage_start") s
EOF
