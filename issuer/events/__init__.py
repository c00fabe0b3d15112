"""Kubernetes Events for the issuer: a correlator that decides, a recorder that writes."""

from issuer.events.correlator import (
    COMBINED_PREFIX,
    Action,
    Aggregator,
    Correlator,
    Deduplicator,
    Draft,
    EventKey,
    EventType,
    ObjectRef,
    SpamFilter,
    Write,
    one_line,
)
from issuer.events.recorder import COMPONENT, EventRecorder, EventSink

__all__ = [
    "COMBINED_PREFIX",
    "COMPONENT",
    "Action",
    "Aggregator",
    "Correlator",
    "Deduplicator",
    "Draft",
    "EventKey",
    "EventRecorder",
    "EventSink",
    "EventType",
    "ObjectRef",
    "SpamFilter",
    "Write",
    "one_line",
]
