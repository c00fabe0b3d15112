#!/usr/bin/env bash
# Builds what the local node runs, from the pinned Go modules, into a
# version-keyed cache outside the repository (like build.sh for the control
# plane): the kubelet (this folder's k8s.io/kubernetes module),
# containerd with its runc shim and ctr, runc (cgo and libseccomp), and the
# CNI plugins bridge, host-local and loopback.
# Prints the directory holding the binaries.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/common.sh"

out="$cache_root/node-k8s-${KUBERNETES_VERSION}-containerd-${CONTAINERD_VERSION}-runc-${RUNC_VERSION}-cni-${CNI_PLUGINS_VERSION}-n1"
components=(kubelet containerd containerd-shim-runc-v2 ctr runc bridge host-local loopback)
built() {
  local c
  for c in "${components[@]}"; do [[ -x "$out/$c" ]] || return 1; done
}

# Cached: no toolchain needed.
built && { echo "$out"; exit 0; }

# runc links libseccomp through cgo: a C compiler, pkg-config and libseccomp's
# headers; the node itself needs iproute2's ip, and its end-to-end tests read
# the packet filter with nftables' nft. Installed with apt-get when missing
# (as deploy/image/build.sh does).
if ! command -v cc >/dev/null || ! pkg-config --exists libseccomp 2>/dev/null \
  || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "the node needs a C compiler, pkg-config, libseccomp's headers, iproute2 and nft" >&2
    exit 1
  fi
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  echo "installing gcc, pkg-config, libseccomp-dev, iproute2 and nftables with apt-get ..." >&2
  # Waits for another apt-get instead of failing on its lock.
  apt=($sudo apt-get -q -o DPkg::Lock::Timeout=600)
  "${apt[@]}" update >&2
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends gcc libc6-dev pkg-config libseccomp-dev iproute2 nftables >&2
fi

claim_cache
start=$SECONDS
cd "$here"
echo "building kubelet ${KUBERNETES_VERSION} ..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out.partial/kubelet" k8s.io/kubernetes/cmd/kubelet

# The other modules have no replace directives, so `go install mod@version` builds them as released.
cd "$out.partial"
export GOBIN="$out.partial"
echo "building containerd ${CONTAINERD_VERSION} ..." >&2
containerd=github.com/containerd/containerd/v2
CGO_ENABLED=0 go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
  -ldflags "-s -w -X $containerd/version.Version=${CONTAINERD_VERSION}" \
  "$containerd/cmd/containerd@${CONTAINERD_VERSION}" \
  "$containerd/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
  "$containerd/cmd/ctr@${CONTAINERD_VERSION}"
echo "building runc ${RUNC_VERSION} ..." >&2
CGO_ENABLED=1 go install -trimpath -tags seccomp -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" \
  "github.com/opencontainers/runc@${RUNC_VERSION}"
echo "building CNI plugins ${CNI_PLUGINS_VERSION} ..." >&2
plugins=github.com/containernetworking/plugins/plugins
CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "$plugins/main/bridge@${CNI_PLUGINS_VERSION}" \
  "$plugins/ipam/host-local@${CNI_PLUGINS_VERSION}" \
  "$plugins/main/loopback@${CNI_PLUGINS_VERSION}"
echo "built in $((SECONDS - start)) s" >&2

publish_cache
