"""Whose Secret is it: pkiwarden's for this Pki, absent, or someone else's (never touched).

A Secret is ours only if it carries our labels *and* an ownerReference to this
very Pki (by uid). Anything else with that name belongs to someone else and is
never modified.
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
    pki_metadata = pki.get("metadata") or {}
    uid = pki_metadata.get("uid")
    owned = any(
        ref.get("uid") == uid and ref.get("kind") == "Pki"
        for ref in metadata.get("ownerReferences") or []
    )
    labelled = labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(
        PKI_LABEL
    ) == pki_metadata.get("name")
    return Ownership.OURS if owned and labelled and uid else Ownership.FOREIGN


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
