"""``pkiwarden issuer run`` under ``tracemalloc``: where the issuer's memory goes, by source line.

Runs the issuer exactly as ``pkiwarden`` would, with one frame of allocation
traceback kept per block (enough to attribute a cache's objects to the line
that made them, cheap enough to run over thousands of Pkis). On SIGUSR1 it
writes the live allocations, grouped by file and line and largest first, to
``$PKIWARDEN_TRACE_OUT``; ``bench_scale.py --trace`` sends the signal once the
issuer is idle and prints the top of the file.

Only for measuring: the product never imports this module.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

TOP = 40


def dump(path: Path) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    lines = [f"total {total / 1024 / 1024:.1f} MiB in {sum(s.count for s in stats)} blocks"]
    for stat in stats[:TOP]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size / 1024 / 1024:8.2f} MiB {stat.count:9d} blocks"
            f"  {frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno}"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    out = Path(os.environ.get("PKIWARDEN_TRACE_OUT", "issuer-trace.txt"))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dump(out)

    tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, on_signal)
    from pkiwarden.cli import main as pkiwarden_main  # noqa: PLC0415 - traced from here on

    return pkiwarden_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
