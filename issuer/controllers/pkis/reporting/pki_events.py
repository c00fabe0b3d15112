"""The issuer's PkiRecorder: reconcile outcomes become Events where people look.

A failure is a Warning on the Pki *and* on every Pod in its namespace that
consumes its Secret, because the application owner runs ``kubectl describe
pod`` and cannot see the issuer's logs. Success is a Normal Event on the Pki.

While a Pki fails, a Pod watch tells each Pod that appears (or changes) and
reads the Secret at once, from an index of failing Pkis; a refresher writes
the Warnings again before the Event time-to-live would remove them; and when
the Pki is issued again, every Pod that was told gets a Normal Event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import urllib3

from issuer.controllers.pkis.reporting.consumers import consuming_pods, reading_pod, secrets_read
from issuer.controllers.pkis.reporting.failures import FailingPkis
from issuer.controllers.pkis.reporting.pod_sources import CachedPods, ListedPods, PodSource
from issuer.controllers.pkis.reporting.pod_warnings import (
    Failure,
    Told,
    pod_lacks_event,
    recorded_failure,
    refresh_check_interval,
    refresh_due,
    resolution_message,
)
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime import packings
from issuer.runtime.events.correlator import EventType, ObjectRef, event_text
from issuer.runtime.events.recorder import EventRecorder
from shared import API_GROUP_VERSION
from shared.clock import Clock, utc_now
from shared.defaults import secret_name
from shared.kube.cache import WatchCache
from shared.kube.client import JSON, PODS, ApiError, Kube
from shared.ticker import Ticker

log = logging.getLogger(__name__)

PKI_KIND = "Pki"
DEFAULT_EVENT_TTL = timedelta(hours=1)  # kube-apiserver's --event-ttl default


def pki_ref(pki: Mapping[str, Any]) -> ObjectRef:
    """The Pki as an involvedObject; ``kubectl describe pki`` matches kind ``Pki`` and the uid."""
    return ObjectRef.of(pki, api_version=API_GROUP_VERSION, kind=PKI_KIND)


def pod_ref(pod: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef.of(pod, api_version="v1", kind="Pod")


class PkiEventRecorder:
    """A ``PkiRecorder`` that writes Kubernetes Events on the Pki and on its consuming Pods."""

    def __init__(
        self,
        recorder: EventRecorder,
        pods: PodSource,
        *,
        event_ttl: timedelta = DEFAULT_EVENT_TTL,
        clock: Clock = utc_now,
    ) -> None:
        self._recorder = recorder
        self._pods = pods
        self._event_ttl = event_ttl
        self._clock = clock
        self.failing = FailingPkis()

    # -- the PkiRecorder protocol ------------------------------------------------

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        text = event_text(message)
        involved = pki_ref(pki)
        # Indexed before the Pods are listed: a Pod arriving meanwhile is told by the watch.
        failure = self.failing.failed(
            Failure(involved, secret_name(pki) or "", reason, text, self._clock())
        )
        self._recorder.record(involved, EventType.WARNING, str(reason), text)
        for pod in self._consumers(pki):
            self._tell(failure, pod_ref(pod))

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        text = event_text(message)
        involved = pki_ref(pki)
        self._recorder.record(involved, EventType.NORMAL, str(reason), text, adopt=again)
        failure = self.failing.resolved(involved.namespace, involved.name)
        if failure is None:
            return
        resolution = event_text(resolution_message(involved.name, text))
        for told in failure.told.values():
            self._recorder.record(told.pod, EventType.NORMAL, str(reason), resolution)

    def gone(self, namespace: str, name: str) -> None:
        self.failing.resolved(namespace, name)

    def recall(self, pkis: Iterable[Mapping[str, Any]]) -> int:
        """Rebuild the index of failing Pkis from their status; how many were failing.

        Run when this process starts writing (a restart, a new leader), before
        any reconcile: the Pods consuming a failing Pki's Secret were told by
        the process before (or will be at the next retry), and must hear the
        resolution when it comes, even if the cause went while no issuer ran.
        """
        recalled = 0
        pods: dict[str, list[Mapping[str, Any]]] = {}
        for pki in pkis:
            recorded = recorded_failure(pki)
            if recorded is None:
                continue
            involved = pki_ref(pki)
            text = event_text(recorded.message)
            if involved.namespace not in pods:
                pods[involved.namespace] = self._pods_in(involved.namespace)
            secret = secret_name(pki) or ""
            told = {
                ref.uid: Told(ref, text)
                for pod in consuming_pods(pods[involved.namespace], involved.namespace, secret)
                if (ref := pod_ref(pod)).uid
            }
            at = recorded.at or self._clock()
            self.failing.failed(Failure(involved, secret, recorded.reason, text, at, told))
            recalled += 1
        return recalled

    # -- Pods appearing, Events ageing ------------------------------------------

    def pod_changed(self, kind: str, pod: JSON) -> None:
        """Tell a Pod that reads a failing Pki's Secret, once per failure message."""
        involved = pod_ref(pod)
        if kind == "DELETED":
            self.failing.pod_gone(involved.namespace, involved.uid)
            return
        if not self.failing.in_namespace(involved.namespace):
            return
        for failure in self.failing.reading(involved.namespace, secrets_read(pod)):
            if pod_lacks_event(failure, involved.uid):
                self._tell(failure, involved)

    def refresh(self) -> None:
        """Write again every failure whose Events are halfway to their time-to-live."""
        now = self._clock()
        for failure in self.failing.all():
            if not refresh_due(failure, now, self._event_ttl):
                continue
            self._recorder.record(
                failure.pki, EventType.WARNING, str(failure.reason), failure.message
            )
            for told in failure.told.values():
                self._tell(failure, told.pod)
            self.failing.said(failure, now)

    def refresh_interval(self) -> float:
        return refresh_check_interval(self._event_ttl)

    def _tell(self, failure: Failure, pod: ObjectRef) -> None:
        if self._recorder.record(pod, EventType.WARNING, str(failure.reason), failure.message):
            self.failing.told(failure, pod)

    def _consumers(self, pki: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        namespace = str((pki.get("metadata") or {}).get("namespace") or "")
        return consuming_pods(self._pods_in(namespace), namespace, secret_name(pki) or "")

    def _pods_in(self, namespace: str) -> list[Mapping[str, Any]]:
        try:
            return list(self._pods.pods_in(namespace))
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning(
                "pods in %s not listed; their Events wait for the retry: %s", namespace, error
            )
            return []


class PodWatch:
    """The cluster's Pods, watched so a Pod is told the moment it appears; and the refresher.

    Started by the leader only: only the leader writes Events.
    """

    def __init__(self, kube: Kube, admit: Callable[[str], bool] | None = None) -> None:
        # What reporting reads of a Pod: its name and uid (the Event's
        # involvedObject) and the Secrets its spec reads. Status, labels,
        # annotations and the rest of every Pod in the cluster stay out of memory.
        self.cache = WatchCache(
            kube,
            PODS,
            keep_metadata=("uid",),
            keep_fields=("spec",),
            reduce=reading_pod,
            admit=admit,  # a sharded replica's namespaces
            packing=packings.PODS,
            on_change=self._changed,
        )
        self._reporter: PkiEventRecorder | None = None
        self._ticker: Ticker | None = None

    def start(self, reporter: PkiEventRecorder) -> None:
        self._reporter = reporter
        self._ticker = Ticker(reporter.refresh_interval(), reporter.refresh, name="event-refresh")
        self._ticker.start()
        self.cache.start()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self.cache.stop()

    def _changed(self, kind: str, pod: JSON) -> None:
        if self._reporter is not None:
            self._reporter.pod_changed(kind, pod)


def pki_event_recorder(
    kube: Kube,
    recorder: EventRecorder,
    *,
    event_ttl: timedelta = DEFAULT_EVENT_TTL,
    admit: Callable[[str], bool] | None = None,
) -> tuple[PkiEventRecorder, PodWatch]:
    """The Pki controller's Event recorder, and the Pod watch to start with it once leading.

    Consumers of a failing Pki come from the watch's cache once it is synced,
    from a list of the namespace's Pods before that.
    """
    watch = PodWatch(kube, admit)
    events = PkiEventRecorder(
        recorder, CachedPods(watch.cache, ListedPods(kube)), event_ttl=event_ttl
    )
    return events, watch
