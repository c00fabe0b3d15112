"""One list of the Leases: the live members, dead members' Leases to delete, every shard."""

from __future__ import annotations

from typing import Any

from kubernetes.client import Configuration

from issuer.run import runtime_for
from issuer.runtime.lease_poller import SeenLease, seen_after
from issuer.runtime.members import (
    DELETE_AFTER,
    expired_members,
    live_members,
    member_lease_name,
    member_prefix,
)
from issuer.runtime.metrics import IssuerMetrics
from issuer.runtime.settings import Settings
from issuer.runtime.shard_leases import ShardLease, shard_leases
from issuer.runtime.shard_reports import PROGRESS_ANNOTATION
from shared.kube.client import Kube

DURATION = 6.0
PREFIX = member_prefix("pkiwarden-issuer", 3)
SHARD_NAMES = [f"pkiwarden-issuer-shard-{shard}-of-3" for shard in range(3)]


def listed(name: str, version: str, holder: str = "", **annotations: str) -> dict[str, Any]:
    """A Lease as a list returns it."""
    return {
        "metadata": {"name": name, "resourceVersion": version, "annotations": annotations},
        "spec": {"holderIdentity": holder} if holder else {},
    }


def reads(*lists: tuple[float, list[dict[str, Any]]]) -> dict[str, SeenLease]:
    """What the poller knows after these lists, each at its time."""
    seen: dict[str, SeenLease] = {}
    for now, leases in lists:
        seen = seen_after(seen, leases, now)
    return seen


def member(identity: str) -> str:
    return member_lease_name("pkiwarden-issuer", 3, identity)


def test_a_member_counts_while_its_lease_is_held_and_seen_renewed() -> None:
    seen = reads(
        (90.0, [listed(member("a"), "1", "a"), listed(member("c"), "7", "c")]),
        (100.0, [listed(member("a"), "1", "a"), listed(member("c"), "7", "c")]),
        (
            101.0,
            [
                listed(member("a"), "2", "a"),  # renewed
                listed(member("b"), "5"),  # released: stopped gracefully
                listed(member("c"), "7", "c"),  # never seen to change
                listed(SHARD_NAMES[0], "9", "a"),  # a shard's Lease is not a member
            ],
        ),
    )
    assert live_members(seen, PREFIX, now=102.0, duration=DURATION) == 1
    assert live_members(seen, PREFIX, now=108.0, duration=DURATION) == 0  # not since: gone too
    assert member("host_123_abc").startswith(PREFIX)


def test_a_lease_no_longer_listed_is_forgotten() -> None:
    seen = reads((100.0, [listed(member("a"), "1", "a")]), (101.0, []))
    assert seen == {}


def test_only_a_member_lease_unwritten_for_several_durations_is_deleted_at_the_version_judged() -> (
    None
):
    limit = DELETE_AFTER * DURATION
    leases = [
        listed(member("dead"), "7", "dead"),
        listed(member("released"), "8"),
        listed(member("paused"), "3", "paused"),
        listed(SHARD_NAMES[1], "4", "dead"),  # a shard's Lease is its electors' business
    ]
    seen = reads((100.0, leases))
    # Unwritten since our first read of each version: only a lower bound of its age.
    assert expired_members(seen, PREFIX, 100.0 + limit, DURATION) == {}
    seen = reads(
        (100.0, leases),
        (100.0 + limit / 2, [*leases[:2], listed(member("paused"), "4", "paused"), leases[3]]),
    )
    assert expired_members(seen, PREFIX, 100.0 + limit + 1, DURATION) == {
        member("dead"): "7",
        member("released"): "8",
    }  # the paused replica renewed meanwhile: it stays


def test_each_shards_lease_gives_its_holder_renewal_and_report_and_a_missing_one_nobody() -> None:
    seen = reads(
        (100.0, [listed(SHARD_NAMES[0], "1", "a"), listed(SHARD_NAMES[1], "5", "b")]),
        (
            101.0,
            [
                listed(SHARD_NAMES[0], "2", "a", **{PROGRESS_ANNOTATION: "{}"}),
                listed(SHARD_NAMES[1], "5", "b"),
            ],
        ),
    )
    assert shard_leases(seen, SHARD_NAMES, 102.0, DURATION) == (
        ShardLease(0, "a", True, "{}"),
        ShardLease(1, "b", False, None),  # read, never seen to change: not known renewed
        ShardLease(2, "", False, None),
    )


def test_only_a_sharded_issuer_builds_the_lease_reader() -> None:
    kube = Kube(Configuration())  # never called: nothing is started
    unsharded = runtime_for(kube, Settings(), IssuerMetrics(), None)
    assert (unsharded.leases, unsharded.shard_leases) == (None, None)
    sharded = runtime_for(kube, Settings(shards=3, leader_elect=True), IssuerMetrics(), None)
    assert sharded.leases is not None and sharded.shard_leases is not None
