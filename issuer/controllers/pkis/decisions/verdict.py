"""The decision: given a Pki, its Secret and the CA, what must happen now?

``decide_issuance`` is pure (no API calls, no clock of its own), like cert-manager's
trigger controller: the controller gathers the inputs from its caches, and
everything interesting about when a certificate is (re-)issued is decided
here, where a table of cases can test it.

The Secret's annotations, not the Pki's status, say what was issued: status
is written after the Secret, so after a crash between the two the Secret is
the truth and nothing is issued twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from issuer.controllers.pkis.inputs.stored import StoredCertificate, read_stored
from issuer.controllers.pkis.reporting.reasons import Reason, reason_for
from issuer.runtime import issuance
from issuer.runtime.issued_facts import requested_names
from issuer.runtime.ownership import Ownership, conflict_message, ownership
from issuer.runtime.signers import CAProblem
from shared.backoff import Backoff
from shared.clock import rfc3339
from shared.defaults import apply_defaults
from shared.durations import DurationError, parse_duration
from shared.findings import Finding, errors, phrase
from shared.schema import DEFAULT_AUTHORITY

RETRY = Backoff()


class Step(StrEnum):
    """What the reconcile does next."""

    ISSUE = "Issue"
    WAIT = "Wait"
    FAIL = "Fail"


class Trigger(StrEnum):
    """Why a new certificate is needed; also the Issuing condition's reason."""

    NEW = "New"
    SECRET_NAME_CHANGED = "SecretNameChanged"
    SECRET_MISSING = "SecretMissing"
    SECRET_ALTERED = "SecretAltered"
    KEY_MISMATCH = "KeyMismatch"
    SPEC_CHANGED = "SpecChanged"
    CERTIFICATE_MISMATCH = "CertificateMismatch"
    CA_CHANGED = "CAChanged"
    RENEWAL_DUE = "RenewalDue"


@dataclass(frozen=True)
class Desired:
    """The Pki's spec (defaults applied) in the terms of issuance."""

    secret_name: str
    request: issuance.LeafRequest
    key: issuance.KeySpec
    rotate_key: bool
    renew_before: timedelta
    spec_hash: str


@dataclass(frozen=True)
class Verdict:
    step: Step
    why: Trigger | None  # what calls for a new certificate, if anything does
    detail: str  # the trigger in words ("tls.crt does not match tls.key"), or ""
    reason: Reason | None  # set when step is FAIL
    message: str  # for FAIL: the message users read
    requeue_at: datetime | None  # WAIT: renewal time; FAIL: next retry
    desired: Desired | None = None
    stored: StoredCertificate | None = None  # our Secret's current certificate, if readable
    # FAIL only: a valid certificate matching the spec is in place; only renewal is blocked.
    in_force: bool = False
    # ISSUE only: the Secret written before spec.secretName changed, to delete once replaced.
    retire: str | None = None


def retry_delay(failures: int, retry: Backoff = RETRY) -> timedelta:
    """How long after a failure to try again, given the failures recorded before it."""
    return timedelta(seconds=retry.delay(failures))


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Stable across key order, restarts and upgrades: canonical JSON of the defaulted spec.

    A field added later with a default is left out while it holds that default,
    so a Secret issued by an earlier release is not re-issued on upgrade.
    """
    if spec.get("authority") == DEFAULT_AUTHORITY:
        spec = {key: value for key, value in spec.items() if key != "authority"}
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def desired_of(pki: Mapping[str, Any]) -> Desired:
    """Read the defaulted spec; ValueError if it cannot be issued (validation missed it)."""
    spec = pki.get("spec") or {}
    try:
        duration = parse_duration(str(spec.get("duration")))
        renew_before = parse_duration(str(spec.get("renewBefore")))
    except DurationError as error:
        raise ValueError(f"spec.duration/renewBefore {error}") from None
    key = spec.get("privateKey") or {}
    try:
        algorithm = issuance.KeyAlgorithm(key.get("algorithm", "ECDSA"))
    except ValueError:
        raise ValueError(f"spec.privateKey.algorithm {key.get('algorithm')!r} is unknown") from None
    size = key.get("size") if algorithm is not issuance.KeyAlgorithm.ED25519 else None
    dns_names = tuple(spec.get("dnsNames") or ())
    return Desired(
        secret_name=str(spec.get("secretName")),
        request=issuance.LeafRequest(
            common_name=str(spec.get("commonName") or (dns_names[0] if dns_names else "")),
            dns_names=dns_names,
            ip_addresses=tuple(spec.get("ipAddresses") or ()),
            usages=tuple(spec.get("usages") or ()),
            duration=duration,
        ),
        key=issuance.KeySpec(algorithm, int(size) if size else None),
        rotate_key=key.get("rotationPolicy", "Always") != "Never",
        renew_before=renew_before,
        spec_hash=spec_hash(spec),
    )


def renews_at(not_before: datetime, not_after: datetime, renew_before: timedelta) -> datetime:
    """notAfter - renewBefore; when the certificate is shorter (clamped), at 2/3 of its life."""
    lifetime = not_after - not_before
    if renew_before >= lifetime:
        return not_before + lifetime * 2 / 3
    return not_after - renew_before


def decide_issuance(
    pki: Mapping[str, Any],
    secret: Mapping[str, Any] | None,
    ca: issuance.SigningCA | CAProblem,
    findings: Sequence[Finding],
    now: datetime,
    *,
    retry: Backoff = RETRY,
) -> Verdict:
    """What to do for ``pki`` now. ``secret`` is whatever has ``spec.secretName``, ours or not."""
    name = str((pki.get("metadata") or {}).get("name"))
    failures = previous_failures(pki)

    def fail(
        reason: Reason,
        message: str,
        *,
        why: Trigger | None = None,
        detail: str = "",
        desired: Desired | None = None,
        stored: StoredCertificate | None = None,
    ) -> Verdict:
        return Verdict(
            Step.FAIL,
            why,
            detail,
            reason,
            message,
            now + retry_delay(failures, retry),
            desired,
            stored,
            in_force=in_force(stored, why, now),
        )

    blocking = errors(findings)
    blocked = "; ".join(phrase(f, subject=f"Pki {name}") for f in blocking)
    try:
        desired = desired_of(apply_defaults(pki))
    except ValueError as error:
        if blocking:
            return fail(reason_for(blocking[0].category), blocked)
        return fail(Reason.INVALID_SPEC, f"{error} in Pki {name}")
    owner = ownership(secret, pki)
    if owner is Ownership.FOREIGN and not blocking:
        assert secret is not None
        return fail(Reason.SECRET_CONFLICT, conflict_message(secret, desired.secret_name, name))
    ours = secret if owner is Ownership.OURS else None
    stored_or_problem = read_stored(ours) if ours is not None else None
    stored = stored_or_problem if isinstance(stored_or_problem, StoredCertificate) else None
    why, detail = _trigger(pki, desired, ours, stored_or_problem, ca, now)

    if blocking:
        # What exists stays described: a policy change stops renewal, not the certificate.
        return fail(
            reason_for(blocking[0].category),
            blocked,
            why=why if stored is not None else None,
            detail=detail if stored is not None else "",
            desired=desired,
            stored=stored,
        )
    if why is None:
        assert stored is not None
        return Verdict(
            Step.WAIT,
            None,
            "",
            None,
            "",
            renews_at(stored.facts.not_before, stored.facts.not_after, desired.renew_before),
            desired,
            stored,
        )
    if isinstance(ca, CAProblem):
        return fail(
            Reason.CA_UNAVAILABLE,
            f"Pki {name} cannot be issued: {ca.message}",
            why=why,
            detail=detail,
            desired=desired,
            stored=stored,
        )
    return Verdict(
        Step.ISSUE, why, detail, None, "", None, desired, stored, retire=_retired(pki, desired)
    )


def in_force(stored: StoredCertificate | None, why: Trigger | None, now: datetime) -> bool:
    """A certificate valid now and matching the spec: at most its renewal is due."""
    if stored is None or why not in (None, Trigger.RENEWAL_DUE):
        return False
    return stored.facts.not_before <= now < stored.facts.not_after


def _retired(pki: Mapping[str, Any], desired: Desired) -> str | None:
    """The Secret status says was written, when spec.secretName now names another."""
    written = (pki.get("status") or {}).get("secretName")
    return str(written) if written and written != desired.secret_name else None


def _trigger(  # noqa: PLR0917 - the verdict's inputs, in the same order
    pki: Mapping[str, Any],
    desired: Desired,
    secret: Mapping[str, Any] | None,
    stored: StoredCertificate | str | None,
    ca: issuance.SigningCA | CAProblem,
    now: datetime,
) -> tuple[Trigger | None, str]:
    """The first reason found to issue, in the order a reader would check them."""
    if secret is None:
        previous = _retired(pki, desired)
        if previous is not None:
            return (
                Trigger.SECRET_NAME_CHANGED,
                f'spec.secretName changed from "{previous}" to "{desired.secret_name}"',
            )
        if (pki.get("status") or {}).get("serialNumber"):
            return Trigger.SECRET_MISSING, f'Secret "{desired.secret_name}" does not exist'
        return Trigger.NEW, "no certificate has been issued yet"
    if isinstance(stored, str) or stored is None:
        return Trigger.SECRET_ALTERED, str(stored or "the Secret is unreadable")
    facts = stored.facts
    if not facts.serial_recorded:
        return Trigger.SECRET_ALTERED, "tls.crt is not the certificate pkiwarden issued"
    if not facts.key_matches:
        return Trigger.KEY_MISMATCH, "tls.key does not belong to the certificate in tls.crt"
    if facts.spec_hash != desired.spec_hash:
        return Trigger.SPEC_CHANGED, "the spec changed since the certificate was issued"
    if facts.key_spec != desired.key:
        return (
            Trigger.CERTIFICATE_MISMATCH,
            f"the key is {facts.key_spec}, the spec asks for {desired.key}",
        )
    if facts.names != requested_names(desired.request):
        return (
            Trigger.CERTIFICATE_MISMATCH,
            "the certificate's common name, DNS names, IP addresses or usages differ from the spec",
        )
    # ca.crt is not compared: the authority controller keeps it on the trust set, which
    # changes during a CA rotation without any certificate needing re-issue. The signer
    # is told by its key id, as the authority controller counts a rotation's progress.
    if isinstance(ca, issuance.SigningCA) and facts.issuer_key_id != issuance.subject_key_id(
        ca.certificate
    ):
        return Trigger.CA_CHANGED, "CA rotation: the certificate was signed by another CA"
    due = renews_at(facts.not_before, facts.not_after, desired.renew_before)
    if now >= due:
        return Trigger.RENEWAL_DUE, f"renewal was due at {rfc3339(due)}"
    return None, ""


def previous_failures(pki: Mapping[str, Any]) -> int:
    """Failures so far for this generation; a new spec starts the backoff afresh."""
    status = pki.get("status") or {}
    generation = (pki.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation:
        return 0
    try:
        return max(0, int(status.get("failedIssuanceAttempts") or 0))
    except (TypeError, ValueError):
        return 0


def refused(
    pki: Mapping[str, Any], message: str, now: datetime, *, retry: Backoff = RETRY
) -> Verdict:
    """The API server refused a read or write of the Secret: a failure, retried with backoff."""
    return Verdict(
        Step.FAIL,
        None,
        "",
        Reason.ISSUANCE_FAILED,
        message,
        now + retry_delay(previous_failures(pki), retry),
    )
