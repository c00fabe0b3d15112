#!/usr/bin/env bash
# Builds the pkiwarden image with podman and tags it as the Deployments name it
# (deploy/webhook/deployment.yaml), so a cluster that can reach this machine's
# images, or a registry it is pushed to, runs what was tested.
#
# With no registry to pull python:3.11-slim from, the base is Debian bookworm
# (Python 3.11) made with mmdebstrap, then `podman import`ed; it is made once
# per machine and cached outside the repository (remove ~/.cache/pkiwarden/image
# and the localhost/pkiwarden-base image to take Debian's updates). Set
# PKIWARDEN_IMAGE_BASE to an image with Python 3.11 to use that instead.
#
# Installs podman, runc and mmdebstrap with apt-get when missing.
# Prints the image reference on its last line.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"

image="$(sed -n 's/^ *image: *//p' deploy/webhook/deployment.yaml | head -n 1)"
if [[ -z "$image" ]]; then
  echo "no image: line in deploy/webhook/deployment.yaml" >&2
  exit 1
fi

# The package version (pyproject.toml, the one place it is written) labels the
# image as the OCI annotations say; `make release` checks that it, deploy/'s tag
# and the chart agree.
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
labels=(
  --label org.opencontainers.image.title=pkiwarden
  --label "org.opencontainers.image.version=$version"
  --label org.opencontainers.image.licenses=Apache-2.0
  --label "org.opencontainers.image.description=TLS certificates for Kubernetes applications from a control-plane CA"
)

# crun refuses hybrid cgroup layouts, and raising a limit above the current
# one is not permitted in every environment: runc, cgroupfs, modest ulimits.
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

missing=()
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]} with apt-get ..." >&2
  # Waits for another apt-get instead of failing on its lock.
  apt=(apt-get -q -o DPkg::Lock::Timeout=600)
  "${apt[@]}" update >&2
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y podman runc mmdebstrap >&2
fi

# The base: Debian's python3 with nothing but what pip and Python need. The
# documentation, manual pages and translations are left out (as in Debian's
# slim images), the copyright files kept. Its tag hashes these arguments, so a
# change here makes a new base instead of reusing a stale one.
suite=bookworm
# shellcheck disable=SC2054 # the commas belong to --include
debstrap=(
  --variant=minbase
  --format=tar
  --include=python3,python3-venv,ca-certificates
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
cache_root="${PKIWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pkiwarden}"
key="$(printf '%s\n' "$suite" "${debstrap[@]}" | sha256sum | cut -c1-12)"
base="${PKIWARDEN_IMAGE_BASE:-localhost/pkiwarden-base:$suite-$key}"
tarball="$cache_root/image/base-$suite-$key.tar"

if ! "${podman[@]}" image exists "$base"; then
  if [[ -n "${PKIWARDEN_IMAGE_BASE:-}" ]]; then
    echo "base image $base (PKIWARDEN_IMAGE_BASE) does not exist" >&2
    exit 1
  fi
  # One base build at a time per cache: a second caller waits, then imports.
  mkdir -p "$cache_root/image"
  exec 9>"$tarball.lock"
  flock 9
  if [[ ! -s "$tarball" ]]; then
    echo "making the base image: Debian $suite with python3 (about a minute, once) ..." >&2
    start=$SECONDS
    rm -rf "$tarball.partial"
    mmdebstrap "${debstrap[@]}" "$suite" "$tarball.partial" 2>&1 | tail -n 3 >&2
    mv "$tarball.partial" "$tarball"
    echo "base made in $((SECONDS - start)) s" >&2
  fi
  "${podman[@]}" image exists "$base" || "${podman[@]}" import -q "$tarball" "$base" >/dev/null
  exec 9>&-
fi

# pip inside the build verifies the package index against the same trust
# bundle as this machine (an egress proxy's CA, say). It is mounted for the
# build's RUN steps only and is in no layer of the image.
trust=()
host_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s "$host_bundle" ]] && trust=(--volume "$host_bundle:$host_bundle:ro")

echo "building $image from $base ..." >&2
start=$SECONDS
"${podman[@]}" build "${ulimits[@]}" --network host "${trust[@]}" "${labels[@]}" \
  --build-arg "BASE=$base" --tag "$image" . >&2
size="$("${podman[@]}" image inspect --format '{{.Size}}' "$image")"
echo "built $image in $((SECONDS - start)) s: $((size / 1000000)) MB" >&2
echo "$image"
