"""Benchmark of the admission webhook (``make bench-webhook``). Prints numbers; asserts nothing.

1. Direct HTTPS AdmissionReview load against ``webhook serve`` at concurrency
   1, 16 and 64 (closed loop: reviews/s, p50, p99), and an open-loop run paced
   at 500 reviews/s (the latency target is stated at that rate).
2. Through a real kube-apiserver: p50/p99 of dry-run Pki creates without the
   webhook registered and with it, in the same run, and the difference.

Client and server share the machine, so the client's own cost is in every
figure; they are upper bounds of what the webhook adds.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pkiwarden.local import controlplane, webhook_process
from pkiwarden.local.controlplane import REPO_ROOT as REPO
from shared.kube.client import PKIS, WEBHOOK_CONFIGURATIONS, Kube

DIRECT_REQUESTS = 3000
PACED_RATE = 500
PACED_SECONDS = 4
API_CREATES = 400


def review(namespace: str = "app2") -> bytes:
    pki = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": "bench", "namespace": namespace},
        "spec": {"serviceName": "app2", "renewBefore": "720h"},
    }
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "Pki"},
            "resource": {"group": "pkiwarden.dev", "version": "v1alpha1", "resource": "pkis"},
            "operation": "CREATE",
            "name": "bench",
            "namespace": namespace,
            "object": pki,
            "dryRun": True,
        },
    }
    return json.dumps(body).encode()


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


class Connection:
    """One keep-alive HTTPS connection sending a pre-encoded request: a client that costs
    as little as possible, so the figures are mostly the server's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        return cls(reader, writer)

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def encoded_request(port: int) -> bytes:
    body = review()
    head = (
        f"POST /validate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def closed_loop(port: int, context: ssl.SSLContext, concurrency: int) -> str:
    request = encoded_request(port)
    latencies: list[float] = []
    errors = 0
    per_worker = max(DIRECT_REQUESTS // concurrency, 20)
    connections = [await Connection.open(port, context) for _ in range(concurrency)]

    async def worker(connection: Connection) -> None:
        nonlocal errors
        await connection.post(request)  # warm-up
        for _ in range(per_worker):
            started = time.perf_counter()
            status = await connection.post(request)
            latencies.append(time.perf_counter() - started)
            errors += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(worker(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    p50, p99 = percentiles(latencies)
    return (
        f"  concurrency {concurrency:>2}: {len(latencies) / elapsed:7.0f} reviews/s"
        f"   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   errors {errors}"
    )


async def paced(port: int, context: ssl.SSLContext) -> str:
    """Open loop: a new review every 1/rate s on a pool of 64 connections."""
    request = encoded_request(port)
    latencies: list[float] = []
    total = PACED_RATE * PACED_SECONDS
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await Connection.open(port, context))

    async def one(due: float) -> None:
        connection = await pool.get()
        await connection.post(request)
        latencies.append(time.perf_counter() - due)  # from when it was due: queueing counts
        pool.put_nowait(connection)

    start = time.perf_counter()
    tasks = []
    for index in range(total):
        due = start + index / PACED_RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    p50, p99 = percentiles(latencies)
    return (
        f"  paced at {PACED_RATE}/s: achieved {total / elapsed:5.0f}/s"
        f"   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   ({total} reviews)"
    )


def api_creates(kube: Kube, count: int) -> tuple[float, float]:
    body = json.loads(review())["request"]["object"]
    latencies = []
    for _ in range(20):  # warm-up
        kube.create(PKIS.path("app2"), body, params={"dryRun": "All"})
    for _ in range(count):
        started = time.perf_counter()
        kube.create(PKIS.path("app2"), body, params={"dryRun": "All"})
        latencies.append(time.perf_counter() - started)
    return percentiles(latencies)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-") as scratch:
        plane = controlplane.up(Path(scratch) / "cp", die_with_caller=True)
        try:
            plane.kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "crds"))
            plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
            plane.kubectl("apply", "-f", str(REPO / "deploy" / "examples" / "policy.yaml"))
            plane.kubectl("create", "namespace", "app2")
            kube = Kube.from_environment(str(plane.kubeconfig))

            without = api_creates(kube, API_CREATES)
            webhook = webhook_process.start(plane)
            context = ssl.create_default_context(cadata=webhook.ca_bundle.decode())
            port = webhook.settings.port
            print("direct HTTPS AdmissionReviews (valid Pki, keep-alive):")
            for concurrency in (1, 16, 64):
                print(asyncio.run(closed_loop(port, context, concurrency)))
            print(asyncio.run(paced(port, context)))
            with_webhook = api_creates(kube, API_CREATES)
            print(f"API server, {API_CREATES} sequential dry-run Pki creates:")
            print(f"  without webhook: p50 {without[0]:6.2f} ms   p99 {without[1]:6.2f} ms")
            print(
                f"  with webhook:    p50 {with_webhook[0]:6.2f} ms   p99 {with_webhook[1]:6.2f} ms"
            )
            print(
                f"  added:           p50 {with_webhook[0] - without[0]:6.2f} ms"
                f"   p99 {with_webhook[1] - without[1]:6.2f} ms"
            )
            registered: Any = kube.get(WEBHOOK_CONFIGURATIONS.path(name="pkiwarden"))
            assert registered  # the registration was in place for the "with" run
        finally:
            controlplane.down(plane.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
