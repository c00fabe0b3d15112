"""Which ClusterTrustBundles an authority's signer should have: one per trust set, new first.

A Pod mounts trust with a ``clusterTrustBundle`` projection by signer name
(``pkiwarden.dev/<authority>``); the kubelet merges every bundle linked to
that signer. So a new trust set is published as a new bundle (named by a
hash of its contents) *before* the old one is deleted: a Pod never sees a
moment with less trust than either set. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.cache import object_key
from shared.kube.client import JSON, Resource
from shared.pod_certificates import signer_name

CLUSTER_TRUST_BUNDLES = Resource("certificates.k8s.io/v1", "clustertrustbundles", namespaced=False)
AUTHORITY_LABEL = "pkiwarden.dev/authority"


class Verb(StrEnum):
    CREATE = "create"
    DELETE = "delete"


@dataclass(frozen=True)
class BundleChange:
    verb: Verb
    name: str


def bundle_name(authority: str, trust_pem: str) -> str:
    """``pkiwarden.dev:<authority>:<hash>``: the API requires the signer name as prefix."""
    digest = hashlib.sha256(trust_pem.encode()).hexdigest()[:16]
    return f"{signer_name(authority).replace('/', ':')}:{digest}"


def bundle_body(authority: str, trust_pem: str) -> JSON:
    return {
        "apiVersion": CLUSTER_TRUST_BUNDLES.group_version,
        "kind": "ClusterTrustBundle",
        "metadata": {
            "name": bundle_name(authority, trust_pem),
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, AUTHORITY_LABEL: authority},
        },
        "spec": {"signerName": signer_name(authority), "trustBundle": trust_pem},
    }


def _held(bundle: Mapping[str, Any]) -> str:
    return str((bundle.get("spec") or {}).get("trustBundle") or "")


def bundle_changes(
    authority: str, trust_pem: str | None, existing: Sequence[Mapping[str, Any]]
) -> list[BundleChange]:
    """Create the bundle for ``trust_pem`` first, then delete every other one of the signer.

    ``existing``: the bundles linked to the authority's signer. No trust set
    (no CA yet) changes nothing: deleting the last trust would break every
    Pod's verification at once, which is worse than a stale bundle.
    """
    if not trust_pem:
        return []
    wanted = bundle_name(authority, trust_pem)
    names = {object_key(b)[1]: b for b in existing}
    changes: list[BundleChange] = []
    current = names.get(wanted)
    if current is not None and _held(current) != trust_pem:  # edited by someone: replace it
        changes.append(BundleChange(Verb.DELETE, wanted))
        current = None
    if current is None:
        changes.append(BundleChange(Verb.CREATE, wanted))
    changes += [BundleChange(Verb.DELETE, name) for name in sorted(names) if name != wanted]
    return changes
