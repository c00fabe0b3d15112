#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from the pinned Go modules into a
# version-keyed cache outside the repository, so fresh clones reuse them.
# Prints the directory holding the binaries.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"

cache_root="${PKIWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pkiwarden}"
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
minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
pkg_k8s=k8s.io/component-base/version
pkg_cg=k8s.io/client-go/pkg/version
ldflags="-s -w"
for pkg in "$pkg_k8s" "$pkg_cg"; do
  ldflags+=" -X $pkg.gitVersion=${KUBERNETES_VERSION}"
  ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor}"
  ldflags+=" -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

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
