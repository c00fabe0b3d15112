"""One list+watch cache per namespace, started on first use.

pkiwarden is granted Secrets per application namespace, never cluster-wide
(see deploy/tenants/), so a cluster-wide Secret watch would be forbidden.
Caches start when a namespace is first asked about; a namespace where access
is denied simply never syncs, and callers treat it as unknown.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.kube.cache import ChangeHandler, WatchCache
from shared.kube.client import JSON, Kube, Resource


class PerNamespaceCaches:
    def __init__(self, kube: Kube, resource: Resource, **cache_options: Any) -> None:
        self._kube = kube
        self._resource = resource
        self._options = cache_options
        self._caches: dict[str, WatchCache] = {}
        self._lock = threading.Lock()

    def ensure(self, namespace: str) -> WatchCache:
        with self._lock:
            cache = self._caches.get(namespace)
            if cache is None:
                cache = WatchCache(self._kube, self._resource, namespace=namespace, **self._options)
                self._caches[namespace] = cache.start()
            return cache

    def synced_cache(self, namespace: str, timeout: float) -> WatchCache | None:
        """The namespace's cache once synced, or None if it is not (yet, or ever) readable."""
        cache = self.ensure(namespace)
        if cache.synced.is_set():
            return cache
        if cache.denied.is_set():
            return None
        return cache if cache.wait_synced(timeout) else None

    def retry_now(self, namespace: str) -> None:
        """Access may just have been granted in ``namespace``: a waiting cache lists at once."""
        with self._lock:
            cache = self._caches.get(namespace)
        if cache is not None and not cache.synced.is_set():
            cache.retry_now()

    def get(self, namespace: str, name: str) -> JSON | None:
        return self.ensure(namespace).get(namespace, name)

    def list(self, namespace: str) -> list[JSON]:
        return self.ensure(namespace).list(namespace)

    def stop(self) -> None:
        with self._lock:
            for cache in self._caches.values():
                cache.stop()


__all__ = ["ChangeHandler", "PerNamespaceCaches"]
