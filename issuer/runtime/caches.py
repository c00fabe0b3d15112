"""The caches the issuer's controllers read, each built and started once per process.

Controllers do not build caches of the kinds they share: they take these and
add listeners (before :meth:`SharedCaches.start`, so they see every object).
What one controller alone reads (the trust ConfigMaps, names taken by others'
Secrets) it may still cache itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import urllib3

from issuer.runtime import packings
from issuer.runtime.issued_facts import keep_facts
from issuer.runtime.packed_status import pack_status
from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.heap import HeapTrimmer, fix_mmap_threshold
from shared.kube.cache import ChangeHandler, WatchCache
from shared.kube.client import (
    JSON,
    NAMESPACES,
    PKI_AUTHORITIES,
    PKI_POLICIES,
    PKIS,
    SECRETS,
    ApiError,
    Kube,
)
from shared.kube.namespaced import PerNamespaceCaches
from shared.kube.view import NAMESPACE_FIELDS, ClusterView

OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
ISSUED_SECRET_METADATA = ("uid", "labels", "annotations", "ownerReferences")
# What the controllers read of a Pki's metadata besides its name: not its labels,
# annotations (kubectl's last-applied-configuration repeats the whole object) or
# creationTimestamp.
PKI_METADATA = ("uid", "generation", "deletionTimestamp")


class Listeners:
    """Several change handlers behind one: what a cache built once calls."""

    def __init__(self) -> None:
        self._handlers: list[ChangeHandler] = []

    def add(self, handler: ChangeHandler) -> None:
        self._handlers.append(handler)

    def __call__(self, kind: str, obj: JSON) -> None:
        for handler in self._handlers:
            handler(kind, obj)


class CASecrets:
    """The CA Secrets in the issuer's namespace, one watch per name.

    One per name, not one for the namespace: the issuer's Role names the CA
    Secrets it may read (``resourceNames``), and a list of every Secret in its
    namespace would be refused. A name asked for first after ``start`` (a
    PkiAuthority created later) is watched from then on; readiness waits only
    for the names known at start, so an authority whose Secret the issuer may
    not read is reported on that authority and its Pkis, and never makes the
    whole issuer unready.
    """

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self.namespace = namespace
        self.listeners = Listeners()
        self._caches: dict[str, WatchCache] = {}
        self._started = False
        self._initial: list[WatchCache] = []
        self._lock = threading.Lock()

    def cache(self, name: str) -> WatchCache:
        with self._lock:
            cache = self._caches.get(name)
            if cache is None:
                cache = WatchCache(
                    self._kube,
                    SECRETS,
                    namespace=self.namespace,
                    field_selector=f"metadata.name={name}",
                    on_change=self.listeners,
                )
                self._caches[name] = cache
                if self._started:
                    cache.start()
            return cache

    def get(self, name: str) -> JSON | None:
        return self.cache(name).get(self.namespace, name)

    def __iter__(self) -> Iterator[WatchCache]:
        with self._lock:
            return iter(list(self._caches.values()))

    def denied(self, name: str) -> bool:
        """The API server refuses the issuer this Secret (it is not among its resourceNames)."""
        return self.cache(name).denied.is_set()

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._initial = list(self._caches.values())
            for cache in self._initial:
                cache.start()

    def synced(self) -> bool:
        return all(cache.synced.is_set() for cache in self._initial)

    def stop(self) -> None:
        for cache in self:
            cache.stop()


class SharedCaches:
    """Policies, namespaces, Pkis, PkiAuthorities, pkiwarden's Secrets and the CA Secrets."""

    def __init__(
        self, kube: Kube, namespace: str, admit: Callable[[str], bool] | None = None
    ) -> None:
        """``admit``: the namespaces whose Pkis and Secrets to keep (a sharded replica's)."""
        self.policies = Listeners()
        self.namespaces = Listeners()
        self.issued_secrets_changed = Listeners()
        # Every PkiAuthority: the authority controller serves each, and validation's
        # re-check tells a Pki naming one that does not exist which it may use.
        self.authorities = WatchCache(kube, PKI_AUTHORITIES)
        self.view = ClusterView(
            policies=WatchCache(kube, PKI_POLICIES, on_change=self.policies),
            namespaces=WatchCache(
                kube,
                NAMESPACES,
                metadata_only=True,
                keep_metadata=NAMESPACE_FIELDS,
                on_change=self.namespaces,
            ),
            pkis=WatchCache(
                kube,
                PKIS,
                keep_metadata=PKI_METADATA,
                keep_fields=("apiVersion", "kind", "spec", "status"),
                admit=admit,
                # Only the status packed (``packed_status``): the authority controller
                # reads every Pki each second, and 10,000 whole Pkis decoded anew took
                # about 0.2 s of CPU, and the memory packing saved, each time.
                reduce=pack_status,
            ),
            authorities=self.authorities,
        )
        # Every Secret pkiwarden wrote (by label), per namespace or cluster-wide.
        self.issued_secrets = PerNamespaceCaches(
            kube,
            SECRETS,
            label_selector=OWNED_SELECTOR,
            admit=admit,
            # Their facts, not their PEM: the certificate parsed once, the key not kept;
            # of the metadata what ownership, a rewrite and a delete read.
            keep_metadata=ISSUED_SECRET_METADATA,
            keep_fields=("data", "type"),
            reduce=keep_facts,
            packing=packings.ISSUED_SECRETS,
            on_change=self.issued_secrets_changed,
        )
        self.ca_secrets = CASecrets(kube, namespace)
        self._cluster_secrets: WatchCache | None = None
        self._heap = HeapTrimmer()

    def start(self) -> None:
        """Start every cache; safe before leadership (reading is harmless).

        Where pkiwarden's Secrets may be watched cluster-wide, that one cache
        starts now and counts for readiness, so the first reconciles find
        their Secrets cached instead of reading each directly.

        Their list pages are the process's largest blocks: mapped and unmapped
        on their own, and what they leave free in the heap returned
        (``shared.heap``).
        """
        fix_mmap_threshold()
        self._heap.start()
        for cache in self.view.caches:  # the authorities' among them
            cache.start()
        self.ca_secrets.start()
        try:
            self._cluster_secrets = self.issued_secrets.cluster_cache()
        except (ApiError, urllib3.exceptions.HTTPError, OSError):
            self._cluster_secrets = None  # asked again per namespace, at first use

    def synced(self) -> bool:
        owned = self._cluster_secrets
        return (
            self.view.synced()
            and self.ca_secrets.synced()
            and (owned is None or owned.synced.is_set())
        )

    def refill(self, timeout: float) -> bool:
        """List pkiwarden's Secrets, then the Pkis, again: ``admit`` admits more namespaces.

        The Secrets first, so that no Pki of a new namespace is reconciled
        before its Secret is cached (it would look missing and be issued again).
        """
        owned = self._cluster_secrets
        secrets_listed = owned is None or owned.relist(timeout)
        return secrets_listed and self.view.pkis.relist(timeout)

    def stop(self) -> None:
        self.view.stop()
        self.issued_secrets.stop()
        self.ca_secrets.stop()
        self._heap.stop()
