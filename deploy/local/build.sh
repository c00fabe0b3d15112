#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from the pinned Go modules into a
# version-keyed cache outside the repository, so fresh clones reuse them.
# Prints the directory holding the binaries.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/common.sh"

out="$cache_root/k8s-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-cp2"
components=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)
built() {
  local c
  for c in "${components[@]}"; do [[ -x "$out/$c" ]] || return 1; done
}

if built; then
  echo "$out"
  exit 0
fi

# One build at a time per cache: a second caller waits, then finds the binaries.
mkdir -p "$cache_root"
exec 9>"$out.lock"
flock 9
if built; then
  echo "$out"
  exit 0
fi

rm -rf "$out.partial"
mkdir -p "$out.partial"
ldflags="$(k8s_ldflags)"

cd "$here"
export CGO_ENABLED=0
start=$SECONDS
for tool in k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl; do
  echo "building ${tool##*/} ${KUBERNETES_VERSION} ..." >&2
  go build -trimpath -ldflags "$ldflags" -o "$out.partial/${tool##*/}" "$tool"
done
echo "building etcd ${ETCD_VERSION} ..." >&2
go build -trimpath -ldflags "-s -w" -o "$out.partial/etcd" "$ETCD_MODULE"
echo "built in $((SECONDS - start)) s" >&2

rm -rf "$out"
mv "$out.partial" "$out"
echo "$out"
