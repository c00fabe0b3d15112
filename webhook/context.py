"""Where the webhook gets what validation needs: the shared list+watch caches.

The app depends on the small :class:`ContextSource` protocol rather than on the
caches, so the HTTP edge can be exercised with a fixed context and the caches
are written once, in ``shared/``, for both processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from shared.impact import PolicyContext
from shared.kube.view import ClusterView
from shared.validation.pki import Context

UNKNOWN_LABELS_HINT = "; the issuer checks again before issuing"


class ContextSource(Protocol):
    def context_for(self, namespace: str) -> Context:
        """The policies, namespace labels, other Pkis and Secrets for ``namespace``."""
        ...

    def policy_context(self) -> PolicyContext:
        """Every policy and Pki and the namespaces' labels, for a PkiPolicy review."""
        ...

    def cache_status(self) -> Mapping[str, bool]:
        """Cache name -> whether its first list has completed."""
        ...


class ClusterViewSource:
    """A :class:`ContextSource` over the shared caches (Secrets as metadata only)."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def context_for(self, namespace: str) -> Context:
        # A namespace created a moment ago (kubectl apply of a directory with the
        # Namespace and its Pkis) may not be in the cache yet: a policy selecting it by
        # label is then assumed to, with a warning, rather than the Pki denied. Nothing is
        # issued on that guess: the issuer checks again with the labels known.
        return self.view.context_for(namespace, unknown_labels_hint=UNKNOWN_LABELS_HINT)

    def policy_context(self) -> PolicyContext:
        labels: dict[str, Mapping[str, str]] = {}
        for namespace in self.view.namespaces.list():
            metadata = namespace.get("metadata") or {}
            labels[str(metadata.get("name", ""))] = metadata.get("labels") or {}
        return PolicyContext(
            policies=self.view.policies.list(),
            pkis=self.view.pkis.list(),
            namespace_labels=labels,
            namespaces_known=self.view.namespaces.synced.is_set(),
            authorities=self.view.authority_names(),
        )

    def cache_status(self) -> Mapping[str, bool]:
        return {cache.name: cache.synced.is_set() for cache in self.view.caches}


class StaticContext:
    """A fixed context for every namespace, always synced (``pkiwarden lint``-style use)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def context_for(self, namespace: str) -> Context:
        return self.context

    def policy_context(self) -> PolicyContext:
        return PolicyContext(policies=self.context.policies, pkis=self.context.other_pkis)

    def cache_status(self) -> Mapping[str, bool]:
        return {}
