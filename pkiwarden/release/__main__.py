"""``python -m pkiwarden.release [--version X]`` (``make release``): the artefacts under dist/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pkiwarden.local.controlplane import REPO_ROOT, ControlPlaneError, binaries
from pkiwarden.release.artefacts import ReleaseError, check_version, release
from pkiwarden.release.helm import HelmMissingError, helm_binary
from pkiwarden.release.version import package_version


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make release",
        description="Build the image and write the release's manifest, chart package, OCI"
        " image archive and SHA256SUMS under dist/.",
    )
    parser.add_argument("--version", help="must equal pyproject.toml's version (the default)")
    parser.add_argument("--repository", help="the image repository to name (default: deploy/'s)")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    args = parser.parse_args(argv)
    version = package_version()
    try:
        check_version(args.version, version)
        written = release(
            kubectl=binaries().kubectl,
            helm=helm_binary(),
            dist=args.dist,
            version=version,
            repository=args.repository,
        )
    except (ReleaseError, HelmMissingError, ControlPlaneError) as error:
        print(f"make release: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
