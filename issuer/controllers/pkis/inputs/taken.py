"""Secret names held by someone else's Secret, watched so their Pki retries the moment it goes.

A Pki whose spec.secretName is taken by a Secret pkiwarden does not own fails
with SecretConflict and never touches that Secret. The Secret caches hold
pkiwarden's own Secrets only (by label), so the foreign Secret being deleted
or changed would go unseen until the next retry, which the backoff may put an
hour away. Each namespace holding such a name gets one watch of its Secrets'
names (metadata only; nothing but the name, namespace and resourceVersion is
kept), and a change to a taken name wakes the Pkis naming it. The watch ends
when its namespace has no taken name left.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from shared.kube.cache import WatchCache, object_key
from shared.kube.client import JSON, SECRETS, Kube

# (namespace, Secret name): a taken name's Secret changed, was created or deleted.
Changed = Callable[[str, str], None]


class TakenNames:
    """The taken Secret names per namespace, and the watches that notice them change."""

    def __init__(self, kube: Kube, changed: Changed) -> None:
        self._kube = kube
        self._changed = changed
        self._lock = threading.Lock()
        self._names: dict[str, set[str]] = {}
        self._caches: dict[str, WatchCache] = {}

    def hold(self, namespace: str, name: str) -> None:
        """``name`` is taken by a Secret that is not ours: watch it."""
        with self._lock:
            self._names.setdefault(namespace, set()).add(name)
            if namespace in self._caches:
                return
            cache = WatchCache(
                self._kube,
                SECRETS,
                namespace=namespace,
                metadata_only=True,
                keep_metadata=(),
                on_change=self._on_secret,
            )
            self._caches[namespace] = cache
        cache.start()

    def release(self, namespace: str, name: str) -> None:
        """``name`` is free or ours again (or no Pki names it): stop watching for it."""
        with self._lock:
            names = self._names.get(namespace)
            if names is None or name not in names:
                return
            names.discard(name)
            if names:
                return
            del self._names[namespace]
            cache = self._caches.pop(namespace, None)
        if cache is not None:
            cache.stop()

    def held(self, namespace: str, name: str) -> bool:
        with self._lock:
            return name in self._names.get(namespace, ())

    def stop(self) -> None:
        with self._lock:
            caches = list(self._caches.values())
            self._caches.clear()
            self._names.clear()
        for cache in caches:
            cache.stop()

    def _on_secret(self, kind: str, secret: JSON) -> None:
        namespace, name = object_key(secret)
        if self.held(namespace, name):
            self._changed(namespace, name)
