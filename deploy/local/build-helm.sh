#!/usr/bin/env bash
# Builds Helm v4 from the Go module proxy at the pinned version (helm.env) into
# a version-keyed cache outside the repository, like the control plane
# (build.sh): the chart tests and `make release` run this helm, never a
# downloaded binary. Prints the path of the helm binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/helm.env"

cache_root="${PKIWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pkiwarden}"
out="$cache_root/helm-${HELM_VERSION}"
if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi

# One build at a time per cache: a second caller waits, then finds the binary.
mkdir -p "$cache_root"
exec 9>"$out.lock"
flock 9
if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi

rm -rf "$out.partial"
mkdir -p "$out.partial"
echo "building helm ${HELM_VERSION} ..." >&2
start=$SECONDS
# `go install module@version` builds with Helm's own go.mod and go.sum, checked
# against the checksum database; the version is stamped where `helm version`
# reads it. nice: it shares the machine with whatever else is building.
CGO_ENABLED=0 GOBIN="$out.partial" GOFLAGS=-trimpath nice -n 10 go install \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
  "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
echo "built helm in $((SECONDS - start)) s" >&2
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out/helm"
