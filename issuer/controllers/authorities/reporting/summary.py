"""What one pass of the authority controller saw and did: the seam for metrics, logs and tests."""

from __future__ import annotations

from collections.abc import Mapping
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
    blocked: list[str] = field(default_factory=list)  # by name; sharded, each shard's first
    blocked_total: int = 0  # every blocked Pki, over all shards
    active_not_after: datetime | None = None
    trust_current: bool = False
    problem: str = ""

    @property
    def settled(self) -> bool:
        """Stable, nothing moved, nothing pending, trust published, no problem: nothing to watch."""
        return (
            self.phase is Phase.STABLE
            and self.move is Move.NONE
            and self.pending == 0
            and self.trust_current
            and not self.problem
        )


def next_pass_in(
    passes: Mapping[str, Pass], *, decides: bool, busy_seconds: float, idle_seconds: float
) -> float:
    """How long the authority controller may wait for a watch event before looking again.

    A pass reads every Pki and its Secret, which it does not watch: while a
    rotation moves, a CA is missing or trust is being published, it looks
    every ``busy_seconds``. Once every authority is settled, only time can
    change anything unwatched (a CA reaching its renewal time, a leaf
    expiring), so it looks every ``idle_seconds``: at 10,000 Pkis a pass a
    second was an idle issuer's main CPU cost. A replica that does not decide
    (sharded, without shard 0) reports its shards' progress at the busy pace.
    """
    if decides and passes and all(p.settled for p in passes.values()):
        return idle_seconds
    return busy_seconds
