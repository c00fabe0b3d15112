"""Sharding's pure parts: the namespace's shard, the Lease names, patience and the election rule."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from issuer.runtime.leader import LeaseDecision as Decision
from issuer.runtime.leader import LeaseRecord
from issuer.runtime.leader import lease_decision as decide
from issuer.runtime.shards import (
    LedShards,
    fair_share,
    lease_name,
    patience,
    shard_of,
    to_release,
)


def test_a_namespace_has_one_shard_the_same_in_every_process() -> None:
    # Fixed values: a salted hash (Python's hash()) would differ per process.
    assert [shard_of(f"ns-{n}", 3) for n in range(6)] == [shard_of(f"ns-{n}", 3) for n in range(6)]
    assert (
        shard_of("app1", 3)
        == int.from_bytes(__import__("hashlib").sha256(b"app1").digest()[:8], "big") % 3
    )
    assert shard_of("anything", 1) == 0


def test_namespaces_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of(f"scale-{n:04d}", 3) for n in range(3000))
    assert set(counts) == {0, 1, 2}
    assert all(900 < count < 1100 for count in counts.values())


def test_lease_names_carry_the_count_and_one_shard_keeps_the_old_name() -> None:
    assert lease_name("pkiwarden-issuer", 0, 1) == "pkiwarden-issuer"
    assert lease_name("pkiwarden-issuer", 2, 3) == "pkiwarden-issuer-shard-2-of-3"


def test_led_shards_own_their_namespaces_only() -> None:
    led = LedShards(3)
    namespace = "team-a"
    assert not led.owns(namespace)
    seen: list[frozenset[int]] = []
    led.on_change(seen.append)
    led.gained(shard_of(namespace, 3))
    assert led.owns(namespace)
    led.lost(shard_of(namespace, 3))
    assert not led.owns(namespace)
    assert seen == [frozenset({shard_of(namespace, 3)}), frozenset()]
    assert LedShards(1).owns(namespace)  # unsharded: everything, from the start


LIVE = LeaseRecord("other", 15, "t0", "t0", 0)
FREE = LeaseRecord("", 1, "t0", "t0", 3)


@pytest.mark.parametrize(
    ("record", "observed_for", "led", "expected"),
    [
        (None, 0.0, 0, Decision.ACQUIRE),  # nobody has it; leading none: take it at once
        (None, 0.0, 1, Decision.WAIT),  # leading one already: leave it to replicas starting
        (None, 14.9, 1, Decision.WAIT),
        (None, 15.0, 1, Decision.ACQUIRE),  # nobody else took it within a Lease duration
        (FREE, 29.9, 2, Decision.WAIT),
        (FREE, 30.0, 2, Decision.ACQUIRE),
        (LIVE, 14.9, 0, Decision.WAIT),
        (LIVE, 15.0, 0, Decision.ACQUIRE),  # expired
        (LIVE, 15.0, 1, Decision.WAIT),  # its holder died: a less loaded replica goes first
        (LIVE, 18.9, 1, Decision.WAIT),
        (LIVE, 19.0, 1, Decision.ACQUIRE),  # then any, seconds after the expiry
        (LeaseRecord("me", 15, "t0", "t0", 0), 0.0, 5, Decision.RENEW),  # ours: never patient
    ],
)
def test_a_replica_leading_more_shards_waits_longer_for_a_free_one(
    record: LeaseRecord | None, observed_for: float, led: int, expected: Decision
) -> None:
    free = record is None or not record.holder
    wait = patience(led, free=free, retry_period=2.0, lease_duration=15.0)
    assert decide(record, "me", observed_at=100.0, now=100.0 + observed_for, patience=wait) is (
        expected
    )


@pytest.mark.parametrize(
    ("led", "shards", "members", "expected"),
    [
        ({0, 1, 2}, 3, 1, None),  # alone: everything is its share
        ({0, 1}, 3, 2, None),  # 2 of 3 with two replicas: ceil(3/2) = 2
        ({0, 1}, 3, 3, 1),  # a third replica joined: one goes, never shard 0
        ({1, 2}, 3, 3, 2),
        ({0, 1, 2}, 3, 3, 2),  # one at a time: the next check gives the next
        ({0, 2}, 4, 3, None),  # ceil(4/3) = 2
        ({0}, 3, 3, None),
        ({0, 1, 2, 3}, 4, 2, 3),
        ({1}, 3, 0, None),  # no member seen yet (not even itself): keep what it has
    ],
)
def test_a_replica_over_its_fair_share_gives_one_shard_back(
    led: set[int], shards: int, members: int, expected: int | None
) -> None:
    assert to_release(frozenset(led), shards, members) == expected


def test_the_fair_share_is_the_count_over_the_live_replicas_rounded_up() -> None:
    assert [fair_share(3, members) for members in (1, 2, 3, 4)] == [3, 2, 1, 1]


def test_a_shard_handed_back_waits_for_its_work_in_flight_and_admits_no_more() -> None:
    led = LedShards(3)
    namespace = "team-a"
    shard = shard_of(namespace, 3)
    led.gained(shard)
    entered = threading.Event()
    finish = threading.Event()

    def work() -> None:
        with led.working(namespace):
            entered.set()
            finish.wait(5)

    worker = threading.Thread(target=work)
    worker.start()
    entered.wait(5)
    assert not led.release(shard, timeout=0.05)  # the work is still writing
    assert not led.owns(namespace)  # but nothing new starts there
    finish.set()
    worker.join(5)
    assert led.release(shard, timeout=1.0)
    with led.working(namespace):  # entered after: it finds the shard gone
        assert not led.owns(namespace)
