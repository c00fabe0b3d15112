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
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Pod = Mapping[str, Any]

# In the order a pod spec is read: init containers run before the others.
CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")


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


@dataclass(frozen=True)
class Reference:
    """One reference to a Secret; ``via`` names the volume (volumes) or the container (env)."""

    secret: str
    way: Consumption
    via: str


def spec_references(spec: Mapping[str, Any]) -> Iterator[Reference]:
    """Every reference a pod spec makes to a Secret, in the order the spec lists them.

    Takes the spec rather than the Pod so that workload templates can be read too.
    """
    for volume in _mappings(spec.get("volumes")):
        via = str(volume.get("name") or "")
        if name := _get(volume, "secret").get("secretName"):
            yield Reference(str(name), Consumption.VOLUME, via)
        for source in _mappings(_get(volume, "projected").get("sources")):
            if name := _get(source, "secret").get("name"):
                yield Reference(str(name), Consumption.PROJECTED_VOLUME, via)
    for kind in CONTAINER_KINDS:
        for container in _mappings(spec.get(kind)):
            via = str(container.get("name") or "")
            for env in _mappings(container.get("env")):
                if name := _get(_get(env, "valueFrom"), "secretKeyRef").get("name"):
                    yield Reference(str(name), Consumption.ENV, via)
            for env_from in _mappings(container.get("envFrom")):
                if name := _get(env_from, "secretRef").get("name"):
                    yield Reference(str(name), Consumption.ENV_FROM, via)


def reading_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A pod spec cut down to its references to Secrets, in which
    :func:`spec_references` finds the same references in the same order.

    The issuer watches every Pod of the cluster; whole (containers, probes,
    the service account's projected volume, defaults the API server filled
    in) a Pod took 8 KiB of its memory, 160 MiB for 20,000 Pods; cut down, 1.1.
    """
    volumes: list[dict[str, Any]] = []
    containers: list[dict[str, Any]] = []
    for ref in spec_references(spec):
        if ref.way is Consumption.VOLUME:
            volumes.append({"name": ref.via, "secret": {"secretName": ref.secret}})
        elif ref.way is Consumption.PROJECTED_VOLUME:
            sources = [{"secret": {"name": ref.secret}}]
            volumes.append({"name": ref.via, "projected": {"sources": sources}})
        elif ref.way is Consumption.ENV:
            env = [{"valueFrom": {"secretKeyRef": {"name": ref.secret}}}]
            containers.append({"name": ref.via, "env": env})
        else:
            containers.append({"name": ref.via, "envFrom": [{"secretRef": {"name": ref.secret}}]})
    return {"volumes": volumes, "containers": containers}


def reading_pod(pod: Pod) -> dict[str, Any] | None:
    """``pod`` with :func:`reading_spec` for its spec, for a cache of Pods; None if it reads
    no Secret: nothing would ever be reported on it (half the Pods of ``make bench-scale``,
    1.4 KB each, were kept for nothing). A Pod's volumes and env cannot change; a Pod that
    is given an ephemeral container reading a Secret is kept from that update on."""
    spec = reading_spec(_get(pod, "spec"))
    if not spec["volumes"] and not spec["containers"]:
        return None
    return {**pod, "spec": spec}


def references(pod: Pod) -> Iterator[tuple[str, Consumption]]:
    """Every (Secret name, way) the Pod reads a Secret by, repeats included."""
    for reference in spec_references(_get(pod, "spec")):
        yield reference.secret, reference.way


def consumptions(pod: Pod, secret_name: str) -> set[Consumption]:
    """Every way ``pod`` references the Secret ``secret_name`` (empty if it does not)."""
    return {way for name, way in references(pod) if name == secret_name}


def secrets_read(pod: Pod) -> set[str]:
    """The names of every Secret ``pod`` reads, in any of the ways above."""
    return {name for name, _ in references(pod)}


def consuming_pods(pods: Iterable[Pod], namespace: str, secret_name: str) -> list[Pod]:
    """The Pods of ``namespace`` that reference ``secret_name``, in the order given."""
    return [
        pod
        for pod in pods
        if _get(pod, "metadata").get("namespace") == namespace and consumptions(pod, secret_name)
    ]
