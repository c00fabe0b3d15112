"""Certificates outside the Pki controller that still depend on a CA: where two controllers meet.

A rotation keeps the previous CA trusted until nothing valid that it signed
remains. The authority controller counts the Pkis' certificates itself (it
reads their Secrets); Pod certificates live in PodCertificateRequests that
the Pod certificate controller reads, so that controller registers a
counter here and the authority controller asks it, neither importing the
other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

Counter = Callable[[str, bytes, datetime], int]
"""(authority, the active CA's key id, now) -> valid certificates another CA signed."""


class Dependents:
    def __init__(self) -> None:
        self._counters: list[Counter] = []
        self._lock = threading.Lock()

    def add(self, counter: Counter) -> None:
        with self._lock:
            self._counters.append(counter)

    def count(self, authority: str, active_key_id: bytes, now: datetime) -> int:
        with self._lock:
            counters = list(self._counters)
        return sum(counter(authority, active_key_id, now) for counter in counters)
