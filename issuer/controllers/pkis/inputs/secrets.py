"""The Secret a Pki names: from the cache of pkiwarden's Secrets, read directly only when needed."""

from __future__ import annotations

import threading

from issuer.controllers.pkis.inputs.watches import Watches
from shared.kube.client import JSON, SECRETS, ApiError, Kube


def read_secret(kube: Kube, namespace: str, name: str) -> JSON | None:
    """A direct read, for a Secret the label-filtered cache cannot see (someone else's)."""
    try:
        return kube.get(SECRETS.path(namespace, name))
    except ApiError as error:
        if error.not_found:
            return None
        raise


class SecretReader:
    """Our cached Secret; a direct read only where the cache cannot tell.

    A synced cache holds every Secret we own in the namespace, so a name
    missing from it is free or someone else's. A GET per new Pki to tell the
    two apart would cost a request on every issuance; instead the create that
    follows is left to find out (409), and a name found taken that way is read
    directly from then on (``taken``), so a foreign Secret is decided on its
    real content and never overwritten.
    """

    def __init__(self, kube: Kube, watches: Watches, sync_seconds: float) -> None:
        self._kube = kube
        self._watches = watches
        self._sync_seconds = sync_seconds
        self._taken: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> JSON | None:
        cache = self._watches.secrets.synced_cache(namespace, self._sync_seconds)
        if cache is not None:
            cached = cache.get(namespace, name)
            with self._lock:
                if cached is not None:
                    self._free(namespace, name)
                    return cached
                if (namespace, name) not in self._taken:
                    return None
        secret = read_secret(self._kube, namespace, name)
        if secret is None:
            with self._lock:
                self._free(namespace, name)
        return secret

    def taken(self, namespace: str, name: str) -> None:
        """A create found the name taken by a Secret the cache does not hold: watch it."""
        with self._lock:
            self._taken.add((namespace, name))
        self._watches.taken.hold(namespace, name)

    def _free(self, namespace: str, name: str) -> None:
        """The name is ours or free again (called with the lock held)."""
        if (namespace, name) in self._taken:
            self._taken.discard((namespace, name))
            self._watches.taken.release(namespace, name)
