# Sourced by build.sh and build-node.sh: the cache root and the version stamp of
# Kubernetes binaries, so both builds agree on them.
# shellcheck shell=bash
cache_root="${PKIWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pkiwarden}"

# -ldflags for a k8s.io/kubernetes command: `--version` reports the pinned release.
k8s_ldflags() {
  local minor pkg flags="-s -w"
  minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=${KUBERNETES_VERSION}"
    flags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor}"
    flags+=" -X $pkg.gitTreeState=clean"
    flags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$flags"
}
