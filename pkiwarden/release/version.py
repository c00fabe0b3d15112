"""The one version of a release: the package version in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pkiwarden.local.controlplane import REPO_ROOT

PYPROJECT = REPO_ROOT / "pyproject.toml"


def package_version(pyproject: Path = PYPROJECT) -> str:
    """``[project] version`` of pyproject.toml; the chart, the image and the CLI say the same."""
    with pyproject.open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])
