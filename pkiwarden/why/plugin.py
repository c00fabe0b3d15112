"""Where ``kubectl-pkiwarden`` lives, so a shell can run ``kubectl pkiwarden why``.

kubectl runs any executable named ``kubectl-NAME`` on PATH as ``kubectl NAME``;
pip installs ours next to the interpreter (a venv's ``bin``), which is not on
PATH unless the venv is activated. The demo and the tests put it there.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

PLUGIN = "kubectl-pkiwarden"


class PluginMissingError(RuntimeError):
    """pkiwarden is not installed with its console scripts; the message says how to fix it."""


def plugin_dir() -> Path:
    """The directory holding ``kubectl-pkiwarden``: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / PLUGIN
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.parent
    found = shutil.which(PLUGIN)
    if found is None:
        raise PluginMissingError(
            f"{PLUGIN} is not installed beside {sys.executable} nor on PATH;"
            " install pkiwarden (pip install -e .) to get it"
        )
    return Path(found).parent


def with_plugin(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the plugin's directory first on PATH."""
    path = env.get("PATH", os.defpath)
    return {**env, "PATH": f"{plugin_dir()}{os.pathsep}{path}"}


def path_line(kubectl_dir: Path) -> str:
    """The shell line that puts the pinned kubectl and ``kubectl-pkiwarden`` on PATH."""
    try:
        return f"export PATH={kubectl_dir}:{plugin_dir()}:$PATH   # kubectl and kubectl-pkiwarden"
    except PluginMissingError:
        return f"export PATH={kubectl_dir}:$PATH   # kubectl (kubectl-pkiwarden is not installed)"
