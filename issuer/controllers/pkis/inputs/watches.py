"""The caches a reconcile reads, and which of their changes wake which Pki.

- a Pki added, deleted, or given a new generation wakes that Pki (status-only
  updates are ignored, else writing status would loop);
- one of pkiwarden's Secrets changing (by label) wakes its Pki, unless the
  change is the echo of the issuer's own write;
- someone else's Secret under a name a Pki wants (``taken``) changing or going
  wakes the Pkis naming it;
- a CA Secret, a PkiAuthority, a PkiPolicy or a namespace's labels changing
  can change the outcome of many Pkis, so all affected ones are woken.

The caches themselves are the runtime's (built once, shared with the other
controllers); this module adds its listeners and the indexes it keeps.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from issuer.controllers.pkis.inputs.secret_index import SecretNameIndex
from issuer.controllers.pkis.inputs.taken import TakenNames
from issuer.runtime.caches import SharedCaches
from issuer.runtime.packed_status import with_whole_status
from shared import PKI_LABEL, defaults
from shared.kube.cache import object_key
from shared.kube.client import JSON, Kube
from shared.schema import DEFAULT_AUTHORITY
from shared.validation.pki import Context

Wake = Callable[[str], None]


def pki_key(namespace: str, name: str) -> str:
    """The work queue's key for a Pki: one string per Pki however often it is woken.

    The queue's delayed entries, the generation index and the status writer
    each keep the key; unshared, each kept its own copy (70 bytes a Pki each).
    """
    return sys.intern(f"{namespace}/{name}")


class Watches:
    """Owns the caches; calls ``wake(key)`` for every Pki a change may affect."""

    def __init__(self, kube: Kube, caches: SharedCaches, wake: Wake) -> None:
        self._wake = wake
        self._generations: dict[str, tuple[str, int]] = {}
        # Pkis seen deleted, as last seen: their reconcile deletes their Secret.
        self._departed: dict[str, JSON] = {}
        self.secret_index = SecretNameIndex()
        # (namespace, Secret) -> resourceVersion of the issuer's last write of it.
        self._own_writes: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.view = caches.view
        self.secrets = caches.issued_secrets
        self.taken = TakenNames(kube, self._on_taken_name)
        caches.view.pkis.add_listener(self._on_pki)
        caches.policies.add(self._on_policy)
        caches.namespaces.add(self._on_namespace)
        caches.issued_secrets_changed.add(self._on_secret)
        caches.ca_secrets.listeners.add(lambda kind, secret: self._wake_all())
        caches.authorities.add_listener(self._on_authority)
        self._authority_generations: dict[str, int] = {}

    def stop(self) -> None:
        """The names taken by others' Secrets: the only watches this controller owns."""
        self.taken.stop()

    # -- reading ----------------------------------------------------------

    def pki(self, namespace: str, name: str) -> JSON | None:
        """The cached Pki, its status decoded: a reconcile reads most of it."""
        return with_whole_status(self.view.pkis.get(namespace, name))

    def departed(self, key: str) -> JSON | None:
        """The Pki as last seen, if the watch saw it deleted since it was last asked."""
        with self._lock:
            return self._departed.pop(key, None)

    def secret_name_of(self, pki: Mapping[str, Any]) -> str:
        """spec.secretName with defaults; cheaper than defaulting the whole spec.

        Not memoised: a memo per Pki held more memory (0.25 KB each) than the
        microsecond it saved twice per reconcile.
        """
        return defaults.secret_name(pki) or ""

    def context(self, namespace: str, secret_name: str) -> Context:
        """The validation context, with only the Pkis that could share the Secret name.

        Validation compares the secretName of every other Pki in the namespace;
        handing it only the candidates, from an index kept by the Pki watch,
        keeps a reconcile O(1) for namespaces with thousands of Pkis (filtering
        the whole namespace here made a burst of n new Pkis cost O(n²)).
        """
        candidates = [
            other
            for other_name in self.secret_index.pkis_naming(namespace, secret_name)
            if (other := self.view.pkis.get(namespace, other_name)) is not None
        ]
        return self.view.context_for(namespace, other_pkis=candidates)

    def run_time_context(self, namespace: str, secret_name: str) -> Context:
        """``context`` for the issuer's re-check: policy findings say what changed, not a guess.

        The default authority always exists for the issuer: it signs with the CA
        Secret it was started with, whether or not a PkiAuthority names it.
        """
        context = self.context(namespace, secret_name)
        known = context.authorities
        if known is not None:
            known = known | {DEFAULT_AUTHORITY}
        return replace(context, at_run_time=True, authorities=known)

    def wrote(self, namespace: str, secret_name: str, resource_version: str) -> None:
        """Remember the issuer's own write, so its echo from the watch wakes nobody."""
        with self._lock:
            self._own_writes[(namespace, secret_name)] = resource_version

    # -- what wakes -------------------------------------------------------

    def _on_pki(self, kind: str, pki: JSON) -> None:
        namespace, name = object_key(pki)
        key = pki_key(namespace, name)
        metadata = pki.get("metadata") or {}
        seen = (str(metadata.get("uid")), int(metadata.get("generation") or 0))
        if kind == "DELETED":
            with self._lock:
                self._departed[key] = pki
            self._generations.pop(key, None)
            self.secret_index.update(namespace, name, None)
            self._wake(key)
            return
        with self._lock:
            self._departed.pop(key, None)
        self.secrets.ensure(namespace)
        if kind == "MODIFIED" and self._generations.get(key) == seen:
            return  # a status update (often our own): nothing to do
        self._generations[key] = seen
        self.secret_index.update(namespace, name, pki)  # secretName is spec: new generation
        self._wake(key)

    def _on_secret(self, kind: str, secret: JSON) -> None:
        """Wake the owning Pki, unless this is the echo of the write its reconcile just made.

        That reconcile wrote the Secret, then status (or scheduled a retry of
        it), and scheduled the renewal; reconciling the very resourceVersion it
        wrote would re-parse and re-verify our own certificate for nothing. Any
        other version (altered, deleted, re-created by someone) wakes the Pki.
        """
        namespace, name = object_key(secret)
        metadata = secret.get("metadata") or {}
        with self._lock:
            written = self._own_writes.pop((namespace, name), None)
        if kind != "DELETED" and written is not None and written == metadata.get("resourceVersion"):
            return
        owner = (metadata.get("labels") or {}).get(PKI_LABEL)
        if owner:
            self._wake(pki_key(namespace, str(owner)))

    def _on_taken_name(self, namespace: str, secret_name: str) -> None:
        """Someone else's Secret under a name a Pki wants changed or went: retry that Pki now."""
        naming = self.secret_index.pkis_naming(namespace, secret_name)
        if not naming:
            self.taken.release(namespace, secret_name)
        for name in naming:
            self._wake(pki_key(namespace, name))

    def _on_authority(self, kind: str, authority: JSON) -> None:
        """An authority appearing, going or changing its spec; not its status (written often)."""
        metadata = authority.get("metadata") or {}
        name, generation = str(metadata.get("name")), int(metadata.get("generation") or 0)
        if kind == "DELETED":
            self._authority_generations.pop(name, None)
        elif self._authority_generations.get(name) == generation:
            return
        else:
            self._authority_generations[name] = generation
        self._wake_all()

    def _on_policy(self, kind: str, policy: JSON) -> None:
        self._wake_all()

    def _on_namespace(self, kind: str, namespace: JSON) -> None:
        if kind == "MODIFIED":
            self._wake_all(object_key(namespace)[1])

    def _wake_all(self, namespace: str | None = None) -> None:
        for key in self.view.pkis.keys(namespace):
            self._wake(pki_key(*key))
