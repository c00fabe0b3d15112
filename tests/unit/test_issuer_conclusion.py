"""From inputs to everything written, as tables: verdict -> key, Secret, status, Event, next look.

Each row starts from the Pki, its Secret and the CA (as the reconcile reads
them), runs the pure decisions in the reconcile's order, and lists what the
reconcile would write: the Secret's fields, the status, the Event's reason and
message, and when the Pki is looked at again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from issuer.controllers.pkis.decisions.conclusion import conclude
from issuer.controllers.pkis.decisions.key_reuse import reusable_key
from issuer.controllers.pkis.decisions.messages import api_refusal_message
from issuer.controllers.pkis.decisions.secret_body import secret_body
from issuer.controllers.pkis.decisions.status import next_status
from issuer.controllers.pkis.decisions.verdict import Step, Trigger, decide_issuance, refused
from issuer.controllers.pkis.inputs.stored import (
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    read_stored,
)
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime import issuance
from issuer.runtime.signers import CAProblem
from shared.certificates import serial_hex
from shared.clock import rfc3339
from shared.findings import Category, Finding, Severity
from tests.unit.builders import (
    NOW,
    issued_secret,
    make_ca,
    make_pki,
    respec,
    serial_of,
    with_status,
)

CA = make_ca()
PKI = make_pki()
SECRET = issued_secret(PKI, CA)
SERIAL = serial_of(SECRET)
NEVER = {"privateKey": {"rotationPolicy": "Never"}}
CA_GONE = CAProblem('CA Secret "pkiwarden-system/pkiwarden-ca" does not exist')


@dataclass(frozen=True)
class Row:
    name: str
    pki: dict[str, Any]
    secret: dict[str, Any] | None
    step: Step
    ca: issuance.SigningCA | CAProblem = CA
    now: datetime = NOW
    event: tuple[Reason, str] | None = None  # reason, a part of the message
    again: bool = False
    ready: str = "True"
    ready_says: str = ""
    findings: tuple[Finding, ...] = ()
    status_has: dict[str, Any] = field(default_factory=dict)
    requeue_in: Callable[[datetime], bool] = lambda at: at > NOW


CA_GONE_RECORDED = with_status(
    PKI,
    failedIssuanceAttempts=5,
    lastFailureTime=rfc3339(NOW - timedelta(minutes=1)),
    nextRetryTime=rfc3339(NOW + timedelta(minutes=10)),
    conditions=[
        {
            "type": "Ready",
            "status": "False",
            "reason": "CAUnavailable",
            "message": f"Pki app1-pki cannot be issued: {CA_GONE.message}",
        }
    ],
)
NO_LONGER_ALLOWED = Finding(
    Severity.ERROR,
    Category.NOT_ALLOWED,
    "spec.serviceName",
    'is not allowed in namespace "app1" (allowed by PkiPolicy "app-teams": app2)',
    "app1",
)
VALID_FACTS = {
    "serialNumber": SERIAL,
    "secretName": "app1-pki-tls",
    "notAfter": rfc3339(NOW + timedelta(days=90)),
    "renewalTime": rfc3339(NOW + timedelta(days=60)),
}

ROWS = [
    Row(
        "new Pki: issued, announced, status filled, next look at renewal",
        PKI,
        None,
        Step.ISSUE,
        event=(Reason.ISSUED, "issued into Secret app1-pki-tls, valid until"),
        status_has={"secretName": "app1-pki-tls", "failedIssuanceAttempts": 0},
        requeue_in=lambda at: at == NOW + timedelta(days=60),
    ),
    Row(
        "spec changed: re-issued, and the message says why",
        respec(PKI, duration="720h"),
        SECRET,
        Step.ISSUE,
        event=(Reason.ISSUED, "re-issued (the spec changed since the certificate was issued)"),
        requeue_in=lambda at: at == NOW + timedelta(days=20),
    ),
    Row(
        "renewal due: renewed",
        with_status(PKI, serialNumber=SERIAL),
        SECRET,
        Step.ISSUE,
        now=NOW + timedelta(days=61),
        event=(Reason.RENEWED, "renewed into Secret app1-pki-tls"),
    ),
    Row(
        "valid and recorded: nothing said, next look at renewal",
        with_status(PKI, serialNumber=SERIAL),
        SECRET,
        Step.WAIT,
        status_has={"serialNumber": SERIAL},
        requeue_in=lambda at: at == NOW + timedelta(days=60),
    ),
    Row(
        "valid but status lost after a crash: announced again, adopting the old Event",
        PKI,
        SECRET,
        Step.WAIT,
        event=(Reason.ISSUED, f"certificate {SERIAL} issued into Secret app1-pki-tls"),
        again=True,
        status_has={"serialNumber": SERIAL},
    ),
    Row(
        "failing, then the cause went away while the certificate stayed valid: told it is over",
        with_status(
            PKI,
            serialNumber=SERIAL,
            conditions=[{"type": "Ready", "status": "False", "reason": "NotAllowed"}],
        ),
        SECRET,
        Step.WAIT,
        event=(Reason.ISSUED, f"certificate {SERIAL} in Secret app1-pki-tls is valid until"),
        status_has={"serialNumber": SERIAL, "failedIssuanceAttempts": 0},
    ),
    Row(
        "policy tightened while the certificate is valid: Ready stays, only renewal is blocked",
        with_status(PKI, serialNumber=SERIAL),
        SECRET,
        Step.FAIL,
        findings=(NO_LONGER_ALLOWED,),
        # The Events (on the Pki and its Pods) say the current certificate still serves.
        event=(
            Reason.NOT_ALLOWED,
            f"certificate {SERIAL} in Secret app1-pki-tls is valid until"
            f" {rfc3339(NOW + timedelta(days=90))}; renewal is blocked:"
            ' spec.serviceName: "app1" in Pki app1-pki is not allowed',
        ),
        ready_says=f"certificate {SERIAL} in Secret app1-pki-tls is valid until"
        f" {rfc3339(NOW + timedelta(days=90))}; renewal is blocked: spec.serviceName",
        status_has={**VALID_FACTS, "failedIssuanceAttempts": 1},
        requeue_in=lambda at: at == NOW + timedelta(seconds=2),
    ),
    Row(
        "policy tightened and the certificate expired: not Ready, the facts stay",
        with_status(PKI, serialNumber=SERIAL),
        SECRET,
        Step.FAIL,
        now=NOW + timedelta(days=91),
        findings=(NO_LONGER_ALLOWED,),
        event=(Reason.NOT_ALLOWED, "is not allowed"),
        ready="False",
        status_has=VALID_FACTS,
    ),
    Row(
        "policy restored while the certificate stayed valid: Ready again in the usual words",
        with_status(
            PKI,
            serialNumber=SERIAL,
            failedIssuanceAttempts=2,
            conditions=[{"type": "Ready", "status": "True", "message": "renewal is blocked: x"}],
        ),
        SECRET,
        Step.WAIT,
        event=(Reason.ISSUED, "is valid until"),
        ready_says="; renewal at ",
        status_has={**VALID_FACTS, "failedIssuanceAttempts": 0},
    ),
    Row(
        "CA gone with no certificate: a Warning, retried after 2 s, no certificate facts",
        PKI,
        None,
        Step.FAIL,
        ca=CA_GONE,
        event=(Reason.CA_UNAVAILABLE, "cannot be issued: CA Secret"),
        ready="False",
        status_has={
            "failedIssuanceAttempts": 1,
            "nextRetryTime": rfc3339(NOW + timedelta(seconds=2)),
        },
        requeue_in=lambda at: at == NOW + timedelta(seconds=2),
    ),
    Row(
        "CA gone at renewal: still Ready on the valid certificate, renewal blocked",
        with_status(PKI, serialNumber=SERIAL, failedIssuanceAttempts=3),
        SECRET,
        Step.FAIL,
        ca=CA_GONE,
        now=NOW + timedelta(days=61),
        event=(
            Reason.CA_UNAVAILABLE,
            f"is valid until {rfc3339(NOW + timedelta(days=90))}; renewal is blocked: Pki app1-pki"
            " cannot be issued",
        ),
        ready_says="renewal is blocked: Pki app1-pki cannot be issued: CA Secret",
        status_has={"serialNumber": SERIAL, "failedIssuanceAttempts": 4},
        requeue_in=lambda at: at == NOW + timedelta(days=61, seconds=16),
    ),
    Row(
        "the same failure again before its retry (say, another policy edited): not an attempt,"
        " nothing said, the announced retry stands",
        CA_GONE_RECORDED,
        None,
        Step.FAIL,
        ca=CA_GONE,
        ready="False",
        status_has={
            "failedIssuanceAttempts": 5,
            "lastFailureTime": rfc3339(NOW - timedelta(minutes=1)),
            "nextRetryTime": rfc3339(NOW + timedelta(minutes=10)),
        },
        requeue_in=lambda at: at == NOW + timedelta(minutes=10),
    ),
    Row(
        "the same failure once its retry is due: an attempt, said again, the backoff grows",
        CA_GONE_RECORDED,
        None,
        Step.FAIL,
        ca=CA_GONE,
        now=NOW + timedelta(minutes=10),
        event=(Reason.CA_UNAVAILABLE, "cannot be issued: CA Secret"),
        ready="False",
        status_has={
            "failedIssuanceAttempts": 6,
            "lastFailureTime": rfc3339(NOW + timedelta(minutes=10)),
        },
        requeue_in=lambda at: at == NOW + timedelta(minutes=10, seconds=64),
    ),
    Row(
        "a different failure before the retry (the cause changed): decided and said at once",
        with_status(
            PKI,
            failedIssuanceAttempts=5,
            lastFailureTime=rfc3339(NOW - timedelta(minutes=1)),
            nextRetryTime=rfc3339(NOW + timedelta(minutes=10)),
            conditions=[
                {"type": "Ready", "status": "False", "reason": "NotAllowed", "message": "x"}
            ],
        ),
        None,
        Step.FAIL,
        ca=CA_GONE,
        event=(Reason.CA_UNAVAILABLE, "cannot be issued: CA Secret"),
        ready="False",
        status_has={"failedIssuanceAttempts": 6, "lastFailureTime": rfc3339(NOW)},
        requeue_in=lambda at: at == NOW + timedelta(seconds=64),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_what_the_reconcile_writes(row: Row) -> None:
    verdict = decide_issuance(row.pki, row.secret, row.ca, list(row.findings), row.now)
    assert verdict.step is row.step
    issued = None
    if verdict.step is Step.ISSUE:
        assert verdict.desired is not None and isinstance(row.ca, issuance.SigningCA)
        key = reusable_key(verdict) or issuance.generate_key(verdict.desired.key)
        issued = issuance.issue_leaf(verdict.desired.request, key, row.ca, row.now)
    conclusion = conclude(row.pki, verdict, issued, row.now)
    said = conclusion.event
    if row.event is None:
        assert said is None
    else:
        assert said is not None
        assert said.reason is row.event[0]
        assert row.event[1] in said.message, said.message
        assert said.again is row.again
    status = next_status(row.pki, conclusion.outcome, row.now)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == row.ready
    assert row.ready_says in ready["message"], ready["message"]
    for name, value in row.status_has.items():
        assert status[name] == value, name
    assert row.requeue_in(conclusion.requeue_at), conclusion.requeue_at


def test_a_refused_write_is_a_failure_worded_for_the_application_owner() -> None:
    message = api_refusal_message(403, "forbidden", "write", "app1-pki-tls", "app1")
    assert message == (
        'the issuer may not write Secret "app1-pki-tls" in this namespace: it is not onboarded'
        " for pkiwarden; a cluster admin runs: kubectl apply -n app1 -f deploy/tenants/"
    )
    assert "quota exceeded" in api_refusal_message(422, "quota exceeded", "write", "s", "app1")
    quota = (
        'secrets "app1-pki-tls" is forbidden: exceeded quota: secrets, requested:'
        " count/secrets=1, used: count/secrets=2, limited: count/secrets=2"
    )
    assert api_refusal_message(403, quota, "create", "app1-pki-tls", "app1") == (
        'a ResourceQuota of this namespace refused to let the issuer create Secret "app1-pki-tls"'
        " (exceeded quota: secrets, requested: count/secrets=1, used: count/secrets=2,"
        " limited: count/secrets=2); delete unused Secrets or ask a cluster administrator"
        " to raise the quota"
    )
    verdict = refused(PKI, message, NOW)
    conclusion = conclude(PKI, verdict, None, NOW)
    assert conclusion.event is not None
    assert conclusion.event.reason is Reason.ISSUANCE_FAILED
    assert conclusion.requeue_at == NOW + timedelta(seconds=2)


@dataclass(frozen=True)
class KeyRow:
    name: str
    pki: dict[str, Any]
    secret: dict[str, Any]
    kept: bool
    now: datetime = NOW


def _altered(secret: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(secret)
    changed["metadata"]["annotations"][SERIAL_ANNOTATION] = "00"
    return changed


NEVER_PKI = make_pki(**NEVER)
NEVER_SECRET = issued_secret(NEVER_PKI, CA)
KEY_ROWS = [
    KeyRow("rotationPolicy Always: a new key", respec(PKI, duration="720h"), SECRET, False),
    KeyRow(
        "rotationPolicy Never, spec changed: the key is kept",
        respec(NEVER_PKI, duration="720h"),
        NEVER_SECRET,
        True,
    ),
    KeyRow(
        "rotationPolicy Never, renewal: the key is kept",
        NEVER_PKI,
        NEVER_SECRET,
        True,
        now=NOW + timedelta(days=61),
    ),
    KeyRow(
        "rotationPolicy Never, Secret altered by someone: a new key",
        NEVER_PKI,
        _altered(NEVER_SECRET),
        False,
    ),
    KeyRow(
        "rotationPolicy Never, algorithm changed: a new key",
        respec(NEVER_PKI, privateKey={"rotationPolicy": "Never", "algorithm": "RSA"}),
        NEVER_SECRET,
        False,
    ),
]


@pytest.mark.parametrize("row", KEY_ROWS, ids=[row.name for row in KEY_ROWS])
def test_key_reuse(row: KeyRow) -> None:
    verdict = decide_issuance(row.pki, row.secret, CA, [], row.now)
    assert verdict.step is Step.ISSUE
    stored = read_stored(row.secret)
    assert not isinstance(stored, str)
    key = reusable_key(verdict)
    if row.kept:
        assert key is not None
        assert issuance.key_to_pem(key) == issuance.key_to_pem(stored.key)
    else:
        assert key is None


def test_the_secret_body_holds_the_issuance_record_and_keeps_foreign_metadata() -> None:
    existing = copy.deepcopy(SECRET)
    existing["metadata"]["labels"]["team"] = "payments"
    existing["metadata"]["annotations"]["note"] = "kept"
    pki = respec(PKI, duration="720h")
    verdict = decide_issuance(pki, existing, CA, [], NOW)
    assert verdict.step is Step.ISSUE and verdict.why is Trigger.SPEC_CHANGED
    assert verdict.desired is not None
    key = issuance.generate_key(verdict.desired.key)
    issued = issuance.issue_leaf(verdict.desired.request, key, CA, NOW)
    body = secret_body(pki, verdict.desired, issued, key, CA, existing=existing)
    metadata = body["metadata"]
    assert body["type"] == "kubernetes.io/tls"
    assert metadata["name"] == "app1-pki-tls" and metadata["namespace"] == "app1"
    assert metadata["resourceVersion"] == existing["metadata"]["resourceVersion"]
    assert metadata["labels"] == {
        "team": "payments",
        "app.kubernetes.io/managed-by": "pkiwarden",
        "pkiwarden.dev/pki": "app1-pki",
    }
    assert metadata["annotations"]["note"] == "kept"
    assert metadata["annotations"][SERIAL_ANNOTATION] == serial_hex(
        issued.certificate.serial_number
    )
    assert metadata["annotations"][SPEC_HASH_ANNOTATION] == verdict.desired.spec_hash
    assert "ownerReferences" not in metadata  # a reinstall must not let the collector take it
    assert sorted(body["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    assert decide_issuance(pki, body, CA, [], NOW).step is Step.WAIT
