"""Whose Secret is it: pkiwarden's for this Pki, absent, or someone else's (never touched).

A Secret is ours only if it carries our labels *and* an ownerReference to this
very Pki (by uid). One labelled for this Pki's name and owned only by an
earlier Pki of that name (deleted and created again, the Secret orphaned or not
yet collected) is pkiwarden's own leftover, and is adopted. Anything else with
that name belongs to someone else and is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL


class Ownership(Enum):
    ABSENT = "absent"
    OURS = "ours"
    LEFTOVER = "leftover"  # written by pkiwarden for an earlier Pki of the same name
    FOREIGN = "foreign"


def ownership(secret: Mapping[str, Any] | None, pki: Mapping[str, Any]) -> Ownership:
    if secret is None:
        return Ownership.ABSENT
    metadata = secret.get("metadata") or {}
    labels = metadata.get("labels") or {}
    pki_metadata = pki.get("metadata") or {}
    uid = pki_metadata.get("uid")
    name = pki_metadata.get("name")
    owners = [ref for ref in metadata.get("ownerReferences") or [] if isinstance(ref, Mapping)]
    labelled = labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(PKI_LABEL) == name
    if not (labelled and uid and owners):
        return Ownership.FOREIGN
    if any(ref.get("uid") == uid and ref.get("kind") == "Pki" for ref in owners):
        return Ownership.OURS
    if all(ref.get("kind") == "Pki" and ref.get("name") == name for ref in owners):
        return Ownership.LEFTOVER
    return Ownership.FOREIGN


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
