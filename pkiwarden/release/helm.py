"""The pinned Helm, built from the Go module proxy by deploy/local/build-helm.sh and cached."""

from __future__ import annotations

import os
from pathlib import Path

from pkiwarden.local.controlplane import REPO_ROOT, run_build_script

BUILD_SCRIPT = REPO_ROOT / "deploy" / "local" / "build-helm.sh"
OVERRIDE = "PKIWARDEN_HELM"


class HelmMissingError(RuntimeError):
    """No helm to run, with the reason and the fix."""


def helm_binary() -> Path:
    """$PKIWARDEN_HELM, else the cached build (built if needed, which takes minutes once)."""
    override = os.environ.get(OVERRIDE)
    if override:
        path = Path(override)
    else:
        returncode, built = run_build_script(BUILD_SCRIPT)
        if built is None:
            raise HelmMissingError(
                f"building helm failed ({BUILD_SCRIPT} exited {returncode}); its output"
                f" above says why. Go and the Go module proxy must be reachable, or set {OVERRIDE}"
            )
        path = built
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HelmMissingError(f"helm is not an executable file: {path} (see {OVERRIDE})")
    return path
