"""Who is told of a failing Pki, and when its Events are written again: tables of cases."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from issuer.controllers.pkis.reporting.consumers import secrets_read
from issuer.controllers.pkis.reporting.failures import FailingPkis
from issuer.controllers.pkis.reporting.pod_warnings import (
    Failure,
    Recorded,
    Told,
    pod_lacks_event,
    recorded_failure,
    refresh_check_interval,
    refresh_due,
    resolution_message,
)
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime.events.correlator import ObjectRef

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
PKI = ObjectRef("pkiwarden.dev/v1alpha1", "Pki", "app2", "app2-pki", "uid-pki")
WEB = ObjectRef("v1", "Pod", "app2", "web-0", "uid-web-0")
MESSAGE = 'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
FAILURE = Failure(PKI, "app2-pki-tls", Reason.NOT_ALLOWED, MESSAGE, T0)


@dataclass(frozen=True)
class TellCase:
    name: str
    failure: Failure
    pod_uid: str
    told: bool


TELL = [
    TellCase("a Pod never told is told", FAILURE, "uid-web-0", True),
    TellCase(
        "a Pod told these words is not told again (a Pod update changes nothing)",
        replace(FAILURE, told={"uid-web-0": Told(WEB, MESSAGE)}),
        "uid-web-0",
        False,
    ),
    TellCase(
        "a Pod told an earlier cause is told the current one",
        replace(FAILURE, told={"uid-web-0": Told(WEB, "CA Secret ... does not exist")}),
        "uid-web-0",
        True,
    ),
    TellCase(
        "another Pod of the same Secret is told",
        replace(FAILURE, told={"uid-web-0": Told(WEB, MESSAGE)}),
        "uid-web-1",
        True,
    ),
]


@pytest.mark.parametrize("case", TELL, ids=[case.name for case in TELL])
def test_who_is_told(case: TellCase) -> None:
    assert pod_lacks_event(case.failure, case.pod_uid) is case.told


@pytest.mark.parametrize(
    ("said_ago", "ttl", "due"),
    [
        (timedelta(0), HOUR, False),
        (timedelta(minutes=29), HOUR, False),
        (timedelta(minutes=30), HOUR, True),  # half the TTL: refresh, whatever the backoff
        (timedelta(hours=5), HOUR, True),
        (timedelta(seconds=9), timedelta(seconds=20), False),
        (timedelta(seconds=10), timedelta(seconds=20), True),
    ],
)
def test_when_a_refresh_is_due(said_ago: timedelta, ttl: timedelta, due: bool) -> None:
    assert refresh_due(FAILURE, T0 + said_ago, ttl) is due


def test_refresh_is_looked_for_often_enough_for_short_and_long_ttls() -> None:
    assert refresh_check_interval(HOUR) == 60.0
    assert refresh_check_interval(timedelta(seconds=20)) == 2.0
    assert refresh_check_interval(timedelta(seconds=3)) == 1.0


def test_the_resolution_names_the_pki_and_what_was_issued() -> None:
    issued = "certificate 0A issued into Secret app2-pki-tls, valid until 2031-01-01T00:00:00Z"
    assert resolution_message("app2-pki", issued) == f"Pki app2-pki is issued again: {issued}"


def test_the_index_finds_failures_by_the_secrets_a_pod_reads() -> None:
    failing = FailingPkis()
    pod = {
        "metadata": {"namespace": "app2", "name": "web-0", "uid": "uid-web-0"},
        "spec": {
            "volumes": [{"name": "tls", "secret": {"secretName": "app2-pki-tls"}}],
            "containers": [
                {"name": "c", "envFrom": [{"secretRef": {"name": "db-password"}}]},
            ],
        },
    }
    assert secrets_read(pod) == {"app2-pki-tls", "db-password"}
    assert failing.reading("app2", secrets_read(pod)) == []
    assert not failing.in_namespace("app2")
    recorded = failing.failed(FAILURE)
    assert failing.in_namespace("app2") and not failing.in_namespace("app1")
    assert failing.reading("app2", secrets_read(pod)) == [recorded]
    assert failing.reading("app1", secrets_read(pod)) == []  # Secrets are namespaced
    assert failing.reading("app2", {"db-password"}) == []


def test_told_pods_are_kept_across_retries_and_handed_over_on_resolution() -> None:
    failing = FailingPkis()
    failure = failing.failed(FAILURE)
    failing.told(failure, WEB)
    again = failing.failed(replace(FAILURE, said_at=T0 + HOUR))  # the next retry
    assert set(again.told) == {"uid-web-0"}
    assert not pod_lacks_event(again, "uid-web-0")
    resolved = failing.resolved("app2", "app2-pki")
    assert resolved is not None and [told.pod for told in resolved.told.values()] == [WEB]
    assert failing.reading("app2", {"app2-pki-tls"}) == []
    assert failing.resolved("app2", "app2-pki") is None


def test_a_new_secret_name_forgets_the_old_one_and_a_deleted_pod_is_not_told_of_the_end() -> None:
    failing = FailingPkis()
    failing.told(failing.failed(FAILURE), WEB)
    failing.pod_gone("app2", "uid-web-0")
    assert failing.all()[0].told == {}
    failing.failed(replace(FAILURE, secret_name="renamed-tls"))
    assert failing.reading("app2", {"app2-pki-tls"}) == []
    assert len(failing.reading("app2", {"renamed-tls"})) == 1


def test_said_moves_the_refresh_clock_only_for_the_same_failure() -> None:
    failing = FailingPkis()
    failure = failing.failed(FAILURE)
    failing.said(failure, T0 + HOUR)
    assert failing.all()[0].said_at == T0 + HOUR
    failing.failed(replace(FAILURE, message="another cause", said_at=T0))
    failing.said(failure, T0 + 2 * HOUR)  # stale: the words changed meanwhile
    assert failing.all()[0].said_at == T0


def _status(attempts: object, ready: dict[str, Any] | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "failedIssuanceAttempts": attempts,
        "lastFailureTime": "2030-01-01T00:00:00Z",
    }
    if ready is not None:
        status["conditions"] = [{"type": "Ready", **ready}]
    return {"metadata": {"name": "app2-pki"}, "status": status}


BLOCKED_MESSAGE = (
    "certificate 1F in Secret app2-pki-tls is valid until 2030-03-01T00:00:00Z;"
    " renewal is blocked: " + MESSAGE
)
RECORDED = [
    (
        "failing: the Warning's reason and words",
        _status(3, {"status": "False", "reason": "NotAllowed", "message": MESSAGE}),
        Recorded(Reason.NOT_ALLOWED, MESSAGE, T0),
    ),
    (
        "renewal blocked on a valid certificate: the words after its facts",
        _status(1, {"status": "True", "reason": "NotAllowed", "message": BLOCKED_MESSAGE}),
        Recorded(Reason.NOT_ALLOWED, MESSAGE, T0),
    ),
    (
        "Ready, never failed",
        _status(0, {"status": "True", "reason": "Issued", "message": "x"}),
        None,
    ),
    ("no status yet", {"metadata": {"name": "app2-pki"}}, None),
    ("attempts without a Ready condition", _status(2, None), None),
    (
        "an unknown reason",
        _status(2, {"status": "False", "reason": "Mystery", "message": "m"}),
        None,
    ),
    ("attempts unreadable", _status("many", {"status": "False", "reason": "NotAllowed"}), None),
]


@pytest.mark.parametrize(
    ("pki", "expected"), [row[1:] for row in RECORDED], ids=[row[0] for row in RECORDED]
)
def test_a_new_issuer_recalls_the_failures_status_records(
    pki: dict[str, Any], expected: Recorded | None
) -> None:
    assert recorded_failure(pki) == expected
