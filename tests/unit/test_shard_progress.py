"""A rotation's progress over every shard: each shard's report, the Leases, and their sum."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from issuer.controllers.authorities.decisions.authority_status import Standing, authority_status
from issuer.controllers.authorities.decisions.phases import RotationState
from issuer.controllers.authorities.decisions.shard_progress import (
    BLOCKED_REPORTED,
    Counted,
    LeaseView,
    Progress,
    Tally,
    decode,
    encode,
    shard_reports,
    tally,
    trust_digest,
)
from issuer.controllers.authorities.reporting.metrics import AuthorityMetrics
from issuer.controllers.authorities.reporting.summary import Pass
from issuer.runtime.lease_sightings import Sighting, renewed, sighted
from issuer.runtime.metrics import IssuerMetrics
from issuer.runtime.shard_reports import PROGRESS_ANNOTATION, ShardReports

CA = "aa01"
TRUST = trust_digest("bundle-now")
SHARD_OF = {"ns-a": 0, "ns-b": 1, "ns-c": 2}.__getitem__


def test_each_open_shard_reports_its_own_pkis_and_a_shard_without_any_reports_zero() -> None:
    counted = [
        Counted("ns-a", pending=True),
        Counted("ns-a", pending=True, blocked_pki="ns-a/broken"),
        Counted("ns-a", stale=True),
        Counted("ns-b"),
        Counted("ns-c", pending=True),  # shard 2 is not open here: left out
    ]
    assert shard_reports(counted, {0, 1}, SHARD_OF, ca=CA, trust=TRUST) == {
        0: Progress(CA, TRUST, pending=2, stale=1, blocked=1, blocked_pkis=("ns-a/broken",)),
        1: Progress(CA, TRUST),
    }
    assert shard_reports([], {2}, SHARD_OF, ca=CA, trust=TRUST) == {2: Progress(CA, TRUST)}


def test_a_shard_names_its_first_blocked_pkis_and_counts_them_all() -> None:
    counted = [Counted("ns-a", pending=True, blocked_pki=f"ns-a/p{n:02d}") for n in range(30)]
    (progress,) = shard_reports(counted, {0}, SHARD_OF, ca=CA, trust=TRUST).values()
    assert progress.blocked == 30
    assert progress.blocked_pkis == tuple(f"ns-a/p{n:02d}" for n in range(BLOCKED_REPORTED))


def test_past_20_blocked_per_shard_the_metric_counts_them_all_and_the_status_names_20() -> None:
    blocked = {
        shard: [Counted(ns, pending=True, blocked_pki=f"{ns}/p{n:02d}") for n in range(25)]
        for shard, ns in ((1, "ns-b"), (2, "ns-c"))
    }
    leases = [lease(0, DONE)] + [
        lease(
            shard, {"default": shard_reports(counted, {shard}, SHARD_OF, ca=CA, trust=TRUST)[shard]}
        )
        for shard, counted in blocked.items()
    ]
    counted = tally("default", CA, TRUST, leases)
    assert (counted.pending, counted.blocked) == (50, 50)
    metrics = IssuerMetrics()
    AuthorityMetrics(metrics.registry).observe(
        "default",
        Pass(blocked=list(counted.blocked_pkis), blocked_total=counted.blocked),
    )
    exposed = {
        (s.name, s.labels.get("authority")): s.value
        for family in text_string_to_metric_families(metrics.exposition()[0].decode())
        for s in family.samples
    }
    assert exposed[("pkiwarden_ca_blocked_reissue", "default")] == 50
    standing = Standing(RotationState(), (), "", "", counted.pending, counted.blocked_pkis, 1)
    status = authority_status({}, standing, datetime(2026, 1, 1, tzinfo=UTC))
    # The first 20 over every shard: shard 1's names sort before shard 2's.
    assert status["blockedPkis"] == [f"ns-b/p{n:02d}" for n in range(20)]


def test_a_report_survives_its_annotation_and_a_foreign_one_reads_as_none() -> None:
    reports = {
        "default": Progress(CA, TRUST, pending=3, stale=1, blocked=1, blocked_pkis=("a/b",)),
        "partners": Progress("bb02", TRUST),
    }
    assert decode(encode(reports)) == reports
    for text in (None, "", "not json", "[1, 2]", '{"default": {"pending": 1}}', '{"x": 1}'):
        assert decode(text) is None, text


def lease(shard: int, report: dict[str, Progress] | None, **changes: object) -> LeaseView:
    view = LeaseView(shard, f"replica-{shard}", True, None if report is None else encode(report))
    return replace(view, **changes)  # type: ignore[arg-type]


DONE = {"default": Progress(CA, TRUST)}


def test_every_shard_reporting_sums_to_the_whole_rotation() -> None:
    leases = [
        lease(0, DONE),
        lease(1, {"default": Progress(CA, TRUST, pending=5, blocked=1, blocked_pkis=("b/x",))}),
        lease(2, {"default": Progress(CA, TRUST, pending=2)}),
    ]
    assert tally("default", CA, TRUST, leases) == Tally(7, 1, ("b/x",), trust_current=True)
    assert tally("default", CA, TRUST, [lease(0, DONE), lease(1, DONE)]) == Tally(0, 0, (), True)


@pytest.mark.parametrize(
    ("shard_one", "why"),
    [
        (lease(1, DONE, holder=""), "shard 1 of 3: no issuer replica holds its Lease"),
        (
            lease(1, DONE, renewed=False),
            "shard 1 of 3: its Lease is not being renewed (holder replica-1)",
        ),
        (lease(1, None), "shard 1 of 3: its replica has not reported on this authority yet"),
        (
            lease(1, {"partners": Progress(CA, TRUST)}),
            "shard 1 of 3: its replica has not reported on this authority yet",
        ),
        (
            lease(1, {"default": Progress("old", TRUST)}),
            "shard 1 of 3: its replica has not counted against the new signing CA yet",
        ),
    ],
)
def test_a_shard_not_known_is_named_and_never_counts_as_done(
    shard_one: LeaseView, why: str
) -> None:
    counted = tally("default", CA, TRUST, [lease(0, DONE), shard_one, lease(2, DONE)])
    assert counted.unknown == (why,)
    assert not counted.trust_current


def test_trust_is_current_only_where_every_shards_secrets_hold_this_trust_set() -> None:
    old_trust = {"default": Progress(CA, trust_digest("bundle-before"))}
    not_yet = {"default": Progress(CA, TRUST, stale=4)}
    assert not tally("default", CA, TRUST, [lease(0, DONE), lease(1, old_trust)]).trust_current
    assert not tally("default", CA, TRUST, [lease(0, DONE), lease(1, not_yet)]).trust_current
    assert tally("default", CA, TRUST, [lease(0, DONE), lease(1, DONE)]).trust_current


def test_a_lease_counts_as_renewed_only_once_seen_to_change_within_its_duration() -> None:
    first = sighted(None, "10", now=100.0)
    assert not renewed(first, 100.0, 6.0)  # read once: it may have been written long ago
    same = sighted(first, "10", now=101.0)
    assert same == Sighting("10", 101.0, None, 100.0)
    changed = sighted(same, "11", now=102.0)  # written after our read at 101
    assert changed == Sighting("11", 102.0, 101.0, 102.0)
    assert renewed(changed, 107.0, 6.0)
    assert not renewed(sighted(changed, "11", now=107.5), 107.5, 6.0)  # not since: stale
    assert not renewed(None, 100.0, 6.0)


def test_a_shard_is_reported_only_between_its_caches_filling_and_its_loss() -> None:
    reports = ShardReports()
    reports.publish(1, "early")  # gained, caches not refilled: nothing to say yet
    assert reports.annotations(1) == {}
    reports.open(1)
    assert reports.opened() == frozenset({1})
    reports.publish(1, "counted")
    assert reports.annotations(1) == {PROGRESS_ANNOTATION: "counted"}
    reports.close(1)
    assert reports.annotations(1) == {}
    assert reports.opened() == frozenset()
