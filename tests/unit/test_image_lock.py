"""The image's lock files pin what pyproject.toml asks for, at versions it allows.

The image build installs only what deploy/image/requirements.txt and
build-requirements.txt list, by hash; a dependency added or raised in
pyproject.toml without re-locking would fail that build minutes in. This says
so at once, with the fix.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "deploy" / "image"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
FIX = "run `make image-lock` and commit deploy/image/"


def pins(path: Path) -> dict[str, Version]:
    """``name==version`` lines of a lock file, by canonical name."""
    return {
        canonicalize_name(name): Version(version) for name, version in PIN.findall(path.read_text())
    }


def problems(wanted: list[str], locked: dict[str, Version]) -> list[str]:
    found = []
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this platform (a Linux image)
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            found.append(f"{requirement.name} is not locked")
        elif not requirement.specifier.contains(version, prereleases=True):
            found.append(
                f"{requirement.name} is locked at {version}, outside {requirement.specifier}"
            )
    return found


PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize(
    ("wanted", "lock"),
    [
        # The image runs the webhook: the server extra is locked with the rest.
        (
            PYPROJECT["project"]["dependencies"]
            + PYPROJECT["project"]["optional-dependencies"]["server"],
            "requirements.txt",
        ),
        (PYPROJECT["build-system"]["requires"], "build-requirements.txt"),
    ],
    ids=["runtime", "build"],
)
def test_the_lock_covers_pyproject(wanted: list[str], lock: str) -> None:
    locked = pins(LOCKS / lock)
    assert locked, f"no pins in {lock}"
    found = problems(wanted, locked)
    assert not found, f"{'; '.join(found)}: {FIX}"


def test_a_missing_or_stale_pin_is_reported() -> None:
    locked = {"fastapi": Version("0.100.0")}
    assert problems(["fastapi>=0.115", "uvicorn>=0.30"], locked) == [
        "fastapi is locked at 0.100.0, outside >=0.115",
        "uvicorn is not locked",
    ]
    assert problems(["uvloop; sys_platform == 'win32'"], {}) == []
