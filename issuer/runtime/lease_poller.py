"""A sharded issuer's one reader of Leases: its namespace's Leases, listed once per retry period.

Two things need the other replicas' Leases: how many replicas are alive
(membership Leases, :mod:`issuer.runtime.members`) and every shard's holder
and report (:mod:`issuer.runtime.shard_leases`). One list on one thread
serves both. Polled rather than watched: renewal is judged by our own reads
(:mod:`issuer.runtime.lease_sightings`), and a failed list leaves what was
known to age, so a stalled connection never keeps a dead replica looking
alive. On a thread of its own, so a long pass of a controller never makes a
live Lease look stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3

from issuer.runtime.leader import LeaseRecord
from issuer.runtime.lease_sightings import Sighting, sighted
from shared.kube.client import LEASES, ApiError, Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeenLease:
    """One Lease at our latest list: who holds it ("" nobody), its annotations, when written."""

    holder: str
    annotations: Mapping[str, str]
    sighting: Sighting


def seen_after(
    previous: Mapping[str, SeenLease], leases: Iterable[Mapping[str, Any]], now: float
) -> dict[str, SeenLease]:
    """Every listed Lease by name, its sighting carried on from ``previous``. Pure.

    A Lease no longer listed is gone (deleted): it is forgotten.
    """
    seen: dict[str, SeenLease] = {}
    for lease in leases:
        metadata = lease.get("metadata") or {}
        name = str(metadata.get("name") or "")
        before = previous.get(name)
        seen[name] = SeenLease(
            LeaseRecord.of(lease).holder,
            {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
            sighted(
                before.sighting if before else None,
                str(metadata.get("resourceVersion") or ""),
                now,
            ),
        )
    return seen


class LeasePoller:
    """Lists the namespace's Leases every retry period; ``on_read`` listeners follow each list."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        retry_period: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._collection = LEASES.path(namespace)
        self._retry = retry_period
        self.monotonic = monotonic
        self._seen: Mapping[str, SeenLease] = {}
        self._listeners: list[Callable[[], object]] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def on_read(self, listener: Callable[[], object]) -> None:
        """Called on the poller's thread after every successful list; it must not block long."""
        self._listeners.append(listener)

    def seen(self) -> Mapping[str, SeenLease]:
        """The Leases at the latest list (replaced whole at each list, never changed in place)."""
        return self._seen

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._retry * 2)

    def read_once(self) -> bool:
        """List the Leases once; False if the list failed (what was known is left to age)."""
        try:
            page = self._kube.get(self._collection, timeout=self._retry * 2)
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("listing the Leases failed: %s", error)
            return False
        self._seen = seen_after(self._seen, page.get("items") or [], self.monotonic())
        for listener in self._listeners:
            listener()
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.read_once()
            self._stopped.wait(self._retry)
