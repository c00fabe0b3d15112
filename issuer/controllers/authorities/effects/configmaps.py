"""The trust ConfigMap ``pkiwarden-ca.crt`` in every namespace a PkiPolicy selects.

Like Kubernetes' own ``kube-root-ca.crt``: created where it is missing, put
back when it drifts or is deleted, removed from a namespace no policy selects
any more. What each holds is decided by
:func:`~issuer.controllers.authorities.decisions.namespace_trust.namespace_trust`
and which changes to make by ``trust_changes`` (both pure); a ConfigMap of
that name that pkiwarden did not create is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from issuer.controllers.authorities.decisions.namespace_trust import TRUST_KEY
from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.cache import object_key
from shared.kube.client import CONFIG_MAPS, ApiError, Kube

TRUST_CONFIGMAP = "pkiwarden-ca.crt"
__all__ = ["TRUST_CONFIGMAP", "TRUST_KEY"]


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    verb: Verb
    namespace: str
    resource_version: str = ""
    data: Mapping[str, str] = field(default_factory=dict)  # what it holds after the change


def is_ours(configmap: Mapping[str, Any]) -> bool:
    labels = (configmap.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE)


def trust_changes(
    wanted: Mapping[str, Mapping[str, str]], existing: Iterable[Mapping[str, Any]]
) -> list[Change]:
    """The changes that leave exactly ``wanted``'s namespaces holding its data."""
    found = {object_key(cm)[0]: cm for cm in existing if object_key(cm)[1] == TRUST_CONFIGMAP}
    changes = []
    for namespace in sorted(wanted):
        configmap = found.get(namespace)
        data = dict(wanted[namespace])
        if configmap is None:
            changes.append(Change(Verb.CREATE, namespace, data=data))
        elif is_ours(configmap) and dict(configmap.get("data") or {}) != data:
            version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
            changes.append(Change(Verb.UPDATE, namespace, version, data))
    for namespace, configmap in sorted(found.items()):
        if namespace not in wanted and is_ours(configmap):
            version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
            changes.append(Change(Verb.DELETE, namespace, version))
    return changes


def foreign(existing: Iterable[Mapping[str, Any]], selected: set[str]) -> list[str]:
    """Selected namespaces where a ConfigMap of our name belongs to someone else."""
    return sorted(
        object_key(cm)[0]
        for cm in existing
        if object_key(cm)[1] == TRUST_CONFIGMAP
        and object_key(cm)[0] in selected
        and not is_ours(cm)
    )


def configmap_body(
    namespace: str, data: Mapping[str, str], resource_version: str = ""
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": TRUST_CONFIGMAP,
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        "annotations": {
            "pkiwarden.dev/description": "CA certificates pkiwarden's certificates chain to;"
            " kept current by the pkiwarden issuer"
        },
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": dict(data),
    }


def apply_change(kube: Kube, change: Change) -> bool:
    """Make one change; False if the cache was stale (409/404): decided again next time."""
    try:
        if change.verb is Verb.CREATE:
            kube.create(
                CONFIG_MAPS.path(change.namespace), configmap_body(change.namespace, change.data)
            )
        elif change.verb is Verb.UPDATE:
            body = configmap_body(change.namespace, change.data, change.resource_version)
            kube.replace(CONFIG_MAPS.path(change.namespace, TRUST_CONFIGMAP), body)
        else:
            kube.delete(
                CONFIG_MAPS.path(change.namespace, TRUST_CONFIGMAP),
                body={"preconditions": {"resourceVersion": change.resource_version}},
            )
    except ApiError as error:
        if error.conflict or error.not_found:
            return False
        raise
    return True
