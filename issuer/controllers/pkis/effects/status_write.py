"""Writing the Pki's status: only when it changed, never from a stale Pki."""

from __future__ import annotations

import threading
from datetime import datetime

from issuer.controllers.pkis.decisions.status import Outcome, next_status, status_patch
from shared.kube.client import JSON, PKIS, ApiError, Kube


class StatusWriter:
    """Patches status, and remembers the Pki each patch returned until the cache catches up."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._written: dict[str, tuple[str, JSON]] = {}  # key -> (version patched, result)
        self._lock = threading.Lock()

    def freshest(self, key: str, cached: JSON | None) -> JSON | None:
        """The cached Pki, or the one our last status write returned if the cache lags behind it.

        Without this, the reconcile woken by our own Secret write would compute
        status from the pre-write Pki and lose a conflict for nothing.
        """
        with self._lock:
            written = self._written.get(key)
            if cached is None or written is None:
                return cached
            if str((cached.get("metadata") or {}).get("resourceVersion")) == written[0]:
                return written[1]
            self._written.pop(key, None)  # the cache caught up (or moved past us)
            return cached

    def cache_changed(self, kind: str, pki: JSON) -> None:
        """A Pki cache listener: a copy is kept only until the cache moves past its version.

        Without this, the copy of each Pki stayed until its next reconcile,
        months later at renewal: 10,000 Pkis kept twice.
        """
        metadata = pki.get("metadata") or {}
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        with self._lock:
            written = self._written.get(key)
            if written is not None and (
                kind == "DELETED" or str(metadata.get("resourceVersion")) != written[0]
            ):
                del self._written[key]

    def forget(self, key: str) -> None:
        with self._lock:
            self._written.pop(key, None)

    def write(self, key: str, pki: JSON, outcome: Outcome, now: datetime) -> bool:
        """Patch status if it changed; False on a conflict (the caller retries shortly).

        The patch carries the resourceVersion we read: a status computed from a
        stale Pki must not overwrite a newer one.
        """
        patch = status_patch(pki.get("status") or {}, next_status(pki, outcome, now))
        if patch is None:
            return True
        metadata = pki.get("metadata") or {}
        version = str(metadata.get("resourceVersion"))
        body = {"metadata": {"resourceVersion": version}, "status": patch}
        namespace, name = key.split("/", 1)
        try:
            updated = self._kube.patch(PKIS.path(namespace, name, sub="status"), body, "merge")
        except ApiError as error:
            if error.conflict or error.not_found:
                return False
            raise
        (updated.get("metadata") or {}).pop("managedFields", None)  # as the cache keeps it
        with self._lock:
            self._written[key] = (version, updated)
        return True
