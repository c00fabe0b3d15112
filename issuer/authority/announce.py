"""Events on the PkiAuthority: each step of a rotation, where ``kubectl describe pkica`` looks.

Through the issuer's own recorder, so repeats aggregate as for Pkis; a
cluster-scoped object's Events live in the ``default`` namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from issuer.authority.loop import Announce
from issuer.reporting.correlator import EventType, ObjectRef, event_text
from issuer.reporting.event_reporter import reporting_instance
from issuer.reporting.recorder import EventRecorder, EventSink
from shared import API_GROUP_VERSION
from shared.kube.client import Kube


def authority_announcer(kube: Kube) -> Announce:
    recorder = EventRecorder(EventSink(kube, instance=reporting_instance()))

    def announce(authority: Mapping[str, Any], warning: bool, reason: str, message: str) -> None:
        ref = ObjectRef.of(authority, api_version=API_GROUP_VERSION, kind="PkiAuthority")
        kind = EventType.WARNING if warning else EventType.NORMAL
        recorder.record(ref, kind, reason, event_text(message))

    return announce
