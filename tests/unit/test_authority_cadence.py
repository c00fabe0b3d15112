"""How often the authority controller looks again: busy while anything moves, idle once settled."""

from __future__ import annotations

import pytest

from issuer.controllers.authorities.decisions.phases import Move, Phase
from issuer.controllers.authorities.reporting.summary import Pass, next_pass_in

SETTLED = Pass(phase=Phase.STABLE, trust_current=True)


def wait(passes: dict[str, Pass], *, decides: bool = True) -> float:
    return next_pass_in(passes, decides=decides, busy_seconds=1.0, idle_seconds=10.0)


def test_every_authority_settled_waits_the_idle_time() -> None:
    assert SETTLED.settled
    assert wait({"default": SETTLED, "platform": SETTLED}) == 10.0


@pytest.mark.parametrize(
    "unsettled",
    [
        Pass(phase=Phase.PROPAGATING, trust_current=True),
        Pass(phase=Phase.REISSUING, trust_current=True, pending=3),
        Pass(phase=Phase.RETIRING, trust_current=True),
        Pass(
            phase=Phase.STABLE, trust_current=True, move=next(m for m in Move if m is not Move.NONE)
        ),
        Pass(phase=Phase.STABLE, trust_current=True, pending=1),
        Pass(phase=Phase.STABLE, trust_current=False),  # trust ConfigMaps still being written
        Pass(phase=Phase.STABLE, trust_current=True, problem='CA Secret "x" not found'),
    ],
)
def test_one_authority_not_settled_keeps_the_busy_pace(unsettled: Pass) -> None:
    assert not unsettled.settled
    assert wait({"default": SETTLED, "platform": unsettled}) == 1.0


def test_nothing_seen_yet_or_not_deciding_keeps_the_busy_pace() -> None:
    assert wait({}) == 1.0  # the first pass, or no authority yet
    assert wait({"default": SETTLED}, decides=False) == 1.0  # a sharded replica's reports
