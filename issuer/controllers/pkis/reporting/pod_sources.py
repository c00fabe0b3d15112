"""Where the Pods of a namespace come from when a failure must be reported on them."""

from __future__ import annotations

from typing import Protocol

from shared.kube.client import JSON, PODS, Kube


class PodSource(Protocol):
    """The Pods of one namespace, as fresh as the caller needs."""

    def pods_in(self, namespace: str) -> list[JSON]: ...


class ListedPods:
    """Lists the namespace's Pods at each failure.

    Failures are rare and paced by the retry backoff, so a list per failure
    is cheap, always current (a Pod created a second ago is included) and
    needs no cluster-wide watch.
    """

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def pods_in(self, namespace: str) -> list[JSON]:
        page = self._kube.get(PODS.path(namespace))
        return [item for item in page.get("items") or [] if isinstance(item, dict)]


class CachedPods:
    """Pods from a list+watch cache (anything with ``list(namespace)``), listed while unsynced."""

    class Cache(Protocol):
        def list(self, namespace: str | None = None) -> list[JSON]: ...

        def wait_synced(self, timeout: float | None = None) -> bool: ...

    def __init__(self, cache: CachedPods.Cache, fallback: PodSource) -> None:
        self._cache = cache
        self._fallback = fallback

    def pods_in(self, namespace: str) -> list[JSON]:
        if self._cache.wait_synced(0):
            return self._cache.list(namespace)
        return self._fallback.pods_in(namespace)
