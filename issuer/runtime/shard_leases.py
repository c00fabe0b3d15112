"""Every shard's Lease as shard 0's holder sees it: who holds it, whether it is renewed, its report.

A report is only as good as its Lease: a shard nobody holds, or whose holder
stopped renewing, may have leaves nobody counted. Renewal is judged as the
elector judges expiry (``issuer.runtime.leader``): by our own monotonic clock
since we saw the record change, never by comparing the holder's renewTime
with our wall clock (clock skew between machines). A Lease read once and not
yet seen to change is not known to be renewed.

:func:`sighted` and :func:`renewed` are pure; :class:`ShardLeases` reads the
Leases every retry period on its own thread, so a long pass of the
authority controller never makes a live Lease look stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3

from issuer.runtime.leader import LeaseRecord
from issuer.runtime.shard_reports import PROGRESS_ANNOTATION
from shared.kube.client import LEASES, ApiError, Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sighting:
    """What we know of when a Lease was last written, in our monotonic time."""

    version: str  # its resourceVersion at our latest read
    read_at: float  # our latest read
    changed_after: float | None  # it was written after this read of ours; None: not seen to


def sighted(previous: Sighting | None, version: str, now: float) -> Sighting:
    """The sighting after reading ``version`` at ``now``."""
    if previous is None:
        return Sighting(version, now, None)
    if version != previous.version:
        return Sighting(version, now, previous.read_at)
    return Sighting(version, now, previous.changed_after)


def renewed(sighting: Sighting | None, now: float, duration: float) -> bool:
    """Written within the last ``duration`` seconds, as far as our reads can tell."""
    return (
        sighting is not None
        and sighting.changed_after is not None
        and now - sighting.changed_after <= duration
    )


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
