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

# The cache protocol of every build script: the caller sets $out and defines
# built() (true when $out holds everything). claim_cache exits printing $out
# when it is complete; otherwise it takes $out's lock (a concurrent caller
# waits, then finds it complete) and leaves an empty $out.partial to build into.
claim_cache() {
  if built; then
    echo "$out"
    exit 0
  fi
  mkdir -p "$cache_root"
  exec 9>"$out.lock"
  flock 9
  if built; then
    echo "$out"
    exit 0
  fi
  rm -rf "$out.partial"
  mkdir -p "$out.partial"
}

# Moves the finished $out.partial into place and prints it.
publish_cache() {
  rm -rf "$out"
  mv "$out.partial" "$out"
  echo "$out"
}
