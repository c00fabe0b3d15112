"""A daemon thread that calls one function at a fixed interval until stopped.

Used for periodic checks that must not block the caller (certificate reloads
and rotations); the first call comes one interval after ``start``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Ticker:
    def __init__(self, interval: float, tick: Callable[[], object], *, name: str) -> None:
        self.interval = interval
        self._tick = tick
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self._tick()
