"""The cluster as validation sees it: caches turned into a validation Context."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL
from shared.kube.cache import ChangeHandler, WatchCache, object_key
from shared.kube.client import (
    JSON,
    NAMESPACES,
    PKI_POLICIES,
    PKIS,
    ROLE_BINDINGS,
    SECRETS,
    ApiError,
    Kube,
)
from shared.kube.namespaced import PerNamespaceCaches
from shared.validation import Context, SecretInfo

# What validation reads of a namespace and of a Secret it does not own: the labels.
NAMESPACE_FIELDS = ("labels",)
SECRET_FIELDS = ("labels",)
# What the webhook reads of the Pkis it does not review: their spec (a Secret
# name clash, a policy change's impact), never their status.
PKI_METADATA = ("labels", "uid", "generation")
PKI_FIELDS = ("apiVersion", "kind", "spec")
# The RoleBinding deploy/tenants creates in a namespace to onboard it: its presence is
# what "onboarded" means to validation (read as metadata, never a Secret).
ONBOARDING_ROLE_BINDING = "pkiwarden-issuer"


@dataclass(frozen=True)
class ClusterView:
    """The caches both processes keep for validation.

    ``secrets`` holds labels only, one cache per namespace (access is
    granted per namespace) or one for the cluster where that is allowed, and
    is optional: the issuer looks at the one Secret it is about to write
    instead.
    """

    policies: WatchCache
    namespaces: WatchCache
    pkis: WatchCache
    secrets: PerNamespaceCaches | None = None
    # Never wait for a namespace's first Secret list: the webhook asks from
    # its event loop, where a wait would stall every review in flight. The
    # first review in a namespace starts the cache and goes without the
    # (advisory) unmanaged-Secret warning; later ones have it.
    secrets_wait_seconds: float = 0.0
    # RoleBindings (metadata): which namespaces are onboarded, and a namespace's Secret
    # cache restarted the moment it is (its RoleBinding created), instead of after its backoff.
    role_bindings: WatchCache | None = None

    @classmethod
    def start(cls, kube: Kube, *, with_secrets: bool) -> ClusterView:
        secrets = (
            PerNamespaceCaches(kube, SECRETS, metadata_only=True, keep_metadata=SECRET_FIELDS)
            if with_secrets
            else None
        )
        role_bindings = WatchCache(
            kube,
            ROLE_BINDINGS,
            metadata_only=True,
            on_change=_access_changed(secrets) if secrets is not None else None,
        ).start()
        view = cls(
            policies=WatchCache(kube, PKI_POLICIES).start(),
            namespaces=WatchCache(
                kube, NAMESPACES, metadata_only=True, keep_metadata=NAMESPACE_FIELDS
            ).start(),
            pkis=WatchCache(kube, PKIS, keep_metadata=PKI_METADATA, keep_fields=PKI_FIELDS).start(),
            secrets=secrets,
            role_bindings=role_bindings,
        )
        if view.secrets is not None:
            # Decided here, not on the first review's event loop; if the API
            # server cannot answer now, it is asked at the first review instead.
            with contextlib.suppress(ApiError, urllib3.exceptions.HTTPError, OSError):
                view.secrets.cluster_cache()
        return view

    @property
    def caches(self) -> list[WatchCache]:
        return [self.policies, self.namespaces, self.pkis]

    def synced(self) -> bool:
        return all(cache.synced.is_set() for cache in self.caches)

    def stop(self) -> None:
        for cache in self.caches:
            cache.stop()
        if self.secrets is not None:
            self.secrets.stop()
        if self.role_bindings is not None:
            self.role_bindings.stop()

    def context_for(
        self,
        namespace: str,
        other_pkis: Sequence[Mapping[str, Any]] | None = None,
        unknown_labels_hint: str | None = None,
    ) -> Context:
        """The validation context for a Pki in ``namespace``.

        ``other_pkis``: the Pkis that could clash with it, when the caller knows
        them from an index; by default every Pki of the namespace.
        ``unknown_labels_hint``: see :class:`Context`.
        """
        ns = self.namespaces.get("", namespace)
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        cache = self._secrets_of(namespace)
        return Context(
            policies=self.policies.list(),
            namespace_labels=labels if ns is not None else None,
            other_pkis=self.pkis.list(namespace) if other_pkis is None else other_pkis,
            secrets=None if cache is None else SecretsOf(cache, namespace),
            unknown_labels_hint=unknown_labels_hint,
            onboarded=self.onboarded(namespace),
        )

    def onboarded(self, namespace: str) -> bool | None:
        """Whether ``namespace`` holds the onboarding RoleBinding; None: not known yet."""
        bindings = self.role_bindings
        if bindings is None or not bindings.synced.is_set():
            return None
        return bindings.get(namespace, ONBOARDING_ROLE_BINDING) is not None

    def _secrets_of(self, namespace: str) -> WatchCache | None:
        """Secret metadata of a namespace; None when unknown (never readable, or not yet)."""
        if self.secrets is None:
            return None
        return self.secrets.synced_cache(namespace, self.secrets_wait_seconds)


class SecretsOf(Mapping[str, SecretInfo]):
    """A namespace's Secrets as validation sees them, each read from the cache when asked.

    A review looks up the one Secret its Pki would write, and a namespace may
    hold thousands: with 50 a namespace, building them all for every review
    cost as much as the rest of the review.
    """

    def __init__(self, cache: WatchCache, namespace: str) -> None:
        self._cache = cache
        self._namespace = namespace

    def __getitem__(self, name: str) -> SecretInfo:
        secret = self._cache.get(self._namespace, name)
        if secret is None:
            raise KeyError(name)
        labels = (secret.get("metadata") or {}).get("labels") or {}
        return SecretInfo(
            name=name,
            managed_by_pkiwarden=labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
            owner_pki=labels.get(PKI_LABEL),
        )

    def __iter__(self) -> Iterator[str]:
        for secret in self._cache.list(self._namespace):
            yield str((secret.get("metadata") or {}).get("name", ""))

    def __len__(self) -> int:
        return len(self._cache.list(self._namespace))


def _access_changed(secrets: PerNamespaceCaches) -> ChangeHandler:
    def changed(kind: str, binding: JSON) -> None:
        if kind != "DELETED":
            secrets.retry_now(object_key(binding)[0])

    return changed
