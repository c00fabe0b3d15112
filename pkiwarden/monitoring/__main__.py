"""``python -m pkiwarden.monitoring DIR``: write the generated monitoring files into DIR."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pkiwarden.monitoring.manifests import write


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pkiwarden.monitoring",
        description="Write pkiwarden's PrometheusRule, Prometheus rule file and Grafana"
        " dashboard into DIR (deploy/monitoring).",
    )
    parser.add_argument("dir", type=Path, help="the output directory, e.g. deploy/monitoring")
    args = parser.parse_args(argv)
    for path in write(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
