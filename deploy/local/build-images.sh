#!/usr/bin/env bash
# Builds the images the local node runs from images/ (static Go programs, each
# packed as a one-layer OCI archive by oci-archive.sh) into a cache keyed by
# their sources. images/pause becomes the sandbox image ($PAUSE_IMAGE), every
# other images/NAME becomes pkiwarden.local/NAME:dev.
# Prints the directory holding NAME.tar for each.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/common.sh"

cd "$here/images"
names=()
for main in */main.go; do names+=("${main%/main.go}"); done
sources_hash="$( (echo "$PAUSE_IMAGE"; cat "$here/oci-archive.sh"; find . -type f | sort | xargs cat) | sha256sum | cut -c1-16)"
out="$cache_root/node-images-$sources_hash"
built() {
  local n
  for n in "${names[@]}"; do [[ -f "$out/$n.tar" ]] || return 1; done
}
claim_cache
mkdir -p "$out.partial/bin"
for n in "${names[@]}"; do
  echo "building image $n ..." >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.partial/bin/$n" "./$n"
  image="pkiwarden.local/$n:dev"
  [[ $n == pause ]] && image="$PAUSE_IMAGE"
  "$here/oci-archive.sh" "$out.partial/bin/$n" "$image" "$out.partial/$n.tar"
done
publish_cache
