"""How many sharded replicas are alive: each renews a membership Lease of its own.

A replica that joins after the shards were taken leads none, so the shard
Leases alone cannot show it; its membership Lease does. Each replica holds
``pkiwarden-issuer-member-<N>-<digest of its identity>`` (the shard count in
the name, as in the shard Leases, so replicas started with another count are
not counted) through an ordinary elector, which renews it and releases it on
a graceful stop, and reads every such Lease each retry period. A member is
alive while its Lease is held and seen renewed within the Lease duration
(:mod:`issuer.runtime.lease_sightings`); a dead replica's Lease stays behind
unrenewed and stops counting.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping

import urllib3

from issuer.runtime.leader import LeaseRecord
from issuer.runtime.lease_sightings import Sighting, renewed, sighted
from shared.kube.client import LEASES, ApiError, Kube

log = logging.getLogger(__name__)


def member_prefix(base: str, shards: int) -> str:
    return f"{base}-member-{shards}-"


def member_lease_name(base: str, shards: int, identity: str) -> str:
    """A valid Lease name for any identity (a Pod name, or host_pid_random outside a Pod)."""
    return member_prefix(base, shards) + hashlib.sha256(identity.encode()).hexdigest()[:12]


def live_members(seen: Mapping[str, tuple[str, Sighting]], now: float, duration: float) -> int:
    """How many of the member Leases (name -> holder, sighting) are held and renewed."""
    return sum(
        1 for holder, sighting in seen.values() if holder and renewed(sighting, now, duration)
    )


class Members:
    """Reads every member Lease on a thread; :meth:`live` counts the replicas alive."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        prefix: str,
        *,
        lease_duration: float,
        retry_period: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._collection = LEASES.path(namespace)
        self._prefix = prefix
        self._duration = lease_duration
        self._retry = retry_period
        self._monotonic = monotonic
        self._seen: dict[str, tuple[str, Sighting]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def live(self) -> int:
        with self._lock:
            return live_members(self._seen, self._monotonic(), self._duration)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="members", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._retry * 2)

    def read_once(self) -> None:
        """List the namespace's Leases once; a failed list leaves what was known to age."""
        try:
            page = self._kube.get(self._collection, timeout=self._retry * 2)
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("listing the member Leases failed: %s", error)
            return
        now = self._monotonic()
        with self._lock:
            seen: dict[str, tuple[str, Sighting]] = {}
            for lease in page.get("items") or []:
                metadata = lease.get("metadata") or {}
                name = str(metadata.get("name") or "")
                if not name.startswith(self._prefix):
                    continue
                previous = self._seen.get(name)
                seen[name] = (
                    LeaseRecord.of(lease).holder,
                    sighted(
                        previous[1] if previous else None,
                        str(metadata.get("resourceVersion") or ""),
                        now,
                    ),
                )
            self._seen = seen

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.read_once()
            self._stopped.wait(self._retry)
