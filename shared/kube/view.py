"""The cluster as validation sees it: caches turned into a validation Context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.kube.cache import WatchCache
from shared.kube.client import (
    NAMESPACES,
    PKI_AUTHORITIES,
    PKI_POLICIES,
    PKIS,
    ROLE_BINDINGS,
    Kube,
)
from shared.validation.pki import Context

# What validation reads of a namespace: the labels.
NAMESPACE_FIELDS = ("labels",)
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

    No Secret is among them: the webhook may not read Secrets at all (a
    ``list`` grant returns their data, private keys included), and the issuer
    looks at the one Secret it is about to write instead. A Secret name taken
    by someone else is the issuer's to report, on the Pki and its Pods.
    """

    policies: WatchCache
    namespaces: WatchCache
    pkis: WatchCache
    # RoleBindings (metadata only): which namespaces are onboarded. The issuer
    # has none: a namespace it may not write to is a refused write it reports.
    role_bindings: WatchCache | None = None
    # PkiAuthorities (metadata only: their names are all validation reads), so that a
    # Pki naming one that does not exist is told which it may use. None: not watched,
    # and validation checks only the policies' allowedAuthorities.
    authorities: WatchCache | None = None

    @classmethod
    def start(cls, kube: Kube) -> ClusterView:
        return cls(
            policies=WatchCache(kube, PKI_POLICIES).start(),
            namespaces=WatchCache(
                kube, NAMESPACES, metadata_only=True, keep_metadata=NAMESPACE_FIELDS
            ).start(),
            pkis=WatchCache(kube, PKIS, keep_metadata=PKI_METADATA, keep_fields=PKI_FIELDS).start(),
            role_bindings=WatchCache(kube, ROLE_BINDINGS, metadata_only=True).start(),
            authorities=WatchCache(kube, PKI_AUTHORITIES, metadata_only=True).start(),
        )

    @property
    def caches(self) -> list[WatchCache]:
        """The caches that must have listed before a review is answered."""
        extra = [self.authorities] if self.authorities is not None else []
        return [self.policies, self.namespaces, self.pkis, *extra]

    def synced(self) -> bool:
        return all(cache.synced.is_set() for cache in self.caches)

    def stop(self) -> None:
        for cache in self.caches:
            cache.stop()
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
        return Context(
            policies=self.policies.list(),
            namespace_labels=labels if ns is not None else None,
            other_pkis=self.pkis.list(namespace) if other_pkis is None else other_pkis,
            unknown_labels_hint=unknown_labels_hint,
            onboarded=self.onboarded(namespace),
            authorities=self.authority_names(),
        )

    def authority_names(self) -> frozenset[str] | None:
        """The names of the PkiAuthorities that exist; None: not watched or not listed yet."""
        cache = self.authorities
        if cache is None or not cache.synced.is_set():
            return None
        return frozenset(
            str((found.get("metadata") or {}).get("name", "")) for found in cache.list()
        )

    def onboarded(self, namespace: str) -> bool | None:
        """Whether ``namespace`` holds the onboarding RoleBinding; None: not known yet."""
        bindings = self.role_bindings
        if bindings is None or not bindings.synced.is_set():
            return None
        return bindings.get(namespace, ONBOARDING_ROLE_BINDING) is not None
