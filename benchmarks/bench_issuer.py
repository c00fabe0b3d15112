"""``make bench-issuer``: how fast accepted Pkis become Ready, and that a restart re-issues nothing.

On a fresh local control plane, with the issuer as its own process:

1. 1,000 ECDSA Pkis created at once: time until all are Ready, Pkis/s, p50/p99
   from create to Ready (seen on a watch), the issuer's peak RSS;
2. a restart over those 1,000: time until every Pki was reconciled again and
   the number of re-issues (must be 0: serials compared before and after);
3. the same for 100 RSA-2048 Pkis.

Prints figures; asserts only the correctness facts (all Ready, no re-issue).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from watching import Watch, is_ready
from workload import open_namespace, pki_body

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from shared.kube.client import PKIS, SECRETS, Kube


class IssuerProcess:
    def __init__(self, plane: ControlPlane, workers: int) -> None:
        self.plane = plane
        self.log_path = procs.log_path(plane.dir, issuer_process.PROCESS)
        self.workers = workers
        self.pid = 0
        self.offset = 0

    def start(self) -> float:
        """Start without waiting (the benchmark times from here); CRDs and CA exist already."""
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        settings = Settings(health_port=0, workers=self.workers, leader_elect=False)
        started = issuer_process.start(self.plane, settings, wait=False, with_prerequisites=False)
        self.pid = started.pid
        return time.monotonic()

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self) -> None:
        """SIGKILL, as a crash would; ``down`` would otherwise stop it cleanly."""
        record = procs.read(self.plane.dir, issuer_process.PROCESS)
        if record is not None and procs.is_running(record):
            os.killpg(record.pid, signal.SIGKILL)
            os.waitpid(record.pid, 0)

    def reconciled(self, namespace: str) -> list[dict[str, Any]]:
        with self.log_path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode("utf-8", "replace")
        lines = []
        for raw in text.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("message") == "reconciled" and line.get("namespace") == namespace:
                lines.append(line)
        return lines


class ReadyWatch:
    """Records when each Pki of a namespace is first seen Ready=True on a watch."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.ready_at: dict[str, float] = {}
        self._watch = Watch(kube, PKIS, namespace)
        self._watch.handlers.append(self._seen)
        self._watch.start()

    def _seen(self, kind: str, obj: dict[str, Any], now: float) -> None:
        if is_ready(obj):
            self.ready_at.setdefault(str((obj.get("metadata") or {}).get("name")), now)

    def stop(self) -> None:
        self._watch.stop()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def serials(kube: Kube, namespace: str) -> dict[str, str]:
    listed = kube.get(SECRETS.path(namespace), params={"labelSelector": "pkiwarden.dev/pki"})
    return {
        item["metadata"]["name"]: item["metadata"]["annotations"]["pkiwarden.dev/serial-number"]
        for item in listed.get("items") or []
    }


def scenario(
    kube: Kube, issuer: IssuerProcess, namespace: str, count: int, key: dict[str, Any]
) -> None:
    open_namespace(kube, namespace, ["web"])
    time.sleep(1.0)  # let the issuer see the policy before the burst
    watch = ReadyWatch(kube, namespace)
    created_at: dict[str, float] = {}

    def create(number: int) -> None:
        name = f"web-{number:04d}"
        body = pki_body(namespace, name, "web", privateKey=key)
        created_at[name] = time.monotonic()
        kube.create(PKIS.path(namespace), body)

    label = f"{count} {key['algorithm']}-{key.get('size', '')} Pkis"
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    created = time.monotonic()
    deadline = created + 600
    while len(watch.ready_at) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    watch.stop()
    if len(watch.ready_at) < count:
        raise SystemExit(f"{label}: only {len(watch.ready_at)} Ready after 600 s")
    done = max(watch.ready_at.values())
    latencies = [watch.ready_at[name] - created_at[name] for name in created_at]
    print(f"\n== {label}")
    print(f"  created in                 {created - start:8.2f} s")
    print(f"  all Ready after            {done - start:8.2f} s")
    print(f"  throughput                 {count / (done - start):8.1f} Pkis/s")
    print(f"  create -> Ready p50        {statistics.median(latencies) * 1000:8.0f} ms")
    print(f"  create -> Ready p99        {_percentile(latencies, 0.99) * 1000:8.0f} ms")
    print(f"  issuer peak RSS            {issuer.peak_rss_mib():8.1f} MiB")

    before = serials(kube, namespace)
    issuer.kill()
    started = issuer.start()
    deadline = started + 300
    while time.monotonic() < deadline:
        seen = {line.get("pki") for line in issuer.reconciled(namespace)}
        if len(seen) >= count:
            break
        time.sleep(0.1)
    settled = time.monotonic() - started
    reissued = sum(1 for line in issuer.reconciled(namespace) if line.get("action") == "Issue")
    after = serials(kube, namespace)
    changed = sum(1 for name, value in before.items() if after.get(name) != value)
    print(f"  restart: all reconciled in {settled:8.2f} s (process start included)")
    print(f"  restart: re-issues         {reissued:8d}   (serials changed: {changed})")
    if reissued or changed:
        raise SystemExit(f"{label}: a restart re-issued {max(reissued, changed)} certificates")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000, help="ECDSA Pkis (default 1000)")
    parser.add_argument("--rsa-count", type=int, default=100, help="RSA-2048 Pkis (default 100)")
    parser.add_argument("--workers", type=int, default=Settings().workers)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-issuer-") as tmp:
        directory = Path(tmp) / "plane"
        plane = controlplane.up(directory, die_with_caller=True)
        issuer = IssuerProcess(plane, args.workers)
        try:
            issuer_process.prepare(plane, Settings())
            kube = Kube.from_environment(str(plane.kubeconfig))
            issuer.start()
            print(f"issuer: {args.workers} workers; machine: {os.cpu_count()} cores")
            scenario(kube, issuer, "bench-ecdsa", args.count, {"algorithm": "ECDSA", "size": 256})
            scenario(kube, issuer, "bench-rsa", args.rsa_count, {"algorithm": "RSA", "size": 2048})
        finally:
            issuer.kill()
            controlplane.down(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
