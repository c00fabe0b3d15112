"""``make release``: the versioned artefacts under dist/, all naming the image by its digest.

- ``pkiwarden-VERSION.yaml``: ``kubectl kustomize deploy/`` in one file (what
  ``kubectl apply -f URL`` takes), the image named ``REPOSITORY@DIGEST``;
- ``pkiwarden-VERSION.tgz``: the chart of deploy/charts/pkiwarden, its
  ``image.digest`` set to the same digest;
- ``pkiwarden-image-VERSION.oci.tar`` and ``.digest``: the image as an OCI
  archive (``podman save --format oci-archive``) and the digest of the
  manifest in it, which ``skopeo copy --preserve-digests`` keeps in a registry;
- ``pkiwarden-VERSION-py3-none-any.whl``: the CLI and kubectl plugin for
  ``pipx install``/``uv tool install`` (the ``server`` extra adds the webhook's);
- ``SHA256SUMS`` of those files.

The version is pyproject.toml's; the image's tag in deploy/, the image's
``org.opencontainers.image.version`` label, the chart and ``pkiwarden
--version`` must say the same, and a release stops when one does not.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pkiwarden.local.controlplane import REPO_ROOT
from pkiwarden.release.chart import CHART_DIR, DEPLOY, kustomize
from pkiwarden.release.values import split_image

Json = dict[str, Any]
IMAGE_BUILD = DEPLOY / "image" / "build.sh"
PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")
VERSION_LABEL = "org.opencontainers.image.version"


class ReleaseError(RuntimeError):
    """A release cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Names:
    """The file names of one release under dist/."""

    version: str

    @property
    def manifest(self) -> str:
        return f"pkiwarden-{self.version}.yaml"

    @property
    def chart(self) -> str:
        return f"pkiwarden-{self.version}.tgz"

    @property
    def image(self) -> str:
        return f"pkiwarden-image-{self.version}.oci.tar"

    @property
    def digest(self) -> str:
        return f"pkiwarden-image-{self.version}.digest"

    @property
    def wheel(self) -> str:
        return f"pkiwarden-{self.version}-py3-none-any.whl"

    @property
    def sums(self) -> str:
        return "SHA256SUMS"


def check_version(asked: str | None, package: str) -> None:
    """A release of another version than the package's is refused: the version has one place."""
    if asked is not None and asked != package:
        raise ReleaseError(
            f"VERSION={asked} but pyproject.toml says version = {package!r}: the version has"
            " one place; change it there (and deploy/'s image tag) first"
        )


def check_tag(image: str, package: str) -> None:
    """deploy/'s image tag must be the package version, which the image build labels."""
    _repository, tag, _digest = split_image(image)
    if tag != package:
        raise ReleaseError(
            f"deploy/ names image {image} but pyproject.toml says version = {package!r}:"
            f" set the tag to {package} in deploy/ and run `make chart`"
        )


def containers(item: Json) -> Iterator[Json]:
    """The containers of a workload object (Deployment, Job, ...), none for other kinds."""
    pod = item.get("spec", {}).get("template", {}).get("spec", {})
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def pinned(objects: list[Json], image: str, reference: str) -> list[Json]:
    """``objects`` with every container naming ``image`` naming ``reference`` instead."""
    out: list[Json] = copy.deepcopy(objects)
    for item in out:
        for container in containers(item):
            if container.get("image") == image:
                container["image"] = reference
    return out


def manifest_text(objects: list[Json], version: str) -> str:
    header = (
        f"# pkiwarden {version}: `kubectl apply -f` of this file installs what"
        " `kubectl apply -k deploy/` does.\n"
    )
    return header + "".join(
        "---\n" + yaml.safe_dump(item, sort_keys=False, width=10_000) for item in objects
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sums_text(paths: list[Path]) -> str:
    """``sha256sum``'s format, so ``sha256sum -c SHA256SUMS`` checks the files."""
    return "".join(f"{sha256_file(path)}  {path.name}\n" for path in sorted(paths))


def archive_digest(archive: Path) -> str:
    """The digest of the (single) image manifest in an OCI archive's index.json."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ReleaseError(f"{archive} has no index.json: not an OCI archive")
        index = json.load(member)
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise ReleaseError(f"{archive} holds {len(manifests)} manifests, expected one image")
    return str(manifests[0]["digest"])


# --------------------------------------------------------------------------- I/O edges


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"{what} failed ({argv[0]} exited {result.returncode}; see above)")
    return result.stdout


def build_image() -> str:
    """``make image``; returns the reference it tagged."""
    lines = _run([str(IMAGE_BUILD)], "building the image").strip().splitlines()
    if not lines:
        raise ReleaseError(f"{IMAGE_BUILD} printed no image reference")
    return lines[-1]


def image_label(reference: str, label: str) -> str:
    fmt = "{{ index .Labels " + json.dumps(label) + " }}"
    return _run([*PODMAN, "image", "inspect", "--format", fmt, reference], "podman inspect").strip()


def save_image(reference: str, archive: Path) -> str:
    """The image as an OCI archive; returns its manifest digest."""
    archive.unlink(missing_ok=True)
    _run(
        [*PODMAN, "save", "--format", "oci-archive", "-o", str(archive), reference],
        "podman save",
    )
    return archive_digest(archive)


def package_chart(helm: Path, dist: Path, version: str, repository: str, digest: str) -> Path:
    """``helm package`` of the chart with the image pinned to ``repository@digest``."""
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "pkiwarden"
        shutil.copytree(CHART_DIR, chart)
        values_file = chart / "values.yaml"
        text = values_file.read_text()
        values = yaml.safe_load(text)
        values["image"].update(repository=repository, tag=version, digest=digest)
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        values_file.write_text(header + yaml.safe_dump(values, sort_keys=False, width=10_000))
        _run([str(helm), "package", str(chart), "--destination", str(dist)], "helm package")
    return dist / Names(version).chart


# What the wheel is built from (as the image's build context, .dockerignore).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "shared", "webhook", "issuer", "pkiwarden")


def build_wheel(dist: Path, names: Names) -> Path:
    """The package as a wheel, built from a copy so setuptools leaves no build/ behind."""
    (dist / names.wheel).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in WHEEL_SOURCES:
            source = REPO_ROOT / name
            if source.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(source, Path(folder) / name, ignore=ignore)
            else:
                shutil.copy2(source, Path(folder) / name)
        _run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--wheel-dir", str(dist), folder],
            "building the wheel",
        )  # fmt: skip
    if not (dist / names.wheel).is_file():
        raise ReleaseError(f"pip wheel did not write {names.wheel}")
    return dist / names.wheel


def release(
    *, kubectl: Path, helm: Path, dist: Path, version: str, repository: str | None
) -> list[Path]:
    """Build the image and write every artefact of ``version`` into ``dist``."""
    names = Names(version)
    base = kustomize(kubectl, DEPLOY)
    image = next(c["image"] for item in base for c in containers(item))
    check_tag(image, version)
    built = build_image()
    if built != image:
        raise ReleaseError(f"{IMAGE_BUILD} built {built}, but deploy/ names {image}")
    labelled = image_label(built, VERSION_LABEL)
    if labelled != version:
        raise ReleaseError(f"image {built} has {VERSION_LABEL}={labelled!r}, not {version}")
    dist.mkdir(parents=True, exist_ok=True)
    digest = save_image(built, dist / names.image)
    (dist / names.digest).write_text(digest + "\n")
    repo = repository or split_image(image)[0]
    manifest = dist / names.manifest
    manifest.write_text(manifest_text(pinned(base, image, f"{repo}@{digest}"), version))
    chart = package_chart(helm, dist, version, repo, digest)
    wheel = build_wheel(dist, names)
    artefacts = [manifest, chart, dist / names.image, dist / names.digest, wheel]
    (dist / names.sums).write_text(sums_text(artefacts))
    return [*artefacts, dist / names.sums]
