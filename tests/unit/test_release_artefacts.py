"""The pure parts of ``make release``: one version, images pinned by digest, checksums."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from pkiwarden.release import artefacts
from pkiwarden.release.artefacts import ReleaseError
from pkiwarden.release.version import package_version

DIGEST = "sha256:" + "ab" * 32


def test_a_version_other_than_the_packages_is_refused() -> None:
    artefacts.check_version(None, "0.2.0")
    artefacts.check_version("0.2.0", "0.2.0")
    with pytest.raises(
        ReleaseError, match=r"VERSION=0.3.0 but pyproject.toml says version = '0.2.0'"
    ):
        artefacts.check_version("0.3.0", "0.2.0")


def test_deploys_image_tag_must_be_the_package_version() -> None:
    artefacts.check_tag("pkiwarden:0.2.0", "0.2.0")
    with pytest.raises(ReleaseError, match=r"deploy/ names image pkiwarden:0.1.0"):
        artefacts.check_tag("pkiwarden:0.1.0", "0.2.0")


def test_pinned_names_the_digest_in_every_workload_and_leaves_the_input() -> None:
    job = {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"image": "p:1"}]}}}}
    other = {"kind": "ConfigMap", "data": {"image": "p:1"}}
    out = artefacts.pinned([job, other], "p:1", f"p@{DIGEST}")
    assert out[0]["spec"]["template"]["spec"]["containers"][0]["image"] == f"p@{DIGEST}"
    assert out[1] == other
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "p:1"


def test_sums_are_in_sha256sums_format(tmp_path: Path) -> None:
    (tmp_path / "b").write_bytes(b"")
    (tmp_path / "a").write_bytes(b"abc")
    text = artefacts.sums_text([tmp_path / "b", tmp_path / "a"])
    assert text == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b\n"
    )


def _archive(path: Path, index: dict[str, object]) -> Path:
    data = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_digest_reads_the_oci_index(tmp_path: Path) -> None:
    index = {"schemaVersion": 2, "manifests": [{"digest": DIGEST}]}
    assert artefacts.archive_digest(_archive(tmp_path / "i.tar", index)) == DIGEST
    with pytest.raises(ReleaseError, match="holds 2 manifests"):
        two = {"manifests": [{"digest": DIGEST}, {"digest": DIGEST}]}
        artefacts.archive_digest(_archive(tmp_path / "two.tar", two))


def test_manifest_is_one_file_of_documents() -> None:
    text = artefacts.manifest_text([{"kind": "A"}, {"kind": "B"}], "0.2.0")
    assert text.startswith("# pkiwarden 0.2.0:")
    assert [item for item in yaml.safe_load_all(text) if item] == [{"kind": "A"}, {"kind": "B"}]


def test_the_cli_reports_the_package_version() -> None:
    from pkiwarden.cli import version  # noqa: PLC0415

    assert version() == package_version()


def test_deploy_names_the_image_of_the_package_version() -> None:
    """deploy/'s image tag is the package version (the image build labels it with the same)."""
    deploy = Path(artefacts.DEPLOY)
    images = {
        container["image"]
        for path in deploy.rglob("*.yaml")
        if not {"charts", "examples"} & set(path.parts)
        for item in yaml.safe_load_all(path.read_text())
        if isinstance(item, dict)
        for container in artefacts.containers(item)
    }
    assert images == {f"pkiwarden:{package_version()}"}
