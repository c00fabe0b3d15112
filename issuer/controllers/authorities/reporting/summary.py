"""What one pass of the authority controller saw and did: the seam for metrics, logs and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from issuer.controllers.authorities.decisions.phases import Move, Phase


@dataclass
class Pass:
    """What one pass saw and did; the seam for metrics and tests."""

    phase: Phase = Phase.STABLE
    phase_start: datetime | None = None  # from the CA Secret: an issuer restart keeps it
    move: Move = Move.NONE
    pending: int = 0
    blocked: list[str] = field(default_factory=list)
    active_not_after: datetime | None = None
    trust_current: bool = False
    problem: str = ""
