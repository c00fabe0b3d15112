"""The trust ConfigMap ``pkiwarden-ca.crt`` in every namespace a PkiPolicy selects.

Like Kubernetes' own ``kube-root-ca.crt``: created where it is missing, put
back when it drifts or is deleted, removed from a namespace no policy selects
any more. Which changes to make is decided by ``trust_changes`` (pure); a
ConfigMap of that name that pkiwarden did not create is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.cache import object_key
from shared.kube.client import CONFIG_MAPS, ApiError, Kube
from shared.policy import selecting

TRUST_CONFIGMAP = "pkiwarden-ca.crt"
TRUST_KEY = "ca.crt"


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    verb: Verb
    namespace: str
    resource_version: str = ""


def is_ours(configmap: Mapping[str, Any]) -> bool:
    labels = (configmap.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE)


def selected_namespaces(
    policies: Sequence[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]]
) -> set[str]:
    """Existing namespaces, not being deleted, that at least one PkiPolicy selects."""
    chosen = set()
    for namespace in namespaces:
        metadata = namespace.get("metadata") or {}
        name = metadata.get("name")
        if not isinstance(name, str) or metadata.get("deletionTimestamp"):
            continue
        if selecting(policies, name, metadata.get("labels")):
            chosen.add(name)
    return chosen


def trust_changes(
    selected: set[str], existing: Iterable[Mapping[str, Any]], bundle: str
) -> list[Change]:
    """What to create, repair or remove so that exactly ``selected`` hold ``bundle``."""
    found = {object_key(cm)[0]: cm for cm in existing if object_key(cm)[1] == TRUST_CONFIGMAP}
    changes = []
    for namespace in sorted(selected):
        configmap = found.get(namespace)
        if configmap is None:
            changes.append(Change(Verb.CREATE, namespace))
        elif is_ours(configmap) and (configmap.get("data") or {}).get(TRUST_KEY) != bundle:
            version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
            changes.append(Change(Verb.UPDATE, namespace, version))
    for namespace, configmap in sorted(found.items()):
        if namespace not in selected and is_ours(configmap):
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


def configmap_body(namespace: str, bundle: str, resource_version: str = "") -> dict[str, Any]:
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
        "data": {TRUST_KEY: bundle},
    }


def apply_change(kube: Kube, change: Change, bundle: str) -> bool:
    """Make one change; False if the cache was stale (409/404): decided again next time."""
    try:
        if change.verb is Verb.CREATE:
            kube.create(
                CONFIG_MAPS.path(change.namespace), configmap_body(change.namespace, bundle)
            )
        elif change.verb is Verb.UPDATE:
            body = configmap_body(change.namespace, bundle, change.resource_version)
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
