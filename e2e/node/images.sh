#!/usr/bin/env bash
# Images for the one-node cluster, built without Docker (buildah: vfs storage, chroot
# isolation) and imported into its containerd. Nothing can be pulled here.
#
#   e2e/node/images.sh pause          the pod sandbox image (static C, FROM scratch)
#   e2e/node/images.sh base           Debian bookworm minbase (debootstrap), uid 65532
#   e2e/node/images.sh amp TAG        the project's Dockerfile on that base:
#                                     localhost/amp:TAG with AMPD_VERSION=TAG
#   e2e/node/images.sh postgres       a postgres:15 stand-in (e2e/node/postgres/)
#
# How the amp image differs from `docker build .`: the runtime stage's base is the local
# Debian bookworm (RUNTIME_BASE) instead of distroless cc-debian12, and the build stage
# is replaced (`--build-context build=...`) by the same `cargo build --release --locked
# --bins` run on this machine (same toolchain, same Debian release). Every role, the
# entrypoint, uid 65532 and the AMPD_* build arguments are the Dockerfile's.
set -euo pipefail
cd "$(dirname "$0")/../.."
. e2e/node/lib.sh
. scripts/lib/cargo.sh

export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
cache=${AMP_NODE_CACHE:-$HOME/.cache/amp-node}
mkdir -p "$cache" "$NODE_DIR/images"
BASE=localhost/amp-node/debian:bookworm
PAUSE=localhost/amp-node/pause:1
# The tag names the entrypoint revision: a cached older image is not reused.
POSTGRES=localhost/amp-node/postgres:15-files

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# into_node IMAGE: oci-archive into the node's containerd (k8s.io namespace).
into_node() {
  local file
  file=$NODE_DIR/images/$(echo "$1" | tr '/:' '__').tar
  rm -f "$file"
  buildah push --quiet "$1" "oci-archive:$file:$1" >/dev/null
  ctr_k8s images import "$file" >/dev/null
  rm -f "$file"
  in_node "$1" || node_fail "$1 not in the node after import; it holds: $(ctr_k8s images ls -q | tr '\n' ' ')"
}

# in_node IMAGE: the node's containerd lists IMAGE. The list is read whole before it is
# searched: `ctr ... | grep -q` under pipefail fails whenever grep stops reading before
# ctr has written its last line (ctr dies of SIGPIPE), which a node with more than one
# image hits at random.
in_node() {
  local names
  names=$(ctr_k8s images ls -q) || node_fail "ctr images ls failed (containerd at $CONTAINERD_SOCK)"
  grep -qxF -- "$1" <<<"$names"
}

build_pause() {
  if ! have_image "$PAUSE"; then
    command -v gcc >/dev/null || node_fail "gcc missing: apt-get install -y gcc libc6-dev"
    local ctx=$NODE_DIR/images/pause
    mkdir -p "$ctx"
    gcc -static -O2 -o "$ctx/pause" e2e/node/pause.c
    local c
    c=$(buildah from scratch)
    buildah copy "$c" "$ctx/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    buildah commit --quiet "$c" "$PAUSE" >/dev/null
    buildah rm "$c" >/dev/null
  fi
}

build_base() {
  have_image "$BASE" && return 0
  command -v debootstrap >/dev/null || node_fail "debootstrap missing: apt-get install -y debootstrap"
  local tarball=$cache/bookworm-minbase.tar mirror
  if [ ! -s "$tarball" ]; then
    # The mirror this machine's apt uses (deb822 "URIs:" or a one-line "deb" source).
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -E '^(URIs:|deb) ' | grep -v security | grep -oE 'https?://[^ ]+' | head -n 1 || true)
    local root=$cache/rootfs
    rm -rf "$root"
    node_log "debootstrap bookworm from ${mirror:-http://deb.debian.org/debian} (a few minutes, cached in $cache)"
    debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" \
      > "$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; node_fail "debootstrap"; }
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    # distroless's nonroot user, which the chart runs as.
    echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >> "$root/etc/passwd"
    echo "nonroot:x:65532:" >> "$root/etc/group"
    tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$root"
  fi
  local c
  c=$(buildah from scratch)
  buildah add "$c" "$tarball" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/sh "$c"
  buildah commit --quiet "$c" "$BASE" >/dev/null
  buildah rm "$c" >/dev/null
}

build_amp() {
  local tag=$1 ctx=$NODE_DIR/images/amp-bin
  [ -n "$tag" ] || node_fail "usage: images.sh amp TAG"
  build_base
  local ampd ampctl
  # Where cargo put them (CARGO_TARGET_DIR), not a hard-coded target/release.
  ampd=$(cargo_bin ampd --release --locked --bins) || node_fail "cargo build --release"
  ampctl=$(cargo_bin ampctl --release --locked --bins) || node_fail "cargo build --release"
  mkdir -p "$ctx/out"
  install -m 0755 "$ampd" "$ampctl" "$ctx/out/"
  buildah bud --quiet --layers=false \
    --build-context "build=$ctx" \
    --build-arg "RUNTIME_BASE=$BASE" \
    --build-arg "AMPD_VERSION=$tag" \
    --build-arg "AMPD_BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "localhost/amp:$tag" -f Dockerfile . >/dev/null
}

build_postgres() {
  have_image "$POSTGRES" && return 0
  build_base
  buildah bud --quiet --build-arg "BASE=$BASE" -t "$POSTGRES" \
    -f e2e/node/postgres/Containerfile e2e/node/postgres >/dev/null
}

case "${1:-}" in
  pause) build_pause; into_node "$PAUSE" ;;
  base) build_base ;;
  amp) build_amp "${2:-}"; into_node "localhost/amp:$2" ;;
  postgres) build_postgres; into_node "$POSTGRES" ;;
  *) node_fail "usage: images.sh pause|base|amp TAG|postgres" ;;
esac
case "$1" in base) node_log "image $BASE built" ;; *) node_log "image ${1}${2:+ $2} ready in the node" ;; esac
