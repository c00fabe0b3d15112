"""``kubectl pkiwarden <TAB>``: the pinned kubectl asks kubectl_complete-pkiwarden from PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pkiwarden.local import controlplane

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("words", "expected"),
    [(["w"], ["why", "webhook"]), (["local", ""], ["up", "down"]), (["why", "--ou"], ["--output"])],
)
def test_kubectl_completes_the_plugin(words: list[str], expected: list[str]) -> None:
    kubectl = controlplane.binaries().kubectl
    done = subprocess.run(
        [str(kubectl), "__complete", "pkiwarden", *words],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"},
    )
    lines = done.stdout.splitlines()
    assert lines == [*expected, ":4"], done.stdout + done.stderr
