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
from typing import Any

import urllib3

from issuer.reporting.consumers import consuming_pods
from issuer.reporting.correlator import EventType, ObjectRef, event_text
from issuer.reporting.pod_sources import ListedPods, PodSource
from issuer.reporting.reasons import Reason
from issuer.reporting.recorder import EmitHook, EventRecorder, EventSink
from shared import API_GROUP_VERSION
from shared.defaults import secret_name
from shared.kube.client import ApiError, Kube

log = logging.getLogger(__name__)

PKI_KIND = "Pki"


def pki_ref(pki: Mapping[str, Any]) -> ObjectRef:
    """The Pki as an involvedObject; ``kubectl describe pki`` matches kind ``Pki`` and the uid."""
    return ObjectRef.of(pki, api_version=API_GROUP_VERSION, kind=PKI_KIND)


class EventReporter:
    """A ``Reporter`` that writes Kubernetes Events on the Pki and on its consuming Pods."""

    def __init__(self, recorder: EventRecorder, pods: PodSource) -> None:
        self._recorder = recorder
        self._pods = pods

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        text = event_text(message)
        self._recorder.record(pki_ref(pki), EventType.WARNING, str(reason), text)
        for pod in self._consumers(pki):
            ref = ObjectRef.of(pod, api_version="v1", kind="Pod")
            self._recorder.record(ref, EventType.WARNING, str(reason), text)

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        self._recorder.record(
            pki_ref(pki), EventType.NORMAL, str(reason), event_text(message), adopt=again
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
        return consuming_pods(pods, namespace, secret_name(pki) or "")


def reporting_instance() -> str:
    """Which replica wrote an Event: the Pod name in a cluster, else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def event_reporter(kube: Kube, *, on_emitted: EmitHook | None = None) -> EventReporter:
    """The issuer's EventReporter: Pods listed per failure, Events through one recorder."""
    sink = EventSink(kube, instance=reporting_instance())
    return EventReporter(EventRecorder(sink, on_emitted=on_emitted), ListedPods(kube))
