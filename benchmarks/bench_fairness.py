"""``make bench-fairness``: a quiet namespace's Pkis during another namespace's burst.

For each queue order, first ``fifo`` (earlier releases: first come, first
served), then ``fair`` (round-robin across namespaces), on a fresh local
control plane with the issuer as its own process:

1. namespace ``burst`` gets ``--burst`` Pkis (5,000 by default) created at
   once from 8 threads;
2. once a tenth of them exist, namespace ``quiet`` gets ``--quiet`` Pkis (20),
   one every ``--interval`` seconds;
3. create -> Ready (seen on a watch) of the quiet Pkis: p50 and p99, and when
   the whole burst was Ready.

Prints the figures side by side; asserts only that every Pki became Ready.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench_issuer import ReadyWatch
from workload import open_namespace, pki_body

from issuer.runtime.ready import QueueOrder
from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process
from shared.kube.client import PKIS, Kube

BURST = "burst"
QUIET = "quiet"
READY_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Round:
    order: QueueOrder
    quiet_p50: float
    quiet_p99: float
    quiet_max: float
    burst_ready_after: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_all(watch: ReadyWatch, count: int, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while len(watch.ready_at) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: only {len(watch.ready_at)} of {count} Ready")
        time.sleep(0.2)


def one_round(order: QueueOrder, burst: int, quiet: int, interval: float, workers: int) -> Round:
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-fairness-") as tmp:
        directory = Path(tmp) / "plane"
        plane = controlplane.up(directory, die_with_caller=True)
        try:
            settings = Settings(
                health_port=0, workers=workers, leader_elect=False, queue_order=order
            )
            issuer_process.start(plane, settings)
            kube = Kube.from_environment(str(plane.kubeconfig))
            open_namespace(kube, BURST, ["web"])
            open_namespace(kube, QUIET, ["web"])
            time.sleep(1.0)  # let the issuer see the policies before the burst
            burst_watch = ReadyWatch(kube, BURST)
            quiet_watch = ReadyWatch(kube, QUIET)
            created = threading.Semaphore(0)

            def create_burst(number: int) -> None:
                kube.create(PKIS.path(BURST), pki_body(BURST, f"web-{number:05d}", "web"))
                created.release()

            start = time.monotonic()
            pool = ThreadPoolExecutor(8)
            futures = [pool.submit(create_burst, n) for n in range(burst)]
            for _ in range(max(1, burst // 10)):
                created.acquire()
            created_at: dict[str, float] = {}
            for number in range(quiet):
                name = f"web-{number:03d}"
                created_at[name] = time.monotonic()
                kube.create(PKIS.path(QUIET), pki_body(QUIET, name, "web"))
                time.sleep(interval)
            wait_all(quiet_watch, quiet, f"{order}: quiet namespace")
            for future in futures:
                future.result()
            pool.shutdown()
            wait_all(burst_watch, burst, f"{order}: burst namespace")
            burst_done = max(burst_watch.ready_at.values()) - start
            quiet_watch.stop()
            burst_watch.stop()
            latencies = [quiet_watch.ready_at[name] - created_at[name] for name in created_at]
            return Round(
                order,
                statistics.median(latencies),
                percentile(latencies, 0.99),
                max(latencies),
                burst_done,
            )
        finally:
            controlplane.down(directory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=5000, help="Pkis in the burst (5000)")
    parser.add_argument("--quiet", type=int, default=20, help="Pkis in the quiet namespace (20)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between quiet Pkis")
    parser.add_argument("--workers", type=int, default=Settings().workers)
    args = parser.parse_args()
    print(
        f"burst: {args.burst} ECDSA Pkis in one namespace; quiet: {args.quiet} Pkis, one every"
        f" {args.interval:g} s; issuer: {args.workers} workers; machine: {os.cpu_count()} cores"
    )
    rounds = [
        one_round(order, args.burst, args.quiet, args.interval, args.workers)
        for order in (QueueOrder.FIFO, QueueOrder.FAIR)
    ]
    print(f"\n{'queue order':<14}{'quiet p50':>12}{'quiet p99':>12}{'quiet max':>12}{'burst':>12}")
    for result in rounds:
        print(
            f"{result.order.value:<14}{result.quiet_p50:>11.2f}s{result.quiet_p99:>11.2f}s"
            f"{result.quiet_max:>11.2f}s{result.burst_ready_after:>11.1f}s"
        )
    print("(quiet: create -> Ready of a quiet namespace's Pki; burst: until all burst Pkis Ready)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
