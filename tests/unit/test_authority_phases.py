"""The rotation phase machine, as a table: state + observations -> move -> next state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from issuer.controllers.authorities.decisions.phases import (
    Move,
    Observed,
    Phase,
    Request,
    RotationCause,
    RotationState,
    Transition,
    advance,
    next_transition,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
STABLE = RotationState(phase_start=NOW - 10 * HOUR, handled_request="r1")
PROPAGATING = RotationState(Phase.PROPAGATING, NOW - 2 * HOUR, has_next=True, handled_request="r1")
REISSUING = RotationState(Phase.REISSUING, NOW - HOUR, has_previous=True)
RETIRING = RotationState(Phase.RETIRING, NOW - 2 * HOUR, has_previous=True)


def seen(**changes: object) -> Observed:
    return replace(Observed(now=NOW, trust_propagation=HOUR), **changes)  # type: ignore[arg-type]


CASES = [
    # (name, state, observed, move, trigger)
    ("stable, nothing to do", STABLE, seen(can_generate=True), Move.NONE, None),
    (
        "renewal due, self-managed",
        STABLE,
        seen(renewal_due=True, can_generate=True),
        Move.BEGIN,
        RotationCause.RENEWAL_DUE,
    ),
    (
        "renewal due, supplied CA: no rotation without a next CA",
        STABLE,
        seen(renewal_due=True),
        Move.NONE,
        None,
    ),
    (
        "nextSecretName names a new CA",
        STABLE,
        seen(supplied_next=True),
        Move.BEGIN,
        RotationCause.NEXT_SECRET,
    ),
    (
        "rotate requested",
        STABLE,
        seen(request=Request("r2"), can_generate=True),
        Move.BEGIN,
        RotationCause.REQUESTED,
    ),
    (
        "rotate request already handled",
        STABLE,
        seen(request=Request("r1"), can_generate=True),
        Move.NONE,
        None,
    ),
    (
        "rotate requested with no next CA possible",
        STABLE,
        seen(request=Request("r2")),
        Move.ACKNOWLEDGE,
        None,
    ),
    (
        "emergency from stable",
        STABLE,
        seen(request=Request("r2", True), can_generate=True),
        Move.EMERGENCY,
        RotationCause.EMERGENCY,
    ),
    (
        "emergency with no next CA",
        STABLE,
        seen(request=Request("r2", True)),
        Move.ACKNOWLEDGE,
        None,
    ),
    (
        "propagating, trust not everywhere yet",
        PROPAGATING,
        seen(trust_current=False),
        Move.NONE,
        None,
    ),
    (
        "propagating, trust everywhere: the wait starts",
        PROPAGATING,
        seen(),
        Move.TRUST_SYNCED,
        None,
    ),
    (
        "propagating, waiting",
        replace(PROPAGATING, trust_synced_at=NOW - HOUR / 2),
        seen(),
        Move.NONE,
        None,
    ),
    (
        "propagating, waited long enough",
        replace(PROPAGATING, trust_synced_at=NOW - HOUR),
        seen(),
        Move.PROMOTE,
        None,
    ),
    (
        "propagating, a plain request changes nothing",
        PROPAGATING,
        seen(request=Request("r2"), can_generate=True),
        Move.ACKNOWLEDGE,
        None,
    ),
    (
        "propagating, emergency promotes at once",
        PROPAGATING,
        seen(request=Request("r2", True), trust_current=False),
        Move.EMERGENCY,
        RotationCause.EMERGENCY,
    ),
    ("reissuing, Pkis pending", REISSUING, seen(pending=3), Move.NONE, None),
    (
        "reissuing, only blocked Pkis left keep previous",
        REISSUING,
        seen(pending=1, blocked=1),
        Move.NONE,
        None,
    ),
    ("reissuing, done", REISSUING, seen(), Move.RETIRE, None),
    (
        "reissuing after an emergency, done",
        replace(REISSUING, previous_trusted=False),
        seen(),
        Move.FORGET,
        None,
    ),
    (
        "reissuing, emergency drops previous",
        REISSUING,
        seen(request=Request("r2", True), pending=5),
        Move.EMERGENCY,
        RotationCause.EMERGENCY,
    ),
    ("retiring, waiting", replace(RETIRING, phase_start=NOW - HOUR / 2), seen(), Move.NONE, None),
    ("retiring, waited", RETIRING, seen(), Move.FORGET, None),
    ("retiring, something still depends on previous", RETIRING, seen(pending=1), Move.NONE, None),
    (
        "retiring, emergency forgets at once",
        replace(RETIRING, phase_start=NOW),
        seen(request=Request("r2", True)),
        Move.FORGET,
        RotationCause.EMERGENCY,
    ),
    (
        "emergency asked while the CA Secret was missing: not applied to the restored CA",
        STABLE,
        seen(request=Request("r2", True, NOW - HOUR), ca_since=NOW - HOUR / 2, can_generate=True),
        Move.ACKNOWLEDGE,
        None,
    ),
    (
        "rotation asked before the CA Secret was created: not applied",
        STABLE,
        seen(request=Request("r2", False, NOW - HOUR), ca_since=NOW - HOUR / 2, can_generate=True),
        Move.ACKNOWLEDGE,
        None,
    ),
    (
        "emergency asked in the second the CA Secret was created: applied",
        STABLE,
        seen(
            request=Request("r2", True, NOW + timedelta(microseconds=250)),
            ca_since=NOW,
            can_generate=True,
        ),
        Move.EMERGENCY,
        RotationCause.EMERGENCY,
    ),
    (
        "emergency asked about the CA there is: applied",
        STABLE,
        seen(request=Request("r2", True, NOW - HOUR), ca_since=NOW - 2 * HOUR, can_generate=True),
        Move.EMERGENCY,
        RotationCause.EMERGENCY,
    ),
]


@pytest.mark.parametrize(
    ("state", "observed", "move", "trigger"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    state: RotationState, observed: Observed, move: Move, trigger: RotationCause | None
) -> None:
    step = next_transition(state, observed)
    assert (step.move, step.cause) == (move, trigger)
    assert step.message or move is Move.NONE


def test_waits_say_when_to_look_again() -> None:
    waiting = replace(PROPAGATING, trust_synced_at=NOW - HOUR / 4)
    assert next_transition(waiting, seen()).recheck_at == NOW + HOUR * 3 / 4
    assert next_transition(PROPAGATING, seen()).recheck_at == NOW + HOUR


def test_a_whole_rotation_walks_every_phase_and_back() -> None:
    state = STABLE
    phases = [state.phase]
    clock = NOW
    pending = 0
    for _ in range(10):
        observed = seen(now=clock, request=Request("r2"), can_generate=True, pending=pending)
        step = next_transition(state, observed)
        state = advance(state, step, clock)
        if phases[-1] != state.phase:
            phases.append(state.phase)
        clock += HOUR
    assert phases == [
        Phase.STABLE,
        Phase.PROPAGATING,
        Phase.REISSUING,
        Phase.RETIRING,
        Phase.STABLE,
    ]
    assert state == RotationState(phase_start=state.phase_start, handled_request="r2")


@pytest.mark.parametrize(
    ("state", "move", "expected"),
    [
        (STABLE, Move.BEGIN, {"phase": Phase.PROPAGATING, "has_next": True, "phase_start": NOW}),
        (
            replace(PROPAGATING, trust_synced_at=NOW - HOUR),
            Move.PROMOTE,
            {"phase": Phase.REISSUING, "has_next": False, "has_previous": True},
        ),
        (PROPAGATING, Move.TRUST_SYNCED, {"trust_synced_at": NOW, "phase": Phase.PROPAGATING}),
        (
            STABLE,
            Move.EMERGENCY,
            {"phase": Phase.REISSUING, "has_previous": True, "previous_trusted": False},
        ),
        (REISSUING, Move.EMERGENCY, {"phase_start": NOW - HOUR, "previous_trusted": False}),
        (REISSUING, Move.RETIRE, {"phase": Phase.RETIRING, "phase_start": NOW}),
        (
            replace(RETIRING, previous_trusted=False),
            Move.FORGET,
            {"phase": Phase.STABLE, "has_previous": False, "previous_trusted": True},
        ),
    ],
)
def test_advance(state: RotationState, move: Move, expected: dict[str, object]) -> None:
    after = advance(state, Transition(move, "m", request="r9"), NOW)
    assert {name: getattr(after, name) for name in expected} == expected


def test_a_handled_request_is_recorded_by_any_move_that_handles_it() -> None:
    step = next_transition(PROPAGATING, seen(request=Request("r2")))
    assert advance(PROPAGATING, step, NOW).handled_request == "r2"
    assert advance(PROPAGATING, step, NOW).phase is Phase.PROPAGATING


def test_a_request_for_a_ca_that_was_not_there_says_how_to_ask_again() -> None:
    observed = seen(request=Request("r2", True, NOW - HOUR), ca_since=NOW, can_generate=True)
    step = next_transition(STABLE, observed)
    assert "before the CA Secret was created" in step.message
    assert "run `pkiwarden ca rotate` again" in step.message
    assert advance(STABLE, step, NOW).handled_request == "r2"


UNKNOWN = "shard 2 of 3: no issuer replica holds its Lease"


@pytest.mark.parametrize(
    ("state", "observed", "message"),
    [
        # Every shard that reported is done, one did not report: the old CA stays.
        (REISSUING, seen(pending=0, unknown=UNKNOWN), f"waiting: {UNKNOWN}"),
        (
            REISSUING,
            seen(pending=4, unknown=UNKNOWN),
            f"waiting: {UNKNOWN}; 4 Pkis still to re-issue in the rest",
        ),
        (
            replace(REISSUING, previous_trusted=False),
            seen(pending=0, unknown=UNKNOWN),
            f"waiting: {UNKNOWN}",
        ),
        (RETIRING, seen(pending=0, unknown=UNKNOWN), f"waiting: {UNKNOWN}"),
        (
            replace(PROPAGATING, trust_synced_at=NOW - 2 * HOUR),
            seen(trust_current=False, unknown=UNKNOWN),
            f"waiting for the trust set to reach every namespace and Secret ({UNKNOWN})",
        ),
    ],
)
def test_a_shard_not_heard_from_holds_the_rotation_where_it_stands(
    state: RotationState, observed: Observed, message: str
) -> None:
    step = next_transition(state, observed)
    assert step == Transition(Move.NONE, message)
    assert advance(state, step, NOW) == state


def test_every_shard_heard_from_and_done_moves_the_rotation_on() -> None:
    assert next_transition(REISSUING, seen(pending=0)).move is Move.RETIRE
    assert next_transition(RETIRING, seen(pending=0)).move is Move.FORGET
