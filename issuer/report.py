"""The issuer's Reporter: reconcile outcomes become Events where people look.

A failure is a Warning on the Pki *and* on every Pod in its namespace that
consumes its Secret, because the application owner runs ``kubectl describe
pod`` and cannot see the issuer's logs. Success is a Normal Event on the Pki.
The reconcile loop calls this at every outcome, retries included, so the
Events stay fresh (they expire after an hour) and a Pod created after the
failure is told at the next retry.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any, Protocol

import urllib3

from issuer.consumers import consuming_pods
from issuer.events import EventRecorder, EventSink, EventType, ObjectRef, one_line
from issuer.events.recorder import EmitHook
from issuer.reasons import Reason
from shared import API_GROUP_VERSION
from shared.kube.client import JSON, PODS, ApiError, Kube

log = logging.getLogger(__name__)

PKI_KIND = "Pki"


class PodSource(Protocol):
    """The Pods of one namespace, as fresh as the caller needs."""

    def pods_in(self, namespace: str) -> list[JSON]: ...


class ListedPods:
    """Lists the namespace's Pods at each failure.

    Failures are rare and paced by the retry backoff, so a list per failure
    is cheap, always current (a Pod created a second ago is included) and
    needs no cluster-wide watch.
    """

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def pods_in(self, namespace: str) -> list[JSON]:
        page = self._kube.get(PODS.path(namespace))
        return [item for item in page.get("items") or [] if isinstance(item, dict)]


class CachedPods:
    """Pods from a list+watch cache (anything with ``list(namespace)``), listed while unsynced."""

    class Cache(Protocol):
        def list(self, namespace: str | None = None) -> list[JSON]: ...

        def wait_synced(self, timeout: float | None = None) -> bool: ...

    def __init__(self, cache: CachedPods.Cache, fallback: PodSource) -> None:
        self._cache = cache
        self._fallback = fallback

    def pods_in(self, namespace: str) -> list[JSON]:
        if self._cache.wait_synced(0):
            return self._cache.list(namespace)
        return self._fallback.pods_in(namespace)


def pki_ref(pki: Mapping[str, Any]) -> ObjectRef:
    """The Pki as an involvedObject; ``kubectl describe pki`` matches kind ``Pki`` and the uid."""
    return ObjectRef.of(pki, api_version=API_GROUP_VERSION, kind=PKI_KIND)


def secret_name(pki: Mapping[str, Any]) -> str:
    """The Secret the Pki's consumers read: ``spec.secretName``, by default ``<name>-tls``."""
    spec = pki.get("spec") or {}
    name = str((pki.get("metadata") or {}).get("name") or "")
    return str(spec.get("secretName") or f"{name}-tls")


class EventReporter:
    """Implements ``issuer.reasons.Reporter`` with Kubernetes Events."""

    def __init__(self, recorder: EventRecorder, pods: PodSource) -> None:
        self._recorder = recorder
        self._pods = pods

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        text = one_line(message)
        self._recorder.record(pki_ref(pki), EventType.WARNING, str(reason), text)
        for pod in self._consumers(pki):
            ref = ObjectRef.of(pod, api_version="v1", kind="Pod")
            self._recorder.record(ref, EventType.WARNING, str(reason), text)

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        self._recorder.record(
            pki_ref(pki), EventType.NORMAL, str(reason), one_line(message), adopt=again
        )

    def _consumers(self, pki: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        namespace = str((pki.get("metadata") or {}).get("namespace") or "")
        try:
            pods = self._pods.pods_in(namespace)
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning(
                "pods in %s not listed; their Events wait for the retry: %s", namespace, error
            )
            return []
        return consuming_pods(pods, namespace, secret_name(pki))


def reporting_instance() -> str:
    """Which replica wrote an Event: the Pod name in a cluster, else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def event_reporter(kube: Kube, *, on_emitted: EmitHook | None = None) -> EventReporter:
    """The issuer's EventReporter: Pods listed per failure, Events through one recorder."""
    sink = EventSink(kube, instance=reporting_instance())
    return EventReporter(EventRecorder(sink, on_emitted=on_emitted), ListedPods(kube))
