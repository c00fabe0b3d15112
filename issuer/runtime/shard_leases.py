"""Every shard's Lease as shard 0's holder sees it: who holds it, whether it is renewed, its report.

A report is only as good as its Lease: a shard nobody holds, or whose holder
stopped renewing, may have leaves nobody counted. Renewal is judged by
:mod:`issuer.runtime.lease_sightings`.

:class:`ShardLeases` reads them every retry period on its own thread, so a
long pass of the authority controller never makes a live Lease look stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3

from issuer.runtime.leader import LeaseRecord
from issuer.runtime.lease_sightings import Sighting, renewed, sighted
from issuer.runtime.shard_reports import PROGRESS_ANNOTATION
from shared.kube.client import LEASES, ApiError, Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShardLease:
    """One shard's Lease as the authority controller weighs it."""

    shard: int
    holder: str  # "" when nobody holds it (or it does not exist)
    renewed: bool
    report: str | None  # the holder's progress report; None: none written yet


class ShardLeases:
    """Reads the Leases of all shards on a thread; :meth:`snapshot` is what a pass weighs."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        names: list[str],
        *,
        lease_duration: float,
        retry_period: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._paths = [LEASES.path(namespace, name) for name in names]
        self._duration = lease_duration
        self._retry = retry_period
        self._monotonic = monotonic
        self._sightings: list[Sighting | None] = [None] * len(names)
        self._seen: list[tuple[str, str | None]] = [("", None)] * len(names)
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called when a holder or a report changes (not at every renewal)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start reading; a second call changes nothing."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="shard-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._retry * 2)

    def snapshot(self) -> tuple[ShardLease, ...]:
        now = self._monotonic()
        with self._lock:
            return tuple(
                ShardLease(shard, holder, renewed(sighting, now, self._duration), report)
                for shard, (sighting, (holder, report)) in enumerate(
                    zip(self._sightings, self._seen, strict=True)
                )
            )

    def read_once(self) -> None:
        """Read every shard's Lease once; a failed read leaves what was known to age."""
        changed = False
        for shard, path in enumerate(self._paths):
            try:
                lease = self._kube.get(path, timeout=self._retry * 2)
            except ApiError as error:
                if not error.not_found:
                    log.warning("reading a shard's Lease failed: %s", error)
                    continue
                lease = None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                log.warning("reading a shard's Lease failed: %s", error)
                continue
            metadata = (lease or {}).get("metadata") or {}
            holder = LeaseRecord.of(lease).holder if lease is not None else ""
            report = (metadata.get("annotations") or {}).get(PROGRESS_ANNOTATION)
            with self._lock:
                self._sightings[shard] = sighted(
                    self._sightings[shard],
                    str(metadata.get("resourceVersion") or ""),
                    self._monotonic(),
                )
                if self._seen[shard] != (holder, report):
                    self._seen[shard] = (holder, report)
                    changed = True
        if changed:
            for listener in self._listeners:
                listener()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.read_once()
            self._stopped.wait(self._retry)
