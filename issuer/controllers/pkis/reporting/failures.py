"""The Pkis failing right now, indexed by the Secret their consumers read.

A Pod event asks "does this Pod read a Secret whose Pki is failing?"; with
tens of thousands of Pods that must be a dictionary lookup per Secret the Pod
names, never a scan of Pkis or Pods. Written by the reconcile workers (a
failure, a success), read by the Pod watch and the refresher.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from issuer.controllers.pkis.reporting.pod_warnings import Failure, Told
from issuer.runtime.events.correlator import ObjectRef


class FailingPkis:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_pki: dict[tuple[str, str], Failure] = {}  # (namespace, Pki) -> failure
        self._by_secret: dict[tuple[str, str], set[str]] = {}  # (namespace, Secret) -> Pkis
        self._namespaces: dict[str, int] = {}  # namespace -> failing Pkis in it

    def failed(self, failure: Failure) -> Failure:
        """Record ``failure`` (replacing the Pki's earlier one); Pods told before stay told."""
        with self._lock:
            earlier = self._drop(failure.key)
            if earlier is not None and earlier.secret_name == failure.secret_name:
                failure = replace(failure, told={**earlier.told, **failure.told})
            self._by_pki[failure.key] = failure
            namespace = failure.pki.namespace
            self._by_secret.setdefault((namespace, failure.secret_name), set()).add(
                failure.pki.name
            )
            self._namespaces[namespace] = self._namespaces.get(namespace, 0) + 1
            return failure

    def resolved(self, namespace: str, pki_name: str) -> Failure | None:
        """The Pki is no longer failing (issued, or gone); its last failure, if it had one."""
        with self._lock:
            return self._drop((namespace, pki_name))

    def in_namespace(self, namespace: str) -> bool:
        """Whether any Pki of ``namespace`` is failing: most Pod events stop here."""
        with self._lock:
            return bool(self._namespaces.get(namespace))

    def reading(self, namespace: str, secret_names: Iterable[str]) -> list[Failure]:
        """The failures of the Pkis that write any of ``secret_names`` in ``namespace``."""
        with self._lock:
            if not self._namespaces.get(namespace):
                return []
            return [
                self._by_pki[(namespace, pki)]
                for secret in secret_names
                for pki in sorted(self._by_secret.get((namespace, secret), ()))
            ]

    def told(self, failure: Failure, pod: ObjectRef) -> None:
        """``pod`` now has ``failure``'s Warning."""
        with self._lock:
            current = self._by_pki.get(failure.key)
            if current is None or current.message != failure.message:
                return  # resolved or changed meanwhile; the next failure tells again
            told = Told(pod, failure.message)
            self._by_pki[failure.key] = replace(current, told={**current.told, pod.uid: told})

    def said(self, failure: Failure, at: datetime) -> None:
        """The failure's Warnings were written again at ``at``."""
        with self._lock:
            current = self._by_pki.get(failure.key)
            if current is not None and current.message == failure.message:
                self._by_pki[failure.key] = replace(current, said_at=at)

    def pod_gone(self, namespace: str, uid: str) -> None:
        """A deleted Pod is not told of the resolution (its uid will never come back)."""
        with self._lock:
            if not self._namespaces.get(namespace):
                return
            for key, failure in list(self._by_pki.items()):
                if key[0] == namespace and uid in failure.told:
                    told = {k: v for k, v in failure.told.items() if k != uid}
                    self._by_pki[key] = replace(failure, told=told)

    def all(self) -> list[Failure]:
        with self._lock:
            return list(self._by_pki.values())

    def _drop(self, key: tuple[str, str]) -> Failure | None:
        failure = self._by_pki.pop(key, None)
        if failure is None:
            return None
        namespace = key[0]
        holders = self._by_secret.get((namespace, failure.secret_name))
        if holders is not None:
            holders.discard(key[1])
            if not holders:
                del self._by_secret[(namespace, failure.secret_name)]
        left = self._namespaces.get(namespace, 1) - 1
        if left:
            self._namespaces[namespace] = left
        else:
            self._namespaces.pop(namespace, None)
        return failure
