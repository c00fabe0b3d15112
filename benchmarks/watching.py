"""What the benchmarks watch with: one resource of a namespace, every event to its handlers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3

from shared.kube.client import ApiError, Kube, Resource


def is_ready(obj: dict[str, Any]) -> bool:
    """Its Ready condition is True (a Pki's, as the issuer writes it)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Watch:
    """Follows one resource of a namespace: handlers get (event type, object, monotonic time)."""

    def __init__(self, kube: Kube, resource: Resource, namespace: str) -> None:
        self.kube = kube
        self.path = resource.path(namespace)
        self.handlers: list[Callable[[str, dict[str, Any], float], None]] = []
        self._stop = threading.Event()
        self._version = str(kube.get(self.path)["metadata"]["resourceVersion"])
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                params = {"resourceVersion": self._version}
                for event in self.kube.watch(self.path, params=params, timeout_seconds=60):
                    obj = event.get("object") or {}
                    self._version = str((obj.get("metadata") or {}).get("resourceVersion"))
                    for handler in self.handlers:
                        handler(str(event.get("type")), obj, time.monotonic())
                    if self._stop.is_set():
                        return
            except ApiError as error:
                if error.gone:
                    return
                raise
            except (urllib3.exceptions.HTTPError, OSError):
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
