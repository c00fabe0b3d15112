"""Whose Secret is it: pkiwarden's for this Pki, absent, or someone else's (never touched).

A Secret is ours when it carries our labels for this Pki's name, in the Pki's
namespace. Issued Secrets carry no ownerReference: one to the Pki's uid made
the garbage collector delete every Secret when the same Pkis came back with
new uids (a reinstall, a GitOps re-sync), and re-issue them all. So a Secret
written for an earlier Pki of the same namespace and name is adopted as it
is, with no re-issue if it still matches the spec. An ownerReference left by
an earlier release (to a Pki of that name) is removed, not obeyed. Anything
else with that name (no labels, another Pki's labels, owned by something
else) belongs to someone else and is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL


class Ownership(Enum):
    ABSENT = "absent"
    OURS = "ours"
    FOREIGN = "foreign"


def ownership(secret: Mapping[str, Any] | None, pki: Mapping[str, Any]) -> Ownership:
    if secret is None:
        return Ownership.ABSENT
    metadata = secret.get("metadata") or {}
    labels = metadata.get("labels") or {}
    name = (pki.get("metadata") or {}).get("name")
    owners = [ref for ref in metadata.get("ownerReferences") or [] if isinstance(ref, Mapping)]
    labelled = labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(PKI_LABEL) == name
    if name and labelled and all(_earlier_release(ref, str(name)) for ref in owners):
        return Ownership.OURS
    return Ownership.FOREIGN


def legacy_owner_references(secret: Mapping[str, Any] | None) -> bool:
    """True if an earlier release's ownerReference is still on one of our Secrets.

    Left in place, it makes the garbage collector delete the Secret when the
    Pki comes back with a new uid; the issuer removes it without re-issuing.
    """
    metadata = (secret or {}).get("metadata") or {}
    return bool(metadata.get("ownerReferences"))


def _earlier_release(ref: Mapping[str, Any], name: str) -> bool:
    return ref.get("kind") == "Pki" and ref.get("name") == name


def conflict_message(secret: Mapping[str, Any], secret_name: str, pki_name: str) -> str:
    """Why the Secret is not ours, and the two ways out; names the Pki for readers of a Pod."""
    metadata = secret.get("metadata") or {}
    labels = metadata.get("labels") or {}
    owners = [
        f"{ref.get('kind')} {ref.get('name')}" for ref in metadata.get("ownerReferences") or []
    ]
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(PKI_LABEL):
        whose = f"belongs to Pki {labels.get(PKI_LABEL)}" + (
            f" (owner {', '.join(owners)})" if owners else ""
        )
    elif owners:
        whose = f"is owned by {', '.join(owners)}"
    else:
        whose = "was not created by pkiwarden"
    return (
        f'spec.secretName: "{secret_name}" in Pki {pki_name} is taken:'
        f' Secret "{secret_name}" {whose} and is left'
        " untouched; choose another spec.secretName or delete that Secret"
    )
