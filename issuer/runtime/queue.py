"""A work queue of Pki keys ("namespace/name"), in the shape of client-go's workqueue.

- Fairness across namespaces: ready keys are handed out round-robin over one
  FIFO per namespace (``issuer.runtime.ready``), so one namespace's burst cannot
  starve another's single Pki.
- De-duplication: a key waiting to be processed is queued once, however many
  changes arrive meanwhile.
- One worker per key: a key being processed is not handed to a second
  worker; if it changes meanwhile it is queued again when the first is done.
- Delayed adds (renewals, retries): only the earliest pending time per key is
  kept, so a far-off renewal never hides a sooner retry.
- Per-key exponential backoff for errors that could not even be recorded in
  status (the API server refused the write); ``forget`` resets it.
- An optional observer sees each add, how long a key waited and how long it
  was worked on: client-go's workqueue metrics, without the queue knowing
  about Prometheus.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from issuer.runtime.ready import QueueOrder, ready_keys
from shared.backoff import Backoff

Clock = Callable[[], float]


class QueueObserver(Protocol):
    """What client-go's workqueue metrics need: adds, time queued, time worked."""

    def added(self) -> None: ...

    def started(self, waited: float) -> None: ...

    def finished(self, worked: float) -> None: ...


class WorkQueue:
    def __init__(
        self,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
        order: QueueOrder = QueueOrder.FAIR,
    ) -> None:
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._lock = threading.Condition()
        self._ready = ready_keys(order)  # keys to hand out, fair across namespaces
        self._queued: set[str] = set()  # keys in _ready, or to re-add after processing
        self._processing: set[str] = set()
        self._due: dict[str, float] = {}  # key -> earliest delayed time
        self._heap: list[tuple[float, str]] = []
        self._failures: dict[str, int] = {}
        self._shutting_down = False
        self.observer: QueueObserver | None = None
        self._added_at: dict[str, float] = {}  # key -> when it was queued (observer only)
        self._started_at: dict[str, float] = {}  # key -> when a worker took it

    # -- adding -----------------------------------------------------------

    def add(self, key: str) -> None:
        with self._lock:
            self._add_locked(key)

    def _add_locked(self, key: str) -> None:
        if self._shutting_down or key in self._queued:
            return
        self._queued.add(key)
        self._due.pop(key, None)  # a due entry left in the heap is skipped when popped
        if self.observer is not None:
            self.observer.added()
            self._added_at[key] = self._clock()
        if key not in self._processing:
            self._ready.append(key)
            self._lock.notify()

    def add_after(self, key: str, delay: float | timedelta) -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if seconds <= 0:
            self.add(key)
            return
        with self._lock:
            if self._shutting_down:
                return
            when = self._clock() + seconds
            current = self._due.get(key)
            if current is not None and current <= when:
                return
            self._due[key] = when
            heapq.heappush(self._heap, (when, key))
            self._lock.notify()

    def add_rate_limited(self, key: str) -> float:
        """Queue ``key`` after its backoff delay; returns the delay chosen."""
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = self._backoff.delay(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    # -- taking -----------------------------------------------------------

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to process, or None on shutdown (or after ``timeout``)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._lock:
            while True:
                self._promote_due_locked()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    if self.observer is not None:
                        now = self._clock()
                        self.observer.started(now - self._added_at.pop(key, now))
                        self._started_at[key] = now
                    return key
                if self._shutting_down:
                    return None
                wait = self._next_due_in_locked()
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._lock.wait(wait)

    def done(self, key: str) -> None:
        """Processing of ``key`` finished; hand it out again if it changed meanwhile."""
        with self._lock:
            self._processing.discard(key)
            started = self._started_at.pop(key, None)
            if self.observer is not None and started is not None:
                self.observer.finished(self._clock() - started)
            if key in self._queued:
                self._ready.append(key)
                self._lock.notify()

    def _promote_due_locked(self) -> None:
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            when, key = heapq.heappop(self._heap)
            if self._due.get(key) == when:
                del self._due[key]
                self._add_locked(key)

    def _next_due_in_locked(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded by an earlier time or an immediate add
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self._clock())

    # -- lifecycle and introspection -----------------------------------------

    def shutdown(self) -> None:
        with self._lock:
            self._shutting_down = True
            self._lock.notify_all()

    def __len__(self) -> int:
        """Keys ready to be processed (workqueue_depth)."""
        with self._lock:
            return len(self._ready)

    def scheduled(self) -> int:
        """Keys waiting for a delayed time (renewals, retries)."""
        with self._lock:
            return len(self._due)
