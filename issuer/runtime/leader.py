"""Leader election through a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Several issuer replicas may run; only the Lease holder issues, so two
processes never write the same Secret at once. The rules:

- A Lease is *expired* when its record (holder and renewTime) has not changed
  for ``leaseDurationSeconds`` as measured on **our** monotonic clock since we
  first saw that record. Comparing the holder's renewTime with our wall clock
  would make correctness depend on clock skew between machines.
- The holder renews every ``retry_period``; if it cannot renew for
  ``renew_deadline`` (shorter than the lease duration) it stops issuing
  before anyone else may take over.
- Every write is a PUT carrying the resourceVersion read, so two candidates
  racing for an expired Lease cannot both win: the loser gets 409.
- On graceful shutdown the holder releases the Lease (empty holder, duration
  1 s) so a successor starts at once instead of waiting out the duration.

:func:`lease_decision` is the pure decision; :class:`LeaderElector` is the thin loop.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import urllib3

from shared.clock import rfc3339_micro, utc_now
from shared.kube.client import JSON, LEASES, ApiError, Kube

log = logging.getLogger(__name__)

Monotonic = Callable[[], float]
WallClock = Callable[[], datetime]
Callback = Callable[[], None]

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


class LeaseDecision(StrEnum):
    ACQUIRE = "acquire"  # free, released or expired: take it
    RENEW = "renew"  # ours: write a fresh renewTime
    WAIT = "wait"  # someone else holds a live Lease


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The Lease spec fields that election reads and writes."""

    holder: str
    duration_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def as_spec(self) -> JSON:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


def lease_decision(
    record: LeaseRecord | None,
    identity: str,
    *,
    observed_at: float,
    now: float,
    patience: float = 0.0,
) -> LeaseDecision:
    """What a candidate does with the Lease it just read.

    ``observed_at`` is the monotonic time at which this exact record (or its
    absence) was first seen; ``now`` is the monotonic time of the decision.
    ``patience``: how long a free or expired Lease must have stayed so before
    this candidate takes it (a sharded replica that already leads shards
    leaves free ones to those that lead fewer; see ``issuer.runtime.shards``).
    """
    if record is not None and record.holder == identity:
        return LeaseDecision.RENEW
    if record is None or not record.holder:
        return LeaseDecision.ACQUIRE if now - observed_at >= patience else LeaseDecision.WAIT
    if now - observed_at >= record.duration_seconds + patience:
        return LeaseDecision.ACQUIRE
    return LeaseDecision.WAIT


def claim(
    record: LeaseRecord | None,
    identity: str,
    decision: LeaseDecision,
    *,
    now: datetime,
    duration_seconds: int,
) -> LeaseRecord:
    """The record to write for ACQUIRE or RENEW; a change of holder counts a transition."""
    if decision is LeaseDecision.WAIT:
        raise ValueError("nothing to write while another candidate holds the Lease")
    stamp = rfc3339_micro(now)
    if record is None:
        return LeaseRecord(identity, duration_seconds, stamp, stamp, 0)
    changed_hands = record.holder != identity
    return LeaseRecord(
        holder=identity,
        duration_seconds=duration_seconds,
        acquire_time=stamp if changed_hands or not record.acquire_time else record.acquire_time,
        renew_time=stamp,
        transitions=record.transitions + (1 if changed_hands and record.holder else 0),
    )


def released(record: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """What a holder writes on graceful shutdown: nobody holds it, and it expires in 1 s."""
    stamp = rfc3339_micro(now)
    return LeaseRecord("", 1, stamp, stamp, record.transitions)


def must_step_down(*, last_renewed: float, now: float, renew_deadline: float) -> bool:
    """A leader that has not renewed within the deadline stops before others may take over."""
    return now - last_renewed > renew_deadline


def default_identity() -> str:
    """Unique per process: the Pod name if set (stable across container restarts), else host+pid."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


class LeaderElector:
    """Runs the election loop on its own thread and reports transitions through callbacks.

    The callbacks run on the election thread and should return quickly
    (start or stop workers, flip a gate).
    """

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = LEASE_DURATION,
        renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD,
        monotonic: Monotonic = time.monotonic,
        wall_clock: WallClock = utc_now,
        patience: Callable[[bool], float] = lambda free: 0.0,
        lock: threading.Lock | None = None,
        annotations: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        """``patience(free)``: see ``lease_decision`` (``free``: nobody holds the Lease, else it
        expired); electors of one replica's shards share ``lock``, so each decides
        knowing what the others just took. ``annotations()``: what the Lease carries
        while this elector holds it, rewritten at every renewal (a shard's progress);
        a release clears them."""
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self._kube = kube
        self._path = LEASES.path(namespace, name)
        self._collection = LEASES.path(namespace)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._patience = patience
        self._annotations = annotations
        self._absent_since: float | None = None  # when the Lease was first found missing
        self._leading = threading.Event()
        self._stopped = threading.Event()
        self._lock = lock or threading.Lock()  # serialises lease writes (loop vs. release)
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._resource_version = ""
        self._on_stopped: Callback | None = None
        self._thread: threading.Thread | None = None

    @property
    def holds(self) -> bool:
        """The last record this elector read or wrote names it holder (set at once on a write)."""
        return self._observed is not None and self._observed.holder == self.identity

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    def start(self, on_started_leading: Callback, on_stopped_leading: Callback) -> threading.Thread:
        self._thread = threading.Thread(
            target=self.run,
            args=(on_started_leading, on_stopped_leading),
            name=f"leader-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self._thread

    def run(self, on_started_leading: Callback, on_stopped_leading: Callback) -> None:
        """Campaign until stopped; may lead, lose and lead again several times."""
        self._on_stopped = on_stopped_leading
        last_renewed = 0.0
        while not self._stopped.is_set():
            with self._lock:
                if self._stopped.is_set():
                    break
                held = self._try_acquire_or_renew()
                # Decided under the lock: a hand-back between this renewal and the
                # callback must not read as leading afresh.
                started = held and not self._leading.is_set()
                if started:
                    self._leading.set()
            now = self._monotonic()
            if held:
                last_renewed = now
                if started:
                    log.info("leader election: %s leads %s/%s", self.identity, *self._where())
                    on_started_leading()
            elif self._leading.is_set() and (
                self._holder_is_other()
                or must_step_down(
                    last_renewed=last_renewed, now=now, renew_deadline=self._renew_deadline
                )
            ):
                log.warning("leader election: %s lost %s/%s", self.identity, *self._where())
                self._step_down()
            pause = self._retry_period
            if not self._leading.is_set():
                pause *= 1.0 + 0.2 * random.random()  # candidates do not poll in lockstep
            self._stopped.wait(pause)

    def release(self) -> None:
        """Stop campaigning and, if leading, hand the Lease back so a successor starts now."""
        self._stopped.set()
        with self._lock:
            if self._leading.is_set() and self._observed is not None:
                record = released(self._observed, now=self._wall_clock())
                try:
                    self._write(record)
                    log.info("leader election: %s released %s/%s", self.identity, *self._where())
                except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
                    log.warning("leader election: release failed: %s", error)
            if self._leading.is_set():
                self._step_down()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._retry_period * 2)

    def hand_back(self) -> bool:
        """Release the Lease but keep campaigning: a sharded replica giving one shard away.

        The caller has stopped the work the Lease guards; no stop callback runs.
        The freed Lease goes to the least patient candidate, and this one may
        take it again later (after a holder's death) like any other.
        """
        with self._lock:
            if not self._leading.is_set() or self._observed is None:
                return False
            try:
                self._write(released(self._observed, now=self._wall_clock()))
            except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
                log.warning("leader election: hand-back failed: %s", error)
                return False
            self._leading.clear()
        log.info("leader election: %s handed back %s/%s", self.identity, *self._where())
        return True

    # -- internals ----------------------------------------------------------

    def _where(self) -> tuple[str, str]:
        return self.namespace, self.name

    def _holder_is_other(self) -> bool:
        return self._observed is not None and self._observed.holder not in ("", self.identity)

    def _step_down(self) -> None:
        self._leading.clear()
        if self._on_stopped is not None:
            self._on_stopped()

    def _try_acquire_or_renew(self) -> bool:
        timeout = self._retry_period * 2
        try:
            lease = self._kube.get(self._path, timeout=timeout)
        except ApiError as error:
            if not error.not_found:
                log.warning("leader election: reading the Lease failed: %s", error)
                return False
            now = self._monotonic()
            if self._absent_since is None:
                self._absent_since = now
            decision = lease_decision(
                None,
                self.identity,
                observed_at=self._absent_since,
                now=now,
                patience=self._patience(True),
            )
            return decision is LeaseDecision.ACQUIRE and self._create()
        except (urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("leader election: reading the Lease failed: %s", error)
            return False
        self._absent_since = None
        record = LeaseRecord.of(lease)
        self._resource_version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        now = self._monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        decision = lease_decision(
            record,
            self.identity,
            observed_at=self._observed_at,
            now=now,
            patience=self._patience(not record.holder),
        )
        if decision is LeaseDecision.WAIT:
            return False
        wanted = claim(
            record,
            self.identity,
            decision,
            now=self._wall_clock(),
            duration_seconds=round(self._duration),
        )
        try:
            self._write(wanted)
        except ApiError as error:
            if not error.conflict:
                log.warning("leader election: writing the Lease failed: %s", error)
            return False
        except (urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("leader election: writing the Lease failed: %s", error)
            return False
        return True

    def _create(self) -> bool:
        record = claim(
            None,
            self.identity,
            LeaseDecision.ACQUIRE,
            now=self._wall_clock(),
            duration_seconds=round(self._duration),
        )
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, **self._extra()},
            "spec": record.as_spec(),
        }
        try:
            created = self._kube.create(self._collection, body, timeout=self._retry_period * 2)
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
            log.info("leader election: creating the Lease failed: %s", error)
            return False
        self._remember(created, record)
        return True

    def _write(self, record: LeaseRecord) -> None:
        """PUT with the resourceVersion read: a concurrent writer makes this fail with 409."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": self._resource_version,
                **(self._extra() if record.holder == self.identity else {}),
            },
            "spec": record.as_spec(),
        }
        written = self._kube.replace(self._path, body, timeout=self._retry_period * 2)
        self._remember(written, record)

    def _extra(self) -> JSON:
        annotations = dict(self._annotations())
        return {"annotations": annotations} if annotations else {}

    def _remember(self, lease: Mapping[str, Any], record: LeaseRecord) -> None:
        self._observed, self._observed_at = record, self._monotonic()
        self._resource_version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
