#!/usr/bin/env bash
# Re-pins what goes into the image: requirements.txt (pyproject.toml's runtime
# dependencies, resolved) and build-requirements.txt (its build backend), with
# the hash of every file, so the image built today and next month holds the
# same bytes. Run it after changing dependencies in pyproject.toml, and commit
# the result; the image build itself never resolves anything. Pins already in
# the files are kept unless `make image-lock ARGS=--upgrade` asks for the newest.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"

cache_root="${PKIWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pkiwarden}"
tools="$cache_root/image/pip-tools"
[[ -x "$tools/bin/pip-compile" ]] || {
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q pip-tools
}
# Index links and wheel folders of this machine must not end up in the lock.
compile=(env -u PIP_FIND_LINKS CUSTOM_COMPILE_COMMAND="make image-lock"
  "$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe
  --no-emit-index-url --no-emit-find-links "$@")
# The image runs the webhook: the `server` extra is part of what it holds.
"${compile[@]}" --extra=server --output-file=deploy/image/requirements.txt pyproject.toml
"${compile[@]}" --only-build-deps --build-deps-for=wheel \
  --output-file=deploy/image/build-requirements.txt pyproject.toml
