"""Every Secret a pod spec uses, and how: the first link of the chain ``why`` walks.

The issuer asks the opposite question (which Pods use *this* Secret) to
decide whom to tell; ``why`` starts from a Pod and needs all of its Secrets,
in the order the spec lists them, with the volume or container that uses
each, so the user can find the line in their manifest. Both read the spec
with the issuer's ``spec_references``, so they cannot disagree on who uses a
Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from issuer.controllers.pkis.reporting.consumers import Consumption, spec_references


class How(StrEnum):
    """The ways a Pod reads a Secret (the JSON ``how`` values)."""

    VOLUME = "volume"
    PROJECTED_VOLUME = "projectedVolume"
    ENV = "env"
    ENV_FROM = "envFrom"


HOW = {
    Consumption.VOLUME: How.VOLUME,
    Consumption.PROJECTED_VOLUME: How.PROJECTED_VOLUME,
    Consumption.ENV: How.ENV,
    Consumption.ENV_FROM: How.ENV_FROM,
}


@dataclass(frozen=True)
class Use:
    """One reference: ``via`` is the volume name (volumes) or the container name (env)."""

    how: How
    via: str


def secret_uses(spec: Mapping[str, Any]) -> dict[str, tuple[Use, ...]]:
    """Secret name -> its distinct uses, both in the order the pod spec lists them."""
    found: dict[str, list[Use]] = {}
    for reference in spec_references(spec):
        use = Use(HOW[reference.way], reference.via)
        uses = found.setdefault(reference.secret, [])
        if use not in uses:
            uses.append(use)
    return {name: tuple(uses) for name, uses in found.items()}
