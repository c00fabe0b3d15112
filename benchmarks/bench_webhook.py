"""Benchmark of the admission webhook (``make bench-webhook``). Prints numbers; asserts nothing.

1. Open loop over TLS from a compiled client (vegeta): valid AdmissionReviews
   at 500, 1,000 and 2,000 reviews/s, 10 s per point after a warm-up, against
   ``webhook serve`` and, in the same run with the same client, against the
   naive baseline in ``benchmarks/webhook_baseline.py`` (one FastAPI route,
   one jsonschema validator, uvicorn over TLS, one process). Latency p50, p90,
   p99 and max; errors; CPU time of the server per review.
2. Memory: RSS before and after pkiwarden's 2,000/s point and 30 s later,
   then the same around 60 s at 2,000/s.
3. Overload: far past capacity, how many reviews were answered, how many were
   refused at once (429, retry), and how late the last answer came.
4. Through a real kube-apiserver: p50/p99 of dry-run Pki creates without the
   webhook registered and with it, and the difference.

    python benchmarks/webhook.py [--workers N] [--quick]

Client and server share the machine's cores, and so does anything else
running on it: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pkiwarden.local import controlplane, webhook_process
from pkiwarden.local.controlplane import REPO_ROOT as REPO
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.readiness import free_port
from shared.kube.client import PKIS, Kube

RATES = (500, 1000, 2000)
POINT_SECONDS = 10
WARM_UP_RATE, WARM_UP_SECONDS = 500, 5
SOAK_RATE, SOAK_SECONDS, SETTLE_SECONDS = 2000, 60, 30
OVERLOAD_RATE, OVERLOAD_SECONDS = 6000, 5
# The API server calls a webhook with at most its in-flight limit of requests
# at once (--max-requests-inflight 400 plus --max-mutating-requests-inflight
# 200 by default); past capacity the client is held to the same bound.
OVERLOAD_CONNECTIONS = 600
API_CREATES = 400
BODIES = 64  # distinct uids, sent round robin
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def review(name: str, namespace: str = "app2") -> dict[str, Any]:
    pki = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": "app2", "renewBefore": "720h"},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "Pki"},
            "resource": {"group": "pkiwarden.dev", "version": "v1alpha1", "resource": "pkis"},
            "requestKind": {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "Pki"},
            "operation": "CREATE",
            "name": name,
            "namespace": namespace,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": pki,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


# --------------------------------------------------------------------------- processes


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (worker processes count towards the server)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    total = 0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    total = 0
    for member in tree(pid):
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / MIB


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- vegeta


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    pid: int
    targets: Path


@dataclass(frozen=True)
class Point:
    requests: int
    p50: float
    p90: float
    p99: float
    max: float
    errors: int
    refused: int
    cpu_per_review: float

    def row(self, rate: int, name: str) -> str:
        refused = f"   refused {self.refused}" if self.refused else ""
        return (
            f"  {rate:>5}/s  {name:<10} {self.p50:7.2f} {self.p90:7.2f} {self.p99:7.2f}"
            f" {self.max:8.2f}   {self.errors:>6}   {self.cpu_per_review:6.3f}{refused}"
        )


HEADER = "     rate  server         p50     p90     p99      max   errors   CPU/review  (ms)"


class Vegeta:
    def __init__(self, binary: str, ca_file: Path, scratch: Path) -> None:
        self.binary = binary
        self.ca_file = ca_file
        self.scratch = scratch

    def targets(self, name: str, port: int) -> Path:
        """A targets file of ``BODIES`` valid reviews with distinct uids."""
        lines = []
        for index in range(BODIES):
            body = self.scratch / f"{name}-{index}.json"
            body.write_text(json.dumps(review(f"bench-{index}")))
            lines.append(
                f"POST https://127.0.0.1:{port}/validate?timeout=5s\n"
                f"Content-Type: application/json\n@{body}\n"
            )
        path = self.scratch / f"{name}.targets"
        path.write_text("\n".join(lines))
        return path

    def attack(self, target: Target, rate: int, seconds: int, *flags: str) -> tuple[Path, float]:
        """Run one point; returns the results file and the server's CPU seconds."""
        results = self.scratch / f"{target.name}-{rate}.bin"
        before = cpu_seconds(target.pid)
        with results.open("wb") as out:
            subprocess.run(
                [
                    self.binary,
                    "attack",
                    f"-rate={rate}/1s",
                    f"-duration={seconds}s",
                    f"-targets={target.targets}",
                    f"-root-certs={self.ca_file}",
                    "-http2=false",
                    "-keepalive=true",
                    "-timeout=10s",
                    *flags,
                ],
                stdout=out,
                check=True,
            )
        return results, cpu_seconds(target.pid) - before

    def point(self, target: Target, rate: int, seconds: int) -> Point:
        results, cpu = self.attack(target, rate, seconds)
        report = json.loads(
            subprocess.run(
                [self.binary, "report", "-type=json", str(results)],
                capture_output=True,
                check=True,
            ).stdout
        )
        latencies = report["latencies"]
        codes = report.get("status_codes") or {}
        requests = int(report["requests"])
        refused = self.refused(results)
        return Point(
            requests=requests,
            p50=latencies["50th"] / 1e6,
            p90=latencies["90th"] / 1e6,
            p99=latencies["99th"] / 1e6,
            max=latencies["max"] / 1e6,
            errors=requests - int(codes.get("200", 0)),
            refused=refused,
            cpu_per_review=cpu * 1000 / max(requests, 1),
        )

    def refused(self, results: Path) -> int:
        """Reviews answered with the overload refusal (HTTP 200, code 429 inside)."""
        return sum(
            1
            for result in self.decoded(results)
            if b'"TooManyRequests"' in base64.b64decode(result.get("body") or b"")
        )

    def decoded(self, results: Path) -> Iterator[dict[str, Any]]:
        out = subprocess.run(
            [self.binary, "encode", "--to=json", str(results)],
            capture_output=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            if line.strip():
                yield json.loads(line)

    def answered_late(self, results: Path) -> tuple[int, int, int, float]:
        """Of an overload run: answered, refused, failed, and the slowest answer in ms."""
        answered = refused = failed = 0
        slowest = 0.0
        for result in self.decoded(results):
            if int(result.get("code") or 0) != 200:
                failed += 1
                continue
            body = base64.b64decode(result.get("body") or b"")
            if b'"TooManyRequests"' in body:
                refused += 1
            else:
                answered += 1
            slowest = max(slowest, int(result.get("latency") or 0) / 1e6)
        return answered, refused, failed, slowest


# --------------------------------------------------------------------------- servers


def start_pkiwarden(plane: ControlPlane, workers: int) -> webhook_process.LocalWebhook:
    return webhook_process.start(plane, port=free_port(), workers=workers)


def start_baseline(plane: ControlPlane, webhook: webhook_process.LocalWebhook) -> tuple[int, int]:
    port = free_port()
    argv = [
        sys.executable,
        str(REPO / "benchmarks" / "webhook_baseline.py"),
        f"--port={port}",
        f"--cert={webhook.settings.cert_file}",
        f"--key={webhook.settings.key_file}",
    ]
    pid = plane.start_process("webhook-baseline", argv)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, pid
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the baseline did not listen on port {port}; see its log in {plane.dir}")


# --------------------------------------------------------------------------- API server


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def api_creates(kube: Kube, count: int) -> tuple[float, float]:
    body = review("bench")["request"]["object"]
    latencies = []
    for _ in range(20):  # warm-up
        kube.create(PKIS.path("app2"), body, params={"dryRun": "All"})
    for _ in range(count):
        started = time.perf_counter()
        kube.create(PKIS.path("app2"), body, params={"dryRun": "All"})
        latencies.append(time.perf_counter() - started)
    return percentiles(latencies)


# --------------------------------------------------------------------------- run


def memory_after(pid: int, steady: float, label: str, seconds: float) -> None:
    after = rss_mib(pid)
    time.sleep(seconds)
    later = rss_mib(pid)
    print(
        f"  {label}: steady {steady:6.1f} MiB   right after {after:6.1f} MiB"
        f"   {seconds:.0f} s later {later:6.1f} MiB   (later - steady {later - steady:+.1f} MiB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", type=int, default=2, help="webhook worker processes (%(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="skip the 60 s memory soak")
    args = parser.parse_args()
    vegeta_binary = subprocess.run(
        [str(REPO / "benchmarks" / "webhook_vegeta.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        plane = controlplane.up(scratch / "cp", die_with_caller=True)
        try:
            plane.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "crds"))
            plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
            plane.kubectl("apply", "-f", str(REPO / "deploy" / "examples" / "policy.yaml"))
            plane.kubectl("create", "namespace", "app2")
            kube = Kube.from_environment(str(plane.kubeconfig))
            without = api_creates(kube, API_CREATES)

            webhook = start_pkiwarden(plane, args.workers)
            baseline_port, baseline_pid = start_baseline(plane, webhook)
            vegeta = Vegeta(vegeta_binary, webhook.settings.cert_file, scratch)
            ours = Target(
                "pkiwarden",
                webhook.settings.port,
                webhook.pid,
                vegeta.targets("pkiwarden", webhook.settings.port),
            )
            naive = Target(
                "baseline", baseline_port, baseline_pid, vegeta.targets("baseline", baseline_port)
            )
            python = platform.python_version()
            print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {python}")
            print(f"pkiwarden: {args.workers} worker process(es); baseline: 1 process")
            print(f"load average before: {load_average()}")
            for target in (ours, naive):
                vegeta.attack(target, WARM_UP_RATE, WARM_UP_SECONDS)
            print(
                f"open loop over TLS (vegeta, keep-alive), {POINT_SECONDS} s per point,"
                " valid AdmissionReviews:"
            )
            print(HEADER)
            steady = rss_mib(ours.pid)
            for rate in RATES:
                print(vegeta.point(ours, rate, POINT_SECONDS).row(rate, ours.name), flush=True)
                if rate == RATES[-1]:
                    after_point = rss_mib(ours.pid)
                    settle_from = time.monotonic()
                print(vegeta.point(naive, rate, POINT_SECONDS).row(rate, naive.name), flush=True)
            time.sleep(max(0.0, SETTLE_SECONDS - (time.monotonic() - settle_from)))
            print(f"load average after: {load_average()}")
            print("pkiwarden memory (RSS of all its processes):")
            print(
                f"  {RATES[-1]}/s point ({POINT_SECONDS} s): before {steady:6.1f} MiB"
                f"   right after {after_point:6.1f} MiB"
                f"   {SETTLE_SECONDS} s later {rss_mib(ours.pid):6.1f} MiB"
            )
            if not args.quick:
                steady = rss_mib(ours.pid)
                vegeta.attack(ours, SOAK_RATE, SOAK_SECONDS)
                memory_after(ours.pid, steady, f"{SOAK_SECONDS} s at {SOAK_RATE}/s", SETTLE_SECONDS)

            results, _ = vegeta.attack(
                ours,
                OVERLOAD_RATE,
                OVERLOAD_SECONDS,
                f"-max-connections={OVERLOAD_CONNECTIONS}",
            )
            answered, refused, failed, slowest = vegeta.answered_late(results)
            sent = answered + refused + failed
            print(
                f"overload, {OVERLOAD_RATE}/s for {OVERLOAD_SECONDS} s ({sent} reviews,"
                f" at most {OVERLOAD_CONNECTIONS} at once, as from an API server):"
                f" {answered} answered, {refused} refused at once (429, retry),"
                f" {failed} failed; slowest answer {slowest:.0f} ms"
            )

            with_webhook = api_creates(kube, API_CREATES)
            print(f"API server, {API_CREATES} sequential dry-run Pki creates:")
            print(f"  without webhook: p50 {without[0]:6.2f} ms   p99 {without[1]:6.2f} ms")
            print(
                f"  with webhook:    p50 {with_webhook[0]:6.2f} ms   p99 {with_webhook[1]:6.2f} ms"
            )
        finally:
            controlplane.down(plane.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
