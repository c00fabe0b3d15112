"""Telling the Pod: a refused request's Warning on the Pod the request names.

The request carries the Pod's name and uid, so no lookup is needed, and the
Event is matched by ``kubectl describe pod`` (name, namespace, uid) next to the
kubelet's own ``FailedMount``. The recorder aggregates repeats as it does for
Pki Events (count and lastTimestamp grow on one object).
"""

from __future__ import annotations

from typing import Protocol

from issuer.controllers.podcerts.decisions.answer import AnswerReason
from issuer.controllers.podcerts.inputs.requests import PodCertificateRequest
from issuer.runtime.events.correlator import EventType, ObjectRef


class Recorder(Protocol):
    """``issuer.reporting.recorder.EventRecorder``'s one call used here."""

    def record(self, involved: ObjectRef, type: EventType, reason: str, message: str) -> object: ...


def pod_of(request: PodCertificateRequest) -> ObjectRef:
    return ObjectRef("v1", "Pod", request.namespace, request.pod_name, request.pod_uid)


def tell_pod(
    recorder: Recorder, request: PodCertificateRequest, reason: AnswerReason, message: str
) -> None:
    recorder.record(pod_of(request), EventType.WARNING, reason.value, message)
