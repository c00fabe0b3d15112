"""``make release``'s artefacts: checksums, one digest everywhere, one version, and they install.

In the image tier (``make test-image``, ``pytest -m image``): the release
builds the image, which takes minutes (see the README's figures). The
single-file manifest is applied with ``kubectl apply`` to a fresh control
plane, and the webhook of its Deployment (arguments, ServiceAccount token,
the Service's address, as :mod:`pkiwarden.local.install` runs it) then
judges a Pki.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pkiwarden.local import controlplane, install, webhook_process
from pkiwarden.local.controlplane import ControlPlane, service_account_kubeconfig
from pkiwarden.local.prerequisites import wait_established
from pkiwarden.release import artefacts
from pkiwarden.release.artefacts import Names
from pkiwarden.release.helm import helm_binary
from pkiwarden.release.version import package_version
from tests.e2e import pods

pytestmark = pytest.mark.image

VERSION = package_version()
NAMES = Names(VERSION)
EXAMPLES = controlplane.REPO_ROOT / "deploy" / "examples"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make release VERSION=<the package version>`` into a directory of its own."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pkiwarden.release", "--version", VERSION, "--dist", str(out)],
        cwd=controlplane.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def digest(dist: Path) -> str:
    return (dist / NAMES.digest).read_text().strip()


def chart_file(dist: Path, name: str) -> str:
    with tarfile.open(dist / NAMES.chart) as tar:
        member = tar.extractfile(f"pkiwarden/{name}")
        assert member is not None, name
        return member.read().decode()


def test_sha256sums_lists_every_artefact_with_its_hash(dist: Path) -> None:
    listed: dict[str, str] = {}
    for line in (dist / NAMES.sums).read_text().splitlines():
        sha, name = line.split("  ", 1)
        listed[name] = sha
    assert sorted(listed) == sorted(
        [NAMES.manifest, NAMES.chart, NAMES.image, NAMES.digest, NAMES.wheel]
    )
    for name, sha in listed.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == sha, name
    check = subprocess.run(
        ["sha256sum", "-c", NAMES.sums], cwd=dist, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_digest_is_the_archives_and_the_manifest_and_chart_name_it(
    dist: Path, digest: str
) -> None:
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert artefacts.archive_digest(dist / NAMES.image) == digest
    manifest = [item for item in yaml.safe_load_all((dist / NAMES.manifest).read_text()) if item]
    images = {c["image"] for item in manifest for c in artefacts.containers(item)}
    assert images == {f"pkiwarden@{digest}"}
    values = yaml.safe_load(chart_file(dist, "values.yaml"))
    assert values["image"] == {"repository": "pkiwarden", "tag": VERSION, "digest": digest}
    rendered = subprocess.run(
        [str(helm_binary()), "template", "pkiwarden", str(dist / NAMES.chart)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rendered_images = {
        c["image"]
        for item in yaml.safe_load_all(rendered)
        if item
        for c in artefacts.containers(item)
    }
    assert rendered_images == {f"pkiwarden:{VERSION}@{digest}"}


def test_one_version_in_the_cli_the_image_and_the_chart(dist: Path) -> None:
    chart = yaml.safe_load(chart_file(dist, "Chart.yaml"))
    assert chart["version"] == chart["appVersion"] == VERSION
    image = f"pkiwarden:{VERSION}"
    label = artefacts.image_label(image, artefacts.VERSION_LABEL)
    assert label == VERSION
    inside = subprocess.run(
        [*pods.PODMAN, "run", "--rm", *pods.ULIMITS, "--network=none", image, "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert inside.strip() == f"pkiwarden {VERSION}"
    outside = subprocess.run(
        [sys.executable, "-m", "pkiwarden.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert outside.strip() == f"pkiwarden {VERSION}"


def test_the_archive_holds_the_labelled_image(dist: Path, digest: str) -> None:
    with tarfile.open(dist / NAMES.image) as tar:
        blob = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        assert blob is not None
        manifest: dict[str, Any] = yaml.safe_load(io.TextIOWrapper(blob))
        config_digest = manifest["config"]["digest"].removeprefix("sha256:")
        config_blob = tar.extractfile(f"blobs/sha256/{config_digest}")
        assert config_blob is not None
        config: dict[str, Any] = yaml.safe_load(io.TextIOWrapper(config_blob))
    assert config["config"]["Labels"][artefacts.VERSION_LABEL] == VERSION


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    directory = tmp_path_factory.mktemp("release") / "plane"
    try:
        yield controlplane.up(directory, die_with_caller=True)
    finally:
        controlplane.down(directory)


def test_kubectl_apply_of_the_manifest_installs_a_working_webhook(
    dist: Path, fresh: ControlPlane
) -> None:
    applied = fresh.kubectl("apply", "-f", str(dist / NAMES.manifest))
    assert "deployment.apps/pkiwarden-webhook created" in applied.stdout
    wait_established(fresh)
    token = service_account_kubeconfig(
        fresh,
        install.SYSTEM_NAMESPACE,
        install.WEBHOOK_ACCOUNT,
        fresh.dir / "webhook.kubeconfig",
        expiration_seconds=3600,
    )
    webhook_process.start_deployed(fresh, token)
    fresh.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
    refused = fresh.kubectl("apply", "-f", str(EXAMPLES / "app1.yaml"), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "pkis.pkiwarden.dev" denied the request' in refused.stderr
    assert 'did you mean "app1"?' in refused.stderr


def test_the_wheel_installs_the_plugin_without_the_server(dist: Path) -> None:
    """What pipx or uv tool installs from the wheel: fastapi and uvicorn only with [server]."""
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(dist / NAMES.wheel) as wheel:
        metadata = wheel.read(f"pkiwarden-{VERSION}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"pkiwarden-{VERSION}.dist-info/entry_points.txt").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for name in ("fastapi", "uvicorn"):
        (line,) = [line for line in requires if line.split()[1].startswith(name)]
        assert 'extra == "server"' in line, line
    assert "kubectl-pkiwarden = pkiwarden.cli:main" in entry_points
    assert "kubectl_complete-pkiwarden = pkiwarden.cli:kubectl_complete" in entry_points
