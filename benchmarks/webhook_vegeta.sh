#!/usr/bin/env bash
# Builds the vegeta load generator at a pinned version into the same
# version-keyed cache as the local control plane, once per machine.
# Prints the path of the binary.
set -euo pipefail
VEGETA_MODULE=github.com/tsenart/vegeta/v12
VEGETA_VERSION=v12.13.0

cache_root="${PKIWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pkiwarden}"
out="$cache_root/vegeta-${VEGETA_VERSION}"
if [[ -x "$out/vegeta" ]]; then
  echo "$out/vegeta"
  exit 0
fi

# One build at a time per cache: a second caller waits, then finds the binary.
mkdir -p "$cache_root"
exec 9>"$out.lock"
flock 9
if [[ -x "$out/vegeta" ]]; then
  echo "$out/vegeta"
  exit 0
fi
rm -rf "$out.partial"
mkdir -p "$out.partial"
echo "building vegeta ${VEGETA_VERSION} ..." >&2
CGO_ENABLED=0 GOBIN="$out.partial" GOFLAGS=-trimpath \
  go install -ldflags "-s -w" "${VEGETA_MODULE}@${VEGETA_VERSION}"
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out/vegeta"
