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

claim_cache
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

publish_cache
