#!/usr/bin/env bash
# Packs one static binary as a single-layer OCI image archive that
# `ctr images import` accepts: oci-archive.sh BINARY IMAGE-NAME OUT.tar [ARG...]
# The binary lands at /<its file name> and is the entrypoint, ARGs its arguments.
# The archive is byte-for-byte reproducible (fixed times, owners and order).
set -euo pipefail
binary="$1" name="$2" out="$3"
shift 3
base="$(basename "$binary")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
install -m 0755 "$binary" "$work/rootfs/$base"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" "$base"

blob() { # stores stdin-less file $1 as a blob, prints "digest size"
  local digest size
  digest="$(sha256sum "$1" | cut -d' ' -f1)"
  size="$(stat -c %s "$1")"
  cp "$1" "$work/oci/blobs/sha256/$digest"
  echo "$digest $size"
}
json_strings() { # "a" "b" -> ["a","b"] (arguments must not hold quotes or backslashes)
  local first=1 s
  printf '['
  for s in "$@"; do
    [[ $first == 1 ]] || printf ','
    first=0
    printf '"%s"' "$s"
  done
  printf ']'
}

read -r layer_digest layer_size < <(blob "$work/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(json_strings "/$base")" "$(json_strings "$@")" "$layer_digest" > "$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$name" "${name##*:}" > "$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$out.partial" .
mv "$out.partial" "$out"
