"""What each namespace's trust ConfigMap holds: the authorities its policies let it use. Pure.

A namespace may use the authorities that the PkiPolicies selecting it allow
(``spec.allowedAuthorities``, read by the shared policy rule; its default,
``default``, stands for the issuer's own authority). Its
``pkiwarden-ca.crt`` holds under ``ca.crt`` the union of those authorities'
trust sets, and one key per authority (``<authority>.crt``) for an app that
trusts one CA only. An authority that does not exist (or has no CA yet)
contributes nothing: it is reported on the PkiAuthority and on the Pkis that
name it, not guessed at here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from issuer.controllers.authorities.decisions.trust import union_bundle
from shared.policy import selecting

TRUST_KEY = "ca.crt"


def authority_key(authority: str) -> str:
    """The ConfigMap key holding one authority's trust set."""
    return f"{authority}.crt"


def allowed_authorities(
    policies: Sequence[Mapping[str, Any]],
    namespace: str,
    labels: Mapping[str, str] | None,
    resolve: Callable[[str], str],
) -> set[str]:
    """The authorities the policies selecting ``namespace`` allow; empty if none selects it."""
    return {
        resolve(authority)
        for policy in selecting(policies, namespace, labels)
        for authority in policy.authorities
    }


def namespace_trust(
    policies: Sequence[Mapping[str, Any]],
    namespaces: Iterable[Mapping[str, Any]],
    bundles: Mapping[str, str],
    resolve: Callable[[str], str],
) -> dict[str, dict[str, str]]:
    """Namespace -> the trust ConfigMap's data, for every namespace a policy selects.

    ``bundles`` holds each authority's trust set (PEM) by name. A selected
    namespace whose authorities have no CA yet still gets its ConfigMap
    (with an empty ``ca.crt``), as it always has, so apps can mount it.
    """
    wanted: dict[str, dict[str, str]] = {}
    for namespace in namespaces:
        metadata = namespace.get("metadata") or {}
        name = metadata.get("name")
        if not isinstance(name, str) or metadata.get("deletionTimestamp"):
            continue
        if not selecting(policies, name, metadata.get("labels")):
            continue
        allowed = sorted(
            a
            for a in allowed_authorities(policies, name, metadata.get("labels"), resolve)
            if a in bundles
        )
        data = {authority_key(a): bundles[a] for a in allowed}
        data[TRUST_KEY] = union_bundle(bundles[a] for a in allowed)
        wanted[name] = data
    return wanted
