"""Several webhook processes on one port, for a replica with more than one core.

One Python process answers reviews on one core at a time. ``--workers N``
starts N processes that accept from one listening socket, created here
before they start: the kernel hands each new connection to whichever process
is waiting for one, so an idle worker takes the next connection from a busy
one. Each worker keeps its own caches and TLS context; this process keeps the
certificates current (the workers reload the files) and restarts a worker
that dies.

Readiness: a probe reaches one worker at random, so each worker reports
ready only when every worker's caches have synced. The flags live in shared
memory, one byte per worker; a restarted worker is not ready until it has
listed again.

Metrics: a scrape also reaches one worker at random, so the workers keep
their counters in files (prometheus_client's multiprocess mode, in a tmpfs
directory this process creates) and every worker's ``/metrics`` shows the
sums over all of them: counters stay monotonic whichever worker answers.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from shared import logs
from shared.kube.client import Kube
from webhook.metrics import CACHE_SYNCED, WebhookMetrics
from webhook.settings import WebhookSettings

log = logging.getLogger("pkiwarden.webhook")

# A worker that keeps dying is restarted less and less often, up to this.
_MAX_RESTART_DELAY = 30.0
# How long SIGTERM'd workers get to finish the reviews in flight.
_STOP_GRACE_SECONDS = 10.0
_LISTEN_BACKLOG = 2048
_PR_SET_PDEATHSIG = 1
_METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class WorkerPool:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._synced: Any = self._context.Array("b", settings.workers, lock=False)
        self._stopping = threading.Event()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT, then stop every worker; returns the exit code."""
        # /dev/shm is a writable tmpfs even under readOnlyRootFilesystem.
        shm = Path("/dev/shm")
        metrics_dir = tempfile.mkdtemp(
            prefix="pkiwarden-metrics-", dir=shm if shm.is_dir() else None
        )
        # Read by prometheus_client when a spawned worker imports it.
        os.environ[_METRICS_DIR_VARIABLE] = metrics_dir
        try:
            return self._serve(Path(metrics_dir))
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _serve(self, metrics_dir: Path) -> int:
        sock = listen(self.settings.host, self.settings.port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        processes = [self._start(index, sock) for index in range(self.settings.workers)]
        delays = [1.0] * len(processes)
        log.info("serving with %d worker processes", len(processes))
        try:
            while not self._stopping.wait(0.5):
                for index, process in enumerate(processes):
                    if process.is_alive():
                        continue
                    self._synced[index] = 0
                    forget_gauges(metrics_dir, process.pid)
                    log.warning(
                        "worker %d exited with code %s; restarting it in %.0f s",
                        index,
                        process.exitcode,
                        delays[index],
                    )
                    if self._stopping.wait(delays[index]):
                        break
                    delays[index] = min(delays[index] * 2, _MAX_RESTART_DELAY)
                    processes[index] = self._start(index, sock)
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()  # SIGTERM: uvicorn finishes what is in flight
            for process in processes:
                process.join(_STOP_GRACE_SECONDS)
                if process.is_alive():
                    process.kill()
                    process.join()
            sock.close()
        return 0

    def _start(self, index: int, sock: socket.socket) -> Any:
        process = self._context.Process(
            target=run_worker,
            args=(self.settings, sock, self._synced, index),
            name=f"webhook-worker-{index}",
            daemon=True,
        )
        process.start()
        return process

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(_LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def forget_gauges(metrics_dir: Path, pid: int | None) -> None:
    """Drop a dead worker's gauges (its counters still count towards the totals)."""
    for path in metrics_dir.glob(f"gauge_*_{pid}.db"):
        path.unlink(missing_ok=True)


class PooledMetrics(WebhookMetrics):
    """This worker's metrics, exposed as the sums over every worker of the pool."""

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        pooled = CollectorRegistry()
        MultiProcessCollector(pooled)  # type: ignore[no-untyped-call]
        # Cache state is per worker and read live, not kept in files.
        own = self.registry.restricted_registry([CACHE_SYNCED])
        return bytes(generate_latest(pooled)) + bytes(generate_latest(own))


def waiting(synced: Sequence[int], own: int) -> list[str]:
    """The other workers whose caches have not synced yet, by name."""
    return [f"worker {index}" for index, flag in enumerate(synced) if not flag and index != own]


def _exit_with_parent() -> None:
    """SIGTERM this worker when the pool's process dies, however it dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still applies
        return
    if os.getppid() == 1:  # the pool died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_worker(settings: WebhookSettings, sock: socket.socket, synced: Any, index: int) -> None:
    """Entry point of a worker process (spawned: it starts from a fresh interpreter)."""
    from webhook.serve import serve_process  # noqa: PLC0415 - the worker's own import

    logs.configure(adopt=("uvicorn", "uvicorn.error", "uvicorn.access"))
    _exit_with_parent()
    synced[index] = 0

    def mark_synced() -> None:
        synced[index] = 1
        log.info("worker %d: caches synced", index)

    kube = Kube.from_environment(settings.kubeconfig)
    serve_process(
        settings,
        kube,
        sock=sock,
        on_synced=mark_synced,
        waiting_workers=lambda: waiting(synced, index),
        metrics=PooledMetrics,
    )
