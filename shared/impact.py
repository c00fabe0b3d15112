"""What a PkiPolicy change does to the Pkis that already exist: pure, no I/O.

A platform team tightening a policy sees, at apply time, which Pkis it would
stop allowing, before their owners see failures at the next issuance. Only
Pkis in namespaces the old or the new policy selects can change verdict, so
only those are checked again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.findings import Category, Finding, Severity
from shared.policy import policy_name, selecting
from shared.suggest import did_you_mean
from shared.validation.pki import Context, validate_pki

_SHOWN = 3
# Re-checking a Pki costs ~0.1 ms; the API server waits 5 s for the webhook. Past this
# many candidates the rest go unchecked (and the warning says so) rather than time out.
CHECK_LIMIT = 5000


@dataclass(frozen=True)
class PolicyContext:
    """The cluster a PkiPolicy lands in: every policy, every Pki, namespace labels."""

    policies: Sequence[Mapping[str, Any]] = ()
    pkis: Sequence[Mapping[str, Any]] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # True when namespace_labels holds every namespace of the cluster (the webhook's
    # synced cache), so a namespace missing from it does not exist.
    namespaces_known: bool = False
    # The names of the PkiAuthorities that exist; None: unknown.
    authorities: frozenset[str] | None = None


def _namespace(pki: Mapping[str, Any]) -> str:
    metadata = pki.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) else ""


def _name(pki: Mapping[str, Any]) -> str:
    metadata = pki.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else ""


def _allowed(
    pki: Mapping[str, Any],
    namespace: str,
    policies: Sequence[Mapping[str, Any]],
    labels: Mapping[str, str] | None,
) -> bool:
    context = Context(policies=policies, namespace_labels=labels)
    findings = validate_pki(pki, namespace, context)
    return not any(f.is_error and f.category is Category.NOT_ALLOWED for f in findings)


def _impact(policy: Mapping[str, Any], context: PolicyContext, limit: int) -> tuple[list[str], int]:
    """(``namespace/name`` of each Pki allowed now and not once ``policy`` is applied,
    how many candidates were left unchecked past ``limit``)."""
    name = policy_name(policy)
    before = [p for p in context.policies if isinstance(p, Mapping)]
    old = [p for p in before if policy_name(p) == name]
    after = [p for p in before if policy_name(p) != name] + [policy]
    candidates: list[tuple[str, str, Mapping[str, Any]]] = []
    for pki in context.pkis:
        if not isinstance(pki, Mapping):
            continue
        namespace = _namespace(pki)
        if selecting([*old, policy], namespace, context.namespace_labels.get(namespace)):
            candidates.append((namespace, _name(pki), pki))
    candidates.sort(key=lambda entry: entry[:2])
    broken: list[str] = []
    for namespace, pki_name, pki in candidates[:limit]:
        labels = context.namespace_labels.get(namespace)
        allowed_now = _allowed(pki, namespace, before, labels)
        if allowed_now and not _allowed(pki, namespace, after, labels):
            broken.append(f"{namespace}/{pki_name}")
    return broken, max(0, len(candidates) - limit)


def no_longer_allowed(
    policy: Mapping[str, Any], context: PolicyContext, limit: int = CHECK_LIMIT
) -> list[str]:
    """``namespace/name`` of each Pki allowed now and not once ``policy`` is applied."""
    return _impact(policy, context, limit)[0]


def policy_change_findings(
    policy: Mapping[str, Any], context: PolicyContext, limit: int = CHECK_LIMIT
) -> list[Finding]:
    """A warning for each listed namespace that does not exist, and one naming the Pkis
    ``policy`` would stop allowing (the first few, then a count)."""
    missing = [
        *_missing_namespaces(policy, context),
        *unknown_authorities(policy, context.authorities),
    ]
    broken, unchecked = _impact(policy, context, limit)
    if not broken:
        return missing
    shown = ", ".join(broken[:_SHOWN])
    more = len(broken) - _SHOWN
    names = f"{shown} and {more} more" if more > 0 else shown
    count = f"{len(broken)} existing Pki" + ("s" if len(broken) > 1 else "")
    problem = (
        f"no longer allows {count}, which cannot be issued or renewed until the policy or "
        f"the Pki changes: {names}"
    )
    if unchecked:
        problem += f" ({unchecked} more Pkis not checked)"
    return [*missing, Finding(Severity.WARNING, Category.NOT_ALLOWED, "spec", problem)]


def _missing_namespaces(policy: Mapping[str, Any], context: PolicyContext) -> Iterator[Finding]:
    """A typo in spec.namespaces selects nothing, silently: say so, with the likely name.

    A warning, not an error: a namespace may well be created after its policy.
    """
    if not context.namespaces_known:
        return
    spec = policy.get("spec")
    listed = spec.get("namespaces") if isinstance(spec, Mapping) else None
    if not isinstance(listed, list):
        return
    existing = sorted(context.namespace_labels)
    for index, namespace in enumerate(listed):
        if isinstance(namespace, str) and namespace not in context.namespace_labels:
            yield Finding(
                Severity.WARNING,
                Category.ADVICE,
                f"spec.namespaces[{index}]",
                "does not exist (yet), so the policy selects nothing there"
                + did_you_mean(namespace, existing),
                namespace,
            )


def unknown_authorities(policy: Mapping[str, Any], known: frozenset[str] | None) -> list[Finding]:
    """A warning for each spec.allowedAuthorities entry that names no PkiAuthority, with
    the likely name: a typo there would leave the namespaces' Pkis refused, silently.

    A warning, not an error: an authority may well be created after its policy.
    """
    spec = policy.get("spec")
    listed = spec.get("allowedAuthorities") if isinstance(spec, Mapping) else None
    if known is None or not isinstance(listed, list):
        return []
    existing = sorted(known)
    return [
        Finding(
            Severity.WARNING,
            Category.ADVICE,
            f"spec.allowedAuthorities[{index}]",
            "is not a PkiAuthority (yet), so no Pki can use it" + did_you_mean(name, existing),
            name,
        )
        for index, name in enumerate(listed)
        if isinstance(name, str) and name and name not in known
    ]
