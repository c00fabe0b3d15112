"""Which Pods consume a Secret: the people to tell when the Secret cannot be issued.

The application owner looks at their Pod (``kubectl describe pod``), not at
the Pki, so a failure must be reported on every Pod that would read the
Secret. A Pod can reference a Secret in five ways; any of them in any
container kind (init and ephemeral containers included) makes it a consumer.
Secrets are namespaced and Pods can only reference Secrets of their own
namespace, so Pods elsewhere never consume it, whatever the name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

Pod = Mapping[str, Any]

CONTAINER_KINDS = ("containers", "initContainers", "ephemeralContainers")


class Consumption(StrEnum):
    """A way a Pod reads a Secret, with the field path a person would look for."""

    VOLUME = "spec.volumes[].secret"
    PROJECTED_VOLUME = "spec.volumes[].projected.sources[].secret"
    ENV = "env[].valueFrom.secretKeyRef"
    ENV_FROM = "envFrom[].secretRef"


def _mappings(value: object) -> Iterator[Mapping[str, Any]]:
    """The dict items of a list that may be missing or malformed (Pods are not validated here)."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _get(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def consumptions(pod: Pod, secret_name: str) -> set[Consumption]:
    """Every way ``pod`` references the Secret ``secret_name`` (empty if it does not)."""
    spec = _get(pod, "spec")
    found: set[Consumption] = set()
    for volume in _mappings(spec.get("volumes")):
        if _get(volume, "secret").get("secretName") == secret_name:
            found.add(Consumption.VOLUME)
        for source in _mappings(_get(volume, "projected").get("sources")):
            if _get(source, "secret").get("name") == secret_name:
                found.add(Consumption.PROJECTED_VOLUME)
    for kind in CONTAINER_KINDS:
        for container in _mappings(spec.get(kind)):
            for env in _mappings(container.get("env")):
                ref = _get(_get(env, "valueFrom"), "secretKeyRef")
                if ref.get("name") == secret_name:
                    found.add(Consumption.ENV)
            for env_from in _mappings(container.get("envFrom")):
                if _get(env_from, "secretRef").get("name") == secret_name:
                    found.add(Consumption.ENV_FROM)
    return found


def consuming_pods(pods: Iterable[Pod], namespace: str, secret_name: str) -> list[Pod]:
    """The Pods of ``namespace`` that reference ``secret_name``, in the order given."""
    return [
        pod
        for pod in pods
        if _get(pod, "metadata").get("namespace") == namespace and consumptions(pod, secret_name)
    ]
