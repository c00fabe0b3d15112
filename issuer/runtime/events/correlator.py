"""Deciding what to write for an Event: aggregation, de-duplication, spam filtering.

The three concerns client-go's ``tools/record`` separates, as three small
pieces composed by one :class:`Correlator`. Every piece is pure state plus an
explicit ``now``: nothing here does I/O or reads a clock of its own, so tests
drive time by hand and the recorder (``recorder.py``) stays a thin writer.

- :class:`Aggregator`: when one object gets many *different* messages with the
  same reason in a short time (a Pki whose failure keeps changing), they are
  folded into one "(combined from similar events)" Event instead of one object
  per message.
- :class:`Deduplicator`: the same message again updates the existing Event
  (count + 1, lastTimestamp now) instead of creating another object; that is
  how every retry refreshes what ``kubectl describe`` shows without a flood.
- :class:`SpamFilter`: a token bucket per involved object bounds how often one
  object's Events are written, whatever the reconcile loop does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from shared.clock import Clock, utc_now
from shared.text import clip_bytes, one_line

MAX_MESSAGE_BYTES = 1024
"""The API server's limit for an Event note; also keeps ``kubectl describe`` readable."""

MAX_NAME_LENGTH = 253
COMBINED_PREFIX = "(combined from similar events): "


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The ``involvedObject`` of an Event.

    The uid matters: ``kubectl describe`` selects Events by name, namespace,
    kind *and* uid, so an Event without the exact uid is never shown, and an
    Event for a deleted-and-recreated Pod does not leak onto its successor.
    """

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, obj: Mapping[str, Any], *, api_version: str = "", kind: str = "") -> ObjectRef:
        """The reference to an object as the API returned it (apiVersion/kind may be absent)."""
        metadata = obj.get("metadata") or {}
        return cls(
            api_version=str(obj.get("apiVersion") or api_version),
            kind=str(obj.get("kind") or kind),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            uid=str(metadata.get("uid") or ""),
        )

    def as_wire(self) -> dict[str, str]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


@dataclass(frozen=True, slots=True)
class Draft:
    """What a caller wants to say about an object, before correlation."""

    involved: ObjectRef
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class AggregateKey:
    """Events that may be combined: same object, type and reason; any message."""

    involved: ObjectRef
    type: EventType
    reason: str


@dataclass(frozen=True, slots=True)
class EventKey:
    """Identity of one Event object: drafts with equal keys update the same object.

    ``message`` is ``None`` for the combined Event of an aggregate, whose text
    changes with every update.
    """

    aggregate: AggregateKey
    message: str | None

    @property
    def combined(self) -> bool:
        return self.message is None


class Write(StrEnum):
    CREATE = "create"  # POST a new Event object
    PATCH = "patch"  # bump count/lastTimestamp/message of an existing one
    SKIP = "skip"  # the spam filter said no; nothing is written


@dataclass(frozen=True, slots=True)
class Observation:
    """What the recorder knows of an Event object it wrote (or adopted)."""

    name: str
    count: int
    first_timestamp: datetime
    last_timestamp: datetime


@dataclass(frozen=True, slots=True)
class Action:
    """The correlator's verdict: which object to write, and with what."""

    write: Write
    key: EventKey
    type: EventType
    involved: ObjectRef
    reason: str
    message: str
    name: str
    count: int
    first_timestamp: datetime
    last_timestamp: datetime

    @property
    def observation(self) -> Observation:
        return Observation(self.name, self.count, self.first_timestamp, self.last_timestamp)


def event_text(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """One line with single spaces, cut to ``limit`` UTF-8 bytes.

    Events are read in ``kubectl describe`` tables, where a newline breaks the
    layout, and the API server rejects notes over 1024 bytes (not characters).
    """
    return clip_bytes(" ".join(one_line(message).split()), limit)


def event_name(object_name: str, nanos: int) -> str:
    """``<object name>.<hex unix nanos>`` as client-go names Events; clipped to 253 characters."""
    suffix = f".{nanos:x}"
    stem = object_name[: MAX_NAME_LENGTH - len(suffix)].rstrip(".-")
    return stem + suffix


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A bounded mapping: memory stays flat however many objects ever got Events."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class _AggregateRecord:
    messages: frozenset[str]
    last_seen: datetime


class Aggregator:
    """Folds many different messages with one reason on one object into one Event.

    Within ``window`` (measured from the previous draft of the same aggregate),
    the first ``max_messages - 1`` distinct messages are kept as Events of
    their own; from the ``max_messages``-th distinct message on, drafts go to
    one combined Event whose text is the latest message behind a
    "(combined from similar events): " prefix. A quiet ``window`` starts over.
    """

    def __init__(
        self, *, max_messages: int = 10, window_seconds: float = 600.0, capacity: int = 4096
    ) -> None:
        self._max_messages = max_messages
        self._window = window_seconds
        self._records: _Lru[AggregateKey, _AggregateRecord] = _Lru(capacity)

    def aggregate(self, draft: Draft, now: datetime) -> tuple[Draft, EventKey]:
        key = AggregateKey(draft.involved, draft.type, draft.reason)
        record = self._records.get(key)
        if record is None or (now - record.last_seen).total_seconds() > self._window:
            messages: frozenset[str] = frozenset()
        else:
            messages = record.messages
        if len(messages) < self._max_messages:
            messages = messages | {draft.message}
        self._records.put(key, _AggregateRecord(messages, now))
        if len(messages) < self._max_messages:
            return draft, EventKey(key, draft.message)
        combined = replace(draft, message=event_text(COMBINED_PREFIX + draft.message))
        return combined, EventKey(key, None)


class Deduplicator:
    """Remembers the Event object behind each key so repeats patch it."""

    def __init__(self, *, capacity: int = 4096) -> None:
        self._seen: _Lru[EventKey, Observation] = _Lru(capacity)

    def observed(self, key: EventKey) -> Observation | None:
        return self._seen.get(key)

    def remember(self, key: EventKey, observation: Observation) -> None:
        self._seen.put(key, observation)

    def forget(self, key: EventKey) -> None:
        self._seen.pop(key)


@dataclass(frozen=True, slots=True)
class _Bucket:
    tokens: float
    updated: datetime


class SpamFilter:
    """A token bucket per involved object and type: ``burst`` at once, then one per ``refill``.

    client-go's defaults (25, one per 5 minutes): a reconcile loop gone wrong
    cannot flood the API server, yet every object's first Events always pass,
    because each object has its own bucket.
    """

    def __init__(
        self, *, burst: int = 25, refill_seconds: float = 300.0, capacity: int = 4096
    ) -> None:
        self._burst = float(burst)
        self._refill = refill_seconds
        self._buckets: _Lru[tuple[ObjectRef, EventType], _Bucket] = _Lru(capacity)

    def allow(self, involved: ObjectRef, type: EventType, now: datetime) -> bool:
        key = (involved, type)
        bucket = self._buckets.get(key) or _Bucket(self._burst, now)
        elapsed = max(0.0, (now - bucket.updated).total_seconds())
        tokens = min(self._burst, bucket.tokens + elapsed / self._refill)
        allowed = tokens >= 1.0
        self._buckets.put(key, _Bucket(tokens - 1.0 if allowed else tokens, now))
        return allowed


class Correlator:
    """Aggregate, then de-duplicate, then filter: the verdict for one draft.

    Thread-safe. State about written objects changes only through
    :meth:`written` / :meth:`lost`, called after the API answered, so a failed
    write is retried as what it was.
    """

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        aggregator: Aggregator | None = None,
        deduplicator: Deduplicator | None = None,
        spam_filter: SpamFilter | None = None,
    ) -> None:
        self._clock = clock
        self._aggregator = aggregator or Aggregator()
        self._deduplicator = deduplicator or Deduplicator()
        self._spam_filter = spam_filter or SpamFilter()
        self._lock = threading.Lock()
        self._last_nanos = 0

    def correlate(self, draft: Draft) -> Action:
        draft = replace(draft, message=event_text(draft.message))
        with self._lock:
            now = self._clock()
            event, key = self._aggregator.aggregate(draft, now)
            seen = self._deduplicator.observed(key)
            if seen is None:
                write, name, count, first = Write.CREATE, self._new_name(event, now), 1, now
            else:
                write, name, count, first = (
                    Write.PATCH,
                    seen.name,
                    seen.count + 1,
                    seen.first_timestamp,
                )
            if not self._spam_filter.allow(event.involved, event.type, now):
                write = Write.SKIP
        return Action(
            write=write,
            key=key,
            type=event.type,
            involved=event.involved,
            reason=event.reason,
            message=event.message,
            name=name,
            count=count,
            first_timestamp=first,
            last_timestamp=now,
        )

    def adopt(self, action: Action, existing: Observation) -> Action:
        """Turn a CREATE into a PATCH of an Event found on the server (written before a restart)."""
        return replace(
            action,
            write=Write.PATCH,
            name=existing.name,
            count=existing.count + 1,
            first_timestamp=existing.first_timestamp,
        )

    def recreate(self, action: Action) -> Action:
        """The Event to create when the one we meant to patch is gone (expired after 1 h)."""
        with self._lock:
            self._deduplicator.forget(action.key)
            now = self._clock()
            name = self._new_name(action, now)
        return replace(
            action,
            write=Write.CREATE,
            name=name,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
        )

    def written(self, action: Action) -> None:
        with self._lock:
            self._deduplicator.remember(action.key, action.observation)

    def _new_name(self, event: Draft | Action, now: datetime) -> str:
        """Unique even when the clock stands still (tests) or repeats a value."""
        nanos = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000
        self._last_nanos = max(nanos, self._last_nanos + 1)
        return event_name(event.involved.name, self._last_nanos)
