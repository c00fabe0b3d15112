"""Every Secret a pod spec uses, and how: the first link of the chain ``why`` walks.

The issuer asks the opposite question (which Pods use *this* Secret) to
decide whom to tell; ``why`` starts from a Pod and needs all of its Secrets,
in the order the spec lists them, with the volume or container that uses
each, so the user can find the line in their manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")


class How(StrEnum):
    """The ways a Pod reads a Secret (the JSON ``how`` values)."""

    VOLUME = "volume"
    PROJECTED_VOLUME = "projectedVolume"
    ENV = "env"
    ENV_FROM = "envFrom"


@dataclass(frozen=True)
class Use:
    """One reference: ``via`` is the volume name (volumes) or the container name (env)."""

    how: How
    via: str


def _items(value: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _get(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _references(spec: Mapping[str, Any]) -> Iterator[tuple[str, Use]]:
    for volume in _items(spec.get("volumes")):
        via = str(volume.get("name") or "")
        name = _get(volume, "secret").get("secretName")
        if isinstance(name, str):
            yield name, Use(How.VOLUME, via)
        for source in _items(_get(volume, "projected").get("sources")):
            name = _get(source, "secret").get("name")
            if isinstance(name, str):
                yield name, Use(How.PROJECTED_VOLUME, via)
    for kind in CONTAINER_KINDS:
        for container in _items(spec.get(kind)):
            via = str(container.get("name") or "")
            for env in _items(container.get("env")):
                name = _get(_get(env, "valueFrom"), "secretKeyRef").get("name")
                if isinstance(name, str):
                    yield name, Use(How.ENV, via)
            for env_from in _items(container.get("envFrom")):
                name = _get(env_from, "secretRef").get("name")
                if isinstance(name, str):
                    yield name, Use(How.ENV_FROM, via)


def secret_uses(spec: Mapping[str, Any]) -> dict[str, tuple[Use, ...]]:
    """Secret name -> its distinct uses, both in the order the pod spec lists them."""
    found: dict[str, list[Use]] = {}
    for name, use in _references(spec):
        uses = found.setdefault(name, [])
        if use not in uses:
            uses.append(use)
    return {name: tuple(uses) for name, uses in found.items()}
