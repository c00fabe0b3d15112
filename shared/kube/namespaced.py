"""Secrets by namespace: one cluster-wide list+watch where allowed, else one per namespace.

pkiwarden is granted Secrets per application namespace (see deploy/tenants/),
so a cluster-wide watch may be forbidden; then one cache per namespace starts
when the namespace is first asked about, and a namespace where access is
denied simply never syncs (callers treat it as unknown). Where the grant is
cluster-wide, one watch serves every namespace: at 1,000 namespaces,
per-namespace caches meant 1,000 watch connections and threads in each
process and 1,000 watches on the API server. Which of the two is decided
once, by a cheap list (one item) at cluster scope.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.kube.cache import ChangeHandler, WatchCache
from shared.kube.client import JSON, ApiError, Kube, Resource

_METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class PerNamespaceCaches:
    """The cache that holds a namespace's objects; ``cluster_wide`` None means: probe once."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        cluster_wide: bool | None = None,
        **cache_options: Any,
    ) -> None:
        self._kube = kube
        self._resource = resource
        self._options = cache_options
        self._cluster_wide = cluster_wide
        self._cluster: WatchCache | None = None
        self._caches: dict[str, WatchCache] = {}
        self._lock = threading.Lock()

    def ensure(self, namespace: str) -> WatchCache:
        with self._lock:
            if self._cluster_wide is None:
                self._cluster_wide = self._may_list_cluster_wide()
            if self._cluster_wide:
                if self._cluster is None:
                    self._cluster = WatchCache(self._kube, self._resource, **self._options).start()
                return self._cluster
            cache = self._caches.get(namespace)
            if cache is None:
                cache = WatchCache(self._kube, self._resource, namespace=namespace, **self._options)
                self._caches[namespace] = cache.start()
            return cache

    def cluster_cache(self) -> WatchCache | None:
        """The cluster-wide cache, started now, if the grant allows one; else None."""
        with self._lock:
            if self._cluster_wide is None:
                self._cluster_wide = self._may_list_cluster_wide()
        return self.ensure("") if self._cluster_wide else None

    @property
    def watches(self) -> int:
        """Watch connections held: 1 cluster-wide, else one per namespace asked about."""
        with self._lock:
            return len(self._caches) + (self._cluster is not None)

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
            if self._cluster is not None:
                self._cluster.stop()

    def _may_list_cluster_wide(self) -> bool:
        """A one-item list at cluster scope; refused (401/403) means per namespace.

        Any other error propagates and the question is asked again next time,
        so a passing outage does not fix the choice for the process's life.
        """
        params: dict[str, str | int | bool] = {"limit": 1}
        for option, parameter in (
            ("label_selector", "labelSelector"),
            ("field_selector", "fieldSelector"),
        ):
            if self._options.get(option):
                params[parameter] = str(self._options[option])
        try:
            self._kube.get(self._resource.path(), params=params, accept=_METADATA)
        except ApiError as error:
            if error.status in (401, 403):
                return False
            raise
        return True


__all__ = ["ChangeHandler", "PerNamespaceCaches"]
