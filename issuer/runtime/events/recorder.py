"""Writing Events: a thin sink for core/v1 Event objects and the recorder that drives it.

The correlator (``correlator.py``) decides; this module only turns its
verdicts into POSTs and PATCHes. Writes are synchronous on the caller's
thread: the reconcile that failed is the one that tells people, so an Event
is on the server before the retry is scheduled, and a crash loses nothing
that was queued in memory.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

import urllib3

from issuer.runtime.events.correlator import (
    COMBINED_PREFIX,
    Action,
    Correlator,
    Draft,
    EventType,
    ObjectRef,
    Observation,
    Write,
)
from shared.clock import parse_rfc3339, rfc3339
from shared.kube.client import EVENTS, JSON, ApiError, Kube

log = logging.getLogger(__name__)

COMPONENT = "pkiwarden-issuer"

EmitHook = Callable[[EventType, str], None]
"""Called with (type, reason) for every Event object created or updated (metrics)."""


def event_namespace(involved: ObjectRef) -> str:
    """Events live with their object; cluster-scoped objects' Events go to ``default``."""
    return involved.namespace or "default"


class EventSink:
    """POSTs, PATCHes and finds core/v1 Events for one reporting component."""

    def __init__(self, kube: Kube, *, instance: str, component: str = COMPONENT) -> None:
        self._kube = kube
        self.component = component
        self.instance = instance

    def body(self, action: Action) -> JSON:
        """The full Event object; firstTimestamp/lastTimestamp set so Age is never <unknown>.

        ``eventTime`` is left unset: it would switch the API server to the
        events.k8s.io rules (action and series required) for no gain in what
        ``kubectl describe`` shows.
        """
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": action.name, "namespace": event_namespace(action.involved)},
            "involvedObject": action.involved.as_wire(),
            "type": str(action.type),
            "reason": action.reason,
            "message": action.message,
            "count": action.count,
            "firstTimestamp": rfc3339(action.first_timestamp),
            "lastTimestamp": rfc3339(action.last_timestamp),
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }

    def create(self, action: Action) -> None:
        self._kube.create(EVENTS.path(event_namespace(action.involved)), self.body(action))

    def patch(self, action: Action) -> None:
        """Count, lastTimestamp and message: what client-go's recorder patches on a repeat."""
        self._kube.patch(
            EVENTS.path(event_namespace(action.involved), action.name),
            {
                "count": action.count,
                "lastTimestamp": rfc3339(action.last_timestamp),
                "message": action.message,
            },
        )

    def find(self, action: Action) -> Observation | None:
        """The newest Event of ours for the same key, e.g. one written before a restart."""
        involved = action.involved
        selector = ",".join(
            [
                f"involvedObject.uid={involved.uid}",
                f"involvedObject.name={involved.name}",
                f"reason={action.reason}",
                f"type={action.type}",
                f"source={self.component}",
            ]
        )
        page = self._kube.get(
            EVENTS.path(event_namespace(involved)), params={"fieldSelector": selector}
        )
        found: list[Observation] = []
        for item in page.get("items") or []:
            if not _same_message(action, str(item.get("message") or "")):
                continue
            observation = _observation(item)
            if observation is not None:
                found.append(observation)
        return max(found, key=lambda o: o.last_timestamp, default=None)


def _same_message(action: Action, message: str) -> bool:
    if action.key.combined:
        return message.startswith(COMBINED_PREFIX)
    return message == action.message


def _observation(item: Mapping[str, Any]) -> Observation | None:
    metadata = item.get("metadata") or {}
    first = parse_rfc3339(item.get("firstTimestamp"))
    last = parse_rfc3339(item.get("lastTimestamp"))
    name = metadata.get("name")
    if not name or first is None or last is None:
        return None
    return Observation(str(name), int(item.get("count") or 1), first, last)


class EventRecorder:
    """Records Events on objects: correlate, then write what the correlator decided.

    Never raises: an Event that cannot be written is logged and the caller's
    reconcile goes on (the next retry records it again).

    ``adopt_warnings``: before creating a Warning, look for the same Warning
    written by an earlier run of the issuer and update it instead. A restart
    (or a crash loop) then keeps counting on one object rather than starting a
    new one per process. Normal Events skip the lookup (they follow an
    issuance, which a restart does not repeat) unless the caller says
    ``adopt=True``: a success announced again after a crash.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        correlator: Correlator | None = None,
        adopt_warnings: bool = True,
        on_emitted: EmitHook | None = None,
        stripes: int = 64,
    ) -> None:
        self._sink = sink
        self._correlator = correlator or Correlator()
        self._adopt_warnings = adopt_warnings
        self._on_emitted = on_emitted
        # One lock per stripe of involved objects: two threads recording on the
        # same object must not both decide to create the same Event.
        self._locks = [threading.Lock() for _ in range(stripes)]

    def record(
        self,
        involved: ObjectRef,
        type: EventType,
        reason: str,
        message: str,
        *,
        adopt: bool | None = None,
    ) -> Action | None:
        """Record one Event; returns what was done (SKIP when spam-filtered), None on failure.

        ``adopt`` overrides the default lookup of an earlier run's Event
        (Warnings only, when ``adopt_warnings``).
        """
        if adopt is None:
            adopt = self._adopt_warnings and type is EventType.WARNING
        lock = self._locks[hash(involved) % len(self._locks)]
        with lock:
            try:
                return self._record(Draft(involved, type, reason, message), adopt=adopt)
            except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
                log.warning(
                    "event %s %s on %s %s/%s not written: %s",
                    type,
                    reason,
                    involved.kind,
                    involved.namespace,
                    involved.name,
                    error,
                )
                return None

    def _record(self, draft: Draft, *, adopt: bool) -> Action:
        action = self._correlator.correlate(draft)
        if action.write is Write.SKIP:
            log.debug("event %s on %s/%s spam-filtered", action.reason, *_where(action))
            return action
        if action.write is Write.CREATE and adopt:
            existing = self._find(action)
            if existing is not None:
                action = self._correlator.adopt(action, existing)
        if action.write is Write.PATCH:
            try:
                self._sink.patch(action)
            except ApiError as error:
                if not error.not_found:
                    raise
                action = self._correlator.recreate(action)  # expired (1 h TTL) or deleted
        if action.write is Write.CREATE:
            try:
                self._sink.create(action)
            except ApiError as error:
                if not error.conflict:
                    raise
                action = self._correlator.recreate(action)  # name taken: another instance
                self._sink.create(action)
        self._correlator.written(action)
        if self._on_emitted is not None:
            self._on_emitted(action.type, action.reason)
        return action

    def _find(self, action: Action) -> Observation | None:
        """Adoption is an optimisation: without ``list`` on Events, just create."""
        try:
            return self._sink.find(action)
        except ApiError as error:
            log.debug("earlier events not looked up: %s", error)
            return None


def _where(action: Action) -> tuple[str, str]:
    return action.involved.namespace, action.involved.name


def reporting_instance() -> str:
    """Which replica wrote an Event: the Pod name in a cluster, else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def event_recorder(kube: Kube, *, on_emitted: EmitHook | None = None) -> EventRecorder:
    """The issuer's one Event recorder, shared by its controllers."""
    return EventRecorder(EventSink(kube, instance=reporting_instance()), on_emitted=on_emitted)
