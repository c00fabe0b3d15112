"""Leader election decisions: given the Lease read, our identity and the time, what to do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from issuer.runtime.leader import (
    LeaderElector,
    LeaseDecision,
    LeaseRecord,
    claim,
    lease_decision,
    must_step_down,
    released,
)
from shared.clock import rfc3339_micro

ME = "issuer-a"
OTHER = "issuer-b"
NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
STAMP = "2030-01-02T03:04:05.678901Z"
EARLIER = "2030-01-02T03:00:00.000000Z"


def lease(holder: str, duration: int = 15, transitions: int = 2) -> LeaseRecord:
    return LeaseRecord(holder, duration, EARLIER, EARLIER, transitions)


@pytest.mark.parametrize(
    ("record", "observed_at", "now", "expected"),
    [
        (None, 0.0, 0.0, LeaseDecision.ACQUIRE),  # no Lease yet
        (lease(""), 100.0, 100.0, LeaseDecision.ACQUIRE),  # released by a graceful shutdown
        (lease(ME), 100.0, 100.0, LeaseDecision.RENEW),
        (lease(ME), 0.0, 1000.0, LeaseDecision.RENEW),  # ours, even if we were slow
        (lease(OTHER), 100.0, 100.0, LeaseDecision.WAIT),  # just seen: live
        (lease(OTHER), 100.0, 114.9, LeaseDecision.WAIT),  # within the duration
        (lease(OTHER), 100.0, 115.0, LeaseDecision.ACQUIRE),  # unchanged for the whole duration
        (lease(OTHER, duration=1), 100.0, 101.0, LeaseDecision.ACQUIRE),  # released with 1 s
        (
            lease(OTHER, duration=60),
            100.0,
            130.0,
            LeaseDecision.WAIT,
        ),  # the holder's duration rules
    ],
    ids=[
        "absent",
        "released",
        "ours",
        "ours after a long pause",
        "other, fresh",
        "other, nearly expired",
        "other, expired",
        "other, released with duration 1",
        "other, long duration",
    ],
)
def test_decide(
    record: LeaseRecord | None, observed_at: float, now: float, expected: LeaseDecision
) -> None:
    assert lease_decision(record, ME, observed_at=observed_at, now=now) is expected


@pytest.mark.parametrize(
    ("record", "decision", "expected"),
    [
        (None, LeaseDecision.ACQUIRE, LeaseRecord(ME, 15, STAMP, STAMP, 0)),
        (lease(OTHER), LeaseDecision.ACQUIRE, LeaseRecord(ME, 15, STAMP, STAMP, 3)),
        (lease(""), LeaseDecision.ACQUIRE, LeaseRecord(ME, 15, STAMP, STAMP, 2)),
        (lease(ME), LeaseDecision.RENEW, LeaseRecord(ME, 15, EARLIER, STAMP, 2)),
    ],
    ids=["create", "take over", "after release", "renew keeps acquireTime"],
)
def test_claim(record: LeaseRecord | None, decision: LeaseDecision, expected: LeaseRecord) -> None:
    assert claim(record, ME, decision, now=NOW, duration_seconds=15) == expected


def test_nothing_is_claimed_while_waiting() -> None:
    with pytest.raises(ValueError):
        claim(lease(OTHER), ME, LeaseDecision.WAIT, now=NOW, duration_seconds=15)


def test_release_empties_the_holder_and_shortens_the_lease() -> None:
    assert released(lease(ME, transitions=4), now=NOW) == LeaseRecord("", 1, STAMP, STAMP, 4)


@pytest.mark.parametrize(
    ("last_renewed", "now", "expected"),
    [(100.0, 102.0, False), (100.0, 110.0, False), (100.0, 110.1, True), (100.0, 200.0, True)],
)
def test_a_leader_steps_down_past_the_renew_deadline(
    last_renewed: float, now: float, expected: bool
) -> None:
    assert must_step_down(last_renewed=last_renewed, now=now, renew_deadline=10.0) is expected


def test_lease_wire_shape_round_trips() -> None:
    record = LeaseRecord(ME, 15, STAMP, STAMP, 1)
    assert LeaseRecord.of({"spec": record.as_spec()}) == record
    assert rfc3339_micro(NOW) == STAMP
    assert LeaseRecord.of({}) == LeaseRecord("", 0, "", "", 0)


def test_timings_must_leave_room_to_step_down_before_takeover() -> None:
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "lease", ME, lease_duration=10, renew_deadline=10)  # type: ignore[arg-type]
