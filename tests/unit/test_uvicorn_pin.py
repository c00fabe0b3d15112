"""uvicorn is pinned to the releases whose private protocol webhook/protocol.py was tested on.

The behaviour itself is tested in test_webhook_protocol.py on real sockets;
these keep the pin, the installed release and the image's lock from drifting
apart, so a release outside the range is a failed test and not a surprise.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def pinned() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # uvicorn is in the `server` extra: the webhook needs it, the CLI does not.
    return next(
        requirement
        for requirement in map(Requirement, project["optional-dependencies"]["server"])
        if requirement.name == "uvicorn"
    )


def test_uvicorn_has_an_upper_bound() -> None:
    assert any(spec.operator == "<" for spec in pinned().specifier), pinned()


def test_the_installed_uvicorn_is_within_the_pin() -> None:
    installed = Version(importlib.metadata.version("uvicorn"))
    assert installed in pinned().specifier, f"uvicorn {installed} is outside {pinned()}"


def test_the_image_lock_is_within_the_pin() -> None:
    lock = (ROOT / "deploy" / "image" / "requirements.txt").read_text()
    found = re.search(r"^uvicorn==(\S+)", lock, re.MULTILINE)
    assert found, "the image lock names no uvicorn"
    assert Version(found.group(1)) in pinned().specifier
