"""``make bench-scrape``: what one ``/metrics`` scrape of the issuer costs at 100,000 Pkis.

The per-Pki series (``issuer.runtime.object_series``) of N Ready Pkis, built
in this process from the same change handler the Pki cache calls. Printed,
as CPU seconds of the call (median of 5) and bytes:

- the plain text, as every scrape made it before gzip members (the baseline);
- gzip, cold: every bucket compressed (the first scrape, or one after a burst);
- gzip, idle: nothing changed since the last scrape (Prometheus, every 15-60 s);
- gzip after 100 and 1,000 changed Pkis;
- the memory the kept members take (tracemalloc).

The HTTP write and TLS come on top of each; they scale with the bytes sent.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from issuer.controllers.pkis.reporting.metrics import CERTIFICATE_FAMILIES, certificate_samples
from issuer.runtime.object_series import ObjectSeries

REPEATS = 5


def pki(number: int, ready: str = "True") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": f"scale-{number % 1000:04d}",
            "name": f"web-{number // 1000:03d}",
        },
        "status": {
            "notAfter": "2027-03-06T11:58:22Z",
            "renewalTime": "2027-02-04T11:58:22Z",
            "conditions": [{"type": "Ready", "status": ready, "reason": "Issued"}],
        },
    }


def cpu(call: Callable[[], bytes], before: Callable[[], None] = lambda: None) -> tuple[float, int]:
    """Median CPU seconds of ``call`` over REPEATS runs (``before`` each, not timed); its size."""
    costs, size = [], 0
    for _ in range(REPEATS):
        before()
        started = time.process_time()
        size = len(call())
        costs.append(time.process_time() - started)
    return statistics.median(costs), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pkis", type=int, default=100_000)
    args = parser.parse_args()
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for number in range(args.pkis):
        series.on_change("ADDED", pki(number))
    flip = [0]

    def change(count: int) -> Callable[[], None]:
        def changed() -> None:
            flip[0] += 1
            ready = "True" if flip[0] % 2 else "False"
            for number in range(0, args.pkis, max(1, args.pkis // count)):
                series.on_change("MODIFIED", pki(number, ready))

        return changed

    print(f"== one scrape of the per-Pki series of {args.pkis} Pkis (CPU, median of {REPEATS})")
    plain, plain_size = cpu(series.exposition)
    print(f"  plain text (baseline)         {plain:7.3f} s  {plain_size / 1e6:7.1f} MB")
    cold, cold_size = cpu(series.gzip_exposition, change(args.pkis))
    print(f"  gzip, every Pki changed       {cold:7.3f} s  {cold_size / 1e6:7.2f} MB")
    for count in (1000, 100):
        spent, _ = cpu(series.gzip_exposition, change(count))
        print(f"  gzip, {count:5d} Pkis changed      {spent:7.3f} s")
    idle, size = cpu(series.gzip_exposition)
    print(f"  gzip, idle                    {idle:7.3f} s  {size / 1e6:7.2f} MB")
    if gzip.decompress(series.gzip_exposition()) != series.exposition():
        raise SystemExit("the gzip exposition is not the plain one compressed")
    tracemalloc.start()
    fresh = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for number in range(args.pkis):
        fresh.on_change("ADDED", pki(number))
    lines = tracemalloc.get_traced_memory()[0]
    fresh.gzip_exposition()
    members = tracemalloc.get_traced_memory()[0] - lines
    tracemalloc.stop()
    print(f"  kept lines                    {lines / 2**20:7.1f} MiB")
    print(f"  kept gzip members             {members / 2**20:7.1f} MiB")
    print(f"  idle gzip scrape vs plain     {plain / max(idle, 1e-6):7.0f}x less CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
