"""The issuance verdict as a table: Pki, Secret, CA, findings, time -> step, trigger, reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from issuer.controllers.pkis.decisions.verdict import Step, Trigger, decide_issuance, retry_delay
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime import issuance
from issuer.runtime.issued_facts import keep_facts
from issuer.runtime.signers import CAProblem
from shared.findings import Category, Finding, Severity
from shared.validation.pki import Context, validate_pki
from tests.unit.builders import (
    NAMESPACE,
    NOW,
    data_of,
    issued_secret,
    make_ca,
    make_pki,
    respec,
    serial_of,
    with_data,
    with_status,
)

CA = make_ca()
OTHER_CA = make_ca("another CA")
PKI = make_pki()
SECRET = issued_secret(PKI, CA)
DNS = ["app1.app1.svc", "app1.app1.svc.cluster.local"]

NOT_ALLOWED = Finding(
    Severity.ERROR,
    Category.NOT_ALLOWED,
    "spec.serviceName",
    'is not allowed in namespace "app1" (allowed by PkiPolicy "app-teams": app2)',
    "app1",
)
INVALID = Finding(
    Severity.ERROR, Category.INVALID_SPEC, "spec.dnsNames[0]", "is not a DNS name", "a_b"
)
TAKEN = Finding(
    Severity.ERROR,
    Category.SECRET_CONFLICT,
    "spec.secretName",
    "is already the Secret of Pki x",
    "s",
)
ADVICE = Finding(Severity.WARNING, Category.ADVICE, "spec.duration", "is the default", None)


def _labels(
    secret: dict[str, Any], labels: dict[str, str] | None, owners: list[Any] | None
) -> dict[str, Any]:
    changed = copy.deepcopy(secret)
    changed["metadata"]["labels"] = labels or {}
    changed["metadata"]["ownerReferences"] = owners or []
    return changed


def _other_key_pem() -> bytes:
    return issuance.key_to_pem(
        issuance.generate_key(issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256))
    )


def _tampered_cert() -> dict[str, Any]:
    """tls.crt swapped for another valid certificate (with its key): not what we issued."""
    other = issued_secret(PKI, CA)
    return with_data(SECRET, tls_crt=data_of(other, "tls.crt"), tls_key=data_of(other, "tls.key"))


def _cert_for_other_names() -> dict[str, Any]:
    """Annotations claim the current spec, but the certificate names other hosts."""
    secret = issued_secret(PKI, CA, issued_for=make_pki(dnsNames=["other.app1.svc"]))
    secret["metadata"]["annotations"] = copy.deepcopy(SECRET["metadata"]["annotations"])
    secret["metadata"]["annotations"]["pkiwarden.dev/serial-number"] = serial_of(secret)
    return secret


def _rsa_key_for_ecdsa_spec() -> dict[str, Any]:
    rsa_pki = make_pki(privateKey={"algorithm": "RSA", "size": 2048})
    secret = issued_secret(PKI, CA, issued_for=rsa_pki)
    secret["metadata"]["annotations"]["pkiwarden.dev/spec-hash"] = SECRET["metadata"][
        "annotations"
    ]["pkiwarden.dev/spec-hash"]
    return secret


@dataclass(frozen=True)
class Case:
    name: str
    pki: dict[str, Any]
    secret: dict[str, Any] | Callable[[], dict[str, Any] | None] | None
    step: Step
    why: Trigger | None = None
    reason: Reason | None = None
    ca: issuance.SigningCA | CAProblem = CA
    findings: tuple[Finding, ...] = ()
    now_offset: timedelta = timedelta(0)
    message_has: str = ""


CA_GONE = CAProblem('CA Secret "pkiwarden-system/pkiwarden-ca" does not exist')
OWNER = {"apiVersion": "pkiwarden.dev/v1alpha1", "kind": "Pki", "name": "app1-pki", "uid": "uid-1"}
OURS = {"app.kubernetes.io/managed-by": "pkiwarden", "pkiwarden.dev/pki": "app1-pki"}

CASES = [
    # -- triggers ---------------------------------------------------------------------
    Case("new Pki", PKI, None, Step.ISSUE, Trigger.NEW),
    Case(
        "Secret deleted",
        with_status(PKI, serialNumber="AB"),
        None,
        Step.ISSUE,
        Trigger.SECRET_MISSING,
    ),
    Case("up to date", PKI, SECRET, Step.WAIT),
    Case("warnings do not stop issuance", PKI, None, Step.ISSUE, Trigger.NEW, findings=(ADVICE,)),
    Case(
        "spec changed",
        respec(PKI, dnsNames=["app1.app1.svc"]),
        SECRET,
        Step.ISSUE,
        Trigger.SPEC_CHANGED,
    ),
    Case("tls.crt replaced", PKI, _tampered_cert, Step.ISSUE, Trigger.SECRET_ALTERED),
    Case(
        "tls.crt garbage",
        PKI,
        lambda: with_data(SECRET, tls_crt=b"not a certificate"),
        Step.ISSUE,
        Trigger.SECRET_ALTERED,
    ),
    Case(
        "tls.key removed",
        PKI,
        lambda: {**SECRET, "data": {k: v for k, v in SECRET["data"].items() if k != "tls.key"}},
        Step.ISSUE,
        Trigger.SECRET_ALTERED,
    ),
    Case(
        "tls.key swapped",
        PKI,
        lambda: with_data(SECRET, tls_key=_other_key_pem()),
        Step.ISSUE,
        Trigger.KEY_MISMATCH,
    ),
    Case(
        "certificate names other hosts",
        PKI,
        _cert_for_other_names,
        Step.ISSUE,
        Trigger.CERTIFICATE_MISMATCH,
    ),
    Case(
        "key algorithm differs",
        PKI,
        _rsa_key_for_ecdsa_spec,
        Step.ISSUE,
        Trigger.CERTIFICATE_MISMATCH,
    ),
    Case("CA changed", PKI, SECRET, Step.ISSUE, Trigger.CA_CHANGED, ca=OTHER_CA),
    Case(
        "renewal due (default renewBefore: a third of 2160h)",
        PKI,
        SECRET,
        Step.ISSUE,
        Trigger.RENEWAL_DUE,
        now_offset=timedelta(hours=1440),
    ),
    Case("not yet due", PKI, SECRET, Step.WAIT, now_offset=timedelta(hours=1439)),
    Case("expired", PKI, SECRET, Step.ISSUE, Trigger.RENEWAL_DUE, now_offset=timedelta(days=400)),
    # -- failures ---------------------------------------------------------------------
    Case(
        "policy no longer allows it",
        PKI,
        SECRET,
        Step.FAIL,
        reason=Reason.NOT_ALLOWED,
        findings=(NOT_ALLOWED, ADVICE),
        message_has='spec.serviceName: "app1" in Pki app1-pki is not allowed in namespace "app1"',
    ),
    Case("invalid spec", PKI, None, Step.FAIL, reason=Reason.INVALID_SPEC, findings=(INVALID,)),
    Case(
        "secretName used by another Pki",
        PKI,
        None,
        Step.FAIL,
        reason=Reason.SECRET_CONFLICT,
        findings=(TAKEN,),
    ),
    Case(
        "unmanaged Secret with the name",
        PKI,
        _labels(SECRET, None, None),
        Step.FAIL,
        reason=Reason.SECRET_CONFLICT,
        message_has='in Pki app1-pki is taken: Secret "app1-pki-tls" was not created',
    ),
    Case(
        "our labels, no ownerReference: ours, nothing to do",
        PKI,
        _labels(SECRET, OURS, None),
        Step.WAIT,
    ),
    Case(
        "written for an earlier Pki of the same name (a reinstall): adopted, not re-issued",
        PKI,
        _labels(SECRET, OURS, [{**OWNER, "uid": "uid-0"}]),
        Step.WAIT,
    ),
    Case(
        "secretName changed: issued into the new Secret, not 'does not exist'",
        with_status(
            respec(PKI, secretName="renamed-tls"), serialNumber="AB", secretName="app1-pki-tls"
        ),
        None,
        Step.ISSUE,
        Trigger.SECRET_NAME_CHANGED,
    ),
    Case(
        "owned by another Pki",
        PKI,
        _labels(SECRET, {**OURS, "pkiwarden.dev/pki": "app2-pki"}, [{**OWNER, "name": "app2-pki"}]),
        Step.FAIL,
        reason=Reason.SECRET_CONFLICT,
        message_has="belongs to Pki app2-pki",
    ),
    Case("CA missing, nothing to issue", PKI, SECRET, Step.WAIT, ca=CA_GONE),
    Case(
        "CA missing, must issue",
        PKI,
        None,
        Step.FAIL,
        Trigger.NEW,
        Reason.CA_UNAVAILABLE,
        ca=CA_GONE,
        message_has="Pki app1-pki cannot be issued: CA Secret",
    ),
    Case(
        "CA missing at renewal",
        PKI,
        SECRET,
        Step.FAIL,
        Trigger.RENEWAL_DUE,
        Reason.CA_UNAVAILABLE,
        ca=CA_GONE,
        now_offset=timedelta(days=70),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_cached_form_of_a_secret_decides_the_same(case: Case) -> None:
    """The issued-Secret cache keeps facts, not PEM: every case decides as on the whole Secret."""
    secret = case.secret() if callable(case.secret) else case.secret
    cached = keep_facts(copy.deepcopy(secret)) if secret is not None else None
    if cached is not None:
        assert set(cached["data"]) <= {"ca.crt"}  # tls.crt and tls.key are not kept
    now = NOW + case.now_offset
    whole = decide_issuance(case.pki, secret, case.ca, list(case.findings), now)
    result = decide_issuance(case.pki, cached, case.ca, list(case.findings), now)
    assert (result.step, result.why, result.reason) == (case.step, case.why, case.reason)
    assert result.requeue_at == whole.requeue_at
    assert result.in_force == whole.in_force
    if whole.stored is not None:
        assert result.stored is not None and result.stored.facts == whole.stored.facts
        assert result.stored.key is None and whole.stored.key is not None


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_verdict(case: Case) -> None:
    secret = case.secret() if callable(case.secret) else case.secret
    now = NOW + case.now_offset
    result = decide_issuance(case.pki, secret, case.ca, list(case.findings), now)
    assert (result.step, result.why, result.reason) == (case.step, case.why, case.reason)
    assert case.message_has in result.message
    if result.step is Step.FAIL:
        assert result.requeue_at is not None and result.requeue_at > now
    if result.step is Step.WAIT:
        assert result.stored is not None
        expected = result.stored.facts.not_after - timedelta(hours=720)
        assert result.requeue_at == expected


def test_a_changed_secret_name_says_so_and_retires_the_old_secret() -> None:
    pki = with_status(
        respec(PKI, secretName="renamed-tls"), serialNumber="AB", secretName="app1-pki-tls"
    )
    verdict = decide_issuance(pki, None, CA, [], NOW)
    assert verdict.detail == 'spec.secretName changed from "app1-pki-tls" to "renamed-tls"'
    assert verdict.retire == "app1-pki-tls"
    assert decide_issuance(PKI, None, CA, [], NOW).retire is None


def test_a_secret_left_by_an_earlier_pki_of_the_name_is_kept_as_it_is() -> None:
    """A reinstall brings the same Pkis back with new uids: 0 re-issues, same certificate."""
    leftover = _labels(SECRET, OURS, None)
    recreated = copy.deepcopy(PKI)
    recreated["metadata"]["uid"] = "uid-after-reinstall"
    verdict = decide_issuance(recreated, leftover, CA, [], NOW)
    assert (verdict.step, verdict.why) == (Step.WAIT, None)
    assert verdict.stored is not None


def test_verdict_reads_the_secret_not_the_status() -> None:
    """After a crash between the Secret write and the status write, nothing is re-issued."""
    assert decide_issuance(PKI, SECRET, CA, [], NOW).step is Step.WAIT
    stale = with_status(PKI, serialNumber="0", notAfter="2000-01-01T00:00:00Z")
    assert decide_issuance(stale, SECRET, CA, [], NOW).step is Step.WAIT


def test_failures_back_off_exponentially_and_reset_with_a_new_generation() -> None:
    delays = [
        decide_issuance(
            with_status(PKI, failedIssuanceAttempts=n), None, CA_GONE, [], NOW
        ).requeue_at
        for n in range(4)
    ]
    assert [d - NOW for d in delays if d] == [timedelta(seconds=s) for s in (2, 4, 8, 16)]
    changed = with_status(PKI, failedIssuanceAttempts=9)
    changed["metadata"]["generation"] = 2
    assert decide_issuance(changed, None, CA_GONE, [], NOW).requeue_at == NOW + timedelta(seconds=2)


def test_backoff_is_capped_at_one_hour() -> None:
    assert retry_delay(0) == timedelta(seconds=2)
    assert retry_delay(50) == timedelta(hours=1)


def test_short_certificate_renews_at_two_thirds_of_its_life() -> None:
    """A certificate clamped by the CA's notAfter is renewed before it expires."""
    short_ca = make_ca("short CA", days=10)
    pki = make_pki()
    secret = issued_secret(pki, short_ca)
    result = decide_issuance(pki, secret, short_ca, [], NOW)
    assert result.step is Step.WAIT and result.stored is not None
    facts = result.stored.facts
    lifetime = facts.not_after - facts.not_before
    assert result.requeue_at == facts.not_before + lifetime * 2 / 3


def test_a_renewal_every_second_is_refused_by_the_issuers_re_check() -> None:
    """duration 1h with renewBefore 59m59s once re-issued about every second: the issuer's
    own re-check (a Pki admitted before the rule, or past a bypassed webhook) refuses it."""
    policy = {
        "metadata": {"name": "app-teams"},
        "spec": {"namespaces": [NAMESPACE], "allowedServiceNames": ["app1"]},
    }
    context = Context(policies=[policy], namespace_labels={}, at_run_time=True)
    pki = make_pki(duration="1h", renewBefore="59m59s")
    findings = validate_pki(pki, NAMESPACE, context)
    fresh = decide_issuance(pki, None, CA, findings, NOW)
    assert (fresh.step, fresh.reason) == (Step.FAIL, Reason.INVALID_SPEC)
    assert 'spec.renewBefore: "59m59s" in Pki app1-pki would renew the certificate 1s' in (
        fresh.message
    )
    # Issued a minute ago (before the rule): it keeps serving, and is not renewed again.
    issued = issued_secret(pki, CA, NOW - timedelta(minutes=1))
    renewing = decide_issuance(pki, issued, CA, findings, NOW)
    assert (renewing.step, renewing.reason, renewing.in_force) == (
        Step.FAIL,
        Reason.INVALID_SPEC,
        True,
    )
