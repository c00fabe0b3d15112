"""What ``why`` found, as plain values, and the pure steps from API objects to them.

``gather`` reads objects and hands them here; ``render`` reads only these
values. The policy analysis and the fix are the product's own: shared policy
matching picks the policies that decide, shared validation re-checks the Pki
and shared phrasing words the result, so ``why`` says what the webhook and
the issuer's Events say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from issuer.controllers.authorities.effects.configmaps import TRUST_CONFIGMAP, TRUST_KEY
from issuer.controllers.pkis.reporting.reasons import Reason, reason_for
from pkiwarden.why.chain import ChainFacts, check_chain
from pkiwarden.why.secret_uses import Use
from pkiwarden.why.targets import Target
from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL
from shared.defaults import apply_defaults, secret_name
from shared.durations import format_duration
from shared.findings import Category, phrase
from shared.policy import selecting
from shared.validation.pki import Context, SecretInfo, validate_pki

EVENT_SOURCE_PREFIX = "pkiwarden"
"""Events whose source component starts with this are pkiwarden's (the issuer's, today)."""
EVENTS_SHOWN = 5


@dataclass(frozen=True)
class Unchecked:
    """Something ``why`` could not read, and the permission that would let it."""

    what: str
    needs: str


@dataclass(frozen=True)
class SecretFacts:
    """A Secret the target uses; ``exists``/``managed`` are None when it could not be read."""

    name: str
    uses: tuple[Use, ...] = ()
    exists: bool | None = None
    managed: bool | None = None
    written_by: str | None = None  # the Pki of the namespace whose spec.secretName this is
    certificate: ChainFacts | None = None  # None: not checked (no Pki writes it, or unread)
    # A Pki names it in spec.secretName, but the Secret there is not that Pki's (taken).
    claimed_by: str | None = None


@dataclass(frozen=True)
class PolicyRule:
    """A PkiPolicy selecting the namespace, with its lists as they apply to one Pki."""

    name: str
    service_names: tuple[str, ...]
    dns_names: tuple[str, ...]  # {serviceName} and {namespace} filled in
    ip_ranges: tuple[str, ...]
    max_duration: str | None
    key_algorithms: tuple[str, ...]


@dataclass(frozen=True)
class PolicyFacts:
    """The policies deciding for a Pki; ``readable`` False: unknown, status is all there is."""

    readable: bool
    selecting: tuple[PolicyRule, ...] = ()
    deciding: str | None = None  # the selecting policy that allows the service name


@dataclass(frozen=True)
class AuthorityFacts:
    """The PkiAuthority a Pki names; ``exists`` None: the PkiAuthorities could not be read."""

    name: str
    exists: bool | None = None
    ready: bool | None = None  # None: no Ready condition yet (nothing has served it)
    phase: str | None = None
    message: str | None = None  # why it is not Ready


@dataclass(frozen=True)
class PkiFacts:
    name: str
    service_name: str
    secret_name: str
    dns_names: tuple[str, ...]
    ready: bool | None  # None: the issuer has not reported on it yet
    reason: str | None = None
    message: str | None = None
    serial: str | None = None
    not_after: str | None = None
    renewal_time: str | None = None
    last_failure: str | None = None
    next_retry: str | None = None
    attempts: int = 0
    up_to_date: bool = True  # status describes the current spec (observedGeneration)
    findings: tuple[str, ...] | None = None  # re-checked now; None when policies were unreadable
    findings_reason: str | None = None  # the Event reason the issuer gives the first finding
    policy: PolicyFacts = field(default_factory=lambda: PolicyFacts(readable=False))
    authority: AuthorityFacts | None = None  # None: not looked at


@dataclass(frozen=True)
class EventFacts:
    object: str  # "pod/app2-0", "pki/app2-pki"
    type: str
    reason: str
    message: str
    count: int
    last_seen: str | None


@dataclass(frozen=True)
class Authority:
    """A CA certificate of the namespace's trust bundle."""

    subject: str
    not_after: str


@dataclass(frozen=True)
class TrustFacts:
    """The trust ConfigMap of the namespace; ``present`` None: it could not be read."""

    present: bool | None
    authorities: tuple[Authority, ...] = ()
    problem: str | None = None  # the bundle is there but holds no readable certificate
    certificates: tuple[x509.Certificate, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Facts:
    target: Target
    secrets: tuple[SecretFacts, ...] = ()
    pkis: tuple[PkiFacts, ...] = ()
    consumers: tuple[str, ...] = ()  # Pods using the Secret, for pki/ and secret/ targets
    pkis_readable: bool = True  # False: which Pki writes which Secret is unknown
    trust: TrustFacts | None = None  # None: not looked at (no Pki involved)
    events: tuple[EventFacts, ...] = ()
    unchecked: tuple[Unchecked, ...] = ()


# --- from API objects --------------------------------------------------------------------


def _mapping(obj: object, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return str(value) if value not in (None, "") else None


def name_of(obj: Mapping[str, Any]) -> str:
    return str(_mapping(obj, "metadata").get("name") or "")


def secret_info(secret: Mapping[str, Any]) -> SecretInfo:
    """A Secret's metadata as validation knows Secrets: who manages it, never its data."""
    labels = _mapping(_mapping(secret, "metadata"), "labels")
    return SecretInfo(
        name=name_of(secret),
        managed_by_pkiwarden=labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
        owner_pki=labels.get(PKI_LABEL),
    )


def writer_of(info: SecretInfo | None, claimant: str | None) -> str | None:
    """The Pki that writes a Secret: ``claimant`` (whose spec.secretName names it) if the
    Secret is absent (it will be written) or carries pkiwarden's labels for that Pki.

    A Secret under that name that is someone else's is taken, not written by the Pki:
    pkiwarden never touches it, so nothing in it is the Pki's certificate.
    """
    if claimant is None:
        return None
    if info is None or (info.managed_by_pkiwarden and info.owner_pki == claimant):
        return claimant
    return None


def writers(pkis: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Secret name -> the Pki writing it (the first by name when several claim it)."""
    found: dict[str, str] = {}
    for pki in sorted(pkis, key=name_of):
        name = secret_name(pki)
        if name:
            found.setdefault(name, name_of(pki))
    return found


def policy_facts(
    service: str,
    namespace: str,
    policies: Sequence[Mapping[str, Any]] | None,
    namespace_labels: Mapping[str, str] | None,
) -> PolicyFacts:
    """The policies that select ``namespace`` and the one allowing ``service``, if any."""
    if policies is None:
        return PolicyFacts(readable=False)
    chosen = selecting(policies, namespace, namespace_labels)
    rules = tuple(
        PolicyRule(
            name=policy.name,
            service_names=policy.service_names,
            dns_names=policy.dns_names_for(service, namespace),
            ip_ranges=tuple(str(network) for network in policy.ip_ranges),
            max_duration=(
                format_duration(policy.max_duration) if policy.max_duration is not None else None
            ),
            key_algorithms=policy.key_algorithms,
        )
        for policy in chosen
    )
    deciding = next((policy.name for policy in chosen if policy.allows_service(service)), None)
    return PolicyFacts(readable=True, selecting=rules, deciding=deciding)


def authority_facts(
    name: str, authorities: Mapping[str, Mapping[str, Any]] | None
) -> AuthorityFacts:
    """The PkiAuthority ``name`` among ``authorities`` (by name; None: not readable)."""
    if authorities is None:
        return AuthorityFacts(name)
    found = authorities.get(name)
    if found is None:
        return AuthorityFacts(name, exists=False)
    status = _mapping(found, "status")
    ready = _condition(status, "Ready")
    return AuthorityFacts(
        name,
        exists=True,
        ready={"True": True, "False": False}.get(str(ready.get("status"))),
        phase=_text(status, "phase"),
        message=_text(ready, "message") or _text(ready, "reason"),
    )


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def pki_facts(
    pki: Mapping[str, Any],
    *,
    policies: Sequence[Mapping[str, Any]] | None,
    namespace_labels: Mapping[str, str] | None,
    other_pkis: Sequence[Mapping[str, Any]] = (),
    secrets: Mapping[str, SecretInfo] | None = None,
    issued_before: bool = False,
    authorities: Mapping[str, Mapping[str, Any]] | None = None,
) -> PkiFacts:
    """A Pki's status as facts, re-checked now against the policies when they could be read.

    The re-check is the issuer's own check (shared validation, phrased with
    the Pki named as in an Event); it says what would fail *now*, which can
    differ from the status when the policy changed since the last attempt.
    """
    metadata = _mapping(pki, "metadata")
    namespace = str(metadata.get("namespace") or "")
    name = name_of(pki)
    spec = _mapping(apply_defaults(pki, namespace), "spec")
    status = _mapping(pki, "status")
    ready = _condition(status, "Ready")
    service = str(spec.get("serviceName") or "")
    findings = reason = None
    if policies is not None:
        context = Context(
            policies=policies,
            namespace_labels=namespace_labels,
            other_pkis=other_pkis,
            secrets=secrets,
            # A Pki that once got a certificate had names that were allowed: a
            # refusal now is a policy change, said as the issuer's Events say it,
            # never "did you mean". One never issued may well hold a typo.
            at_run_time=issued_before,
            authorities=frozenset(authorities) if authorities is not None else None,
        )
        blocking = [
            finding
            for finding in validate_pki(pki, namespace, context)
            if finding.is_error or finding.category is Category.SECRET_CONFLICT
        ]
        findings = tuple(phrase(finding, subject=f"Pki {name}") for finding in blocking)
        reason = reason_for(blocking[0].category).value if blocking else None
    attempts = status.get("failedIssuanceAttempts")
    return PkiFacts(
        name=name,
        service_name=service,
        secret_name=str(spec.get("secretName") or ""),
        dns_names=tuple(str(n) for n in spec.get("dnsNames") or () if isinstance(n, str)),
        ready={"True": True, "False": False}.get(str(ready.get("status"))),
        reason=_text(ready, "reason"),
        message=_text(ready, "message"),
        serial=_text(status, "serialNumber"),
        not_after=_text(status, "notAfter"),
        renewal_time=_text(status, "renewalTime"),
        last_failure=_text(status, "lastFailureTime"),
        next_retry=_text(status, "nextRetryTime"),
        attempts=attempts if isinstance(attempts, int) else 0,
        up_to_date=status.get("observedGeneration") == metadata.get("generation"),
        findings=findings,
        findings_reason=reason,
        policy=policy_facts(service, namespace, policies, namespace_labels),
        authority=authority_facts(str(spec.get("authority") or ""), authorities),
    )


def _event_object(event: Mapping[str, Any]) -> str:
    involved = _mapping(event, "involvedObject")
    return f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"


def _is_pkiwardens(event: Mapping[str, Any]) -> bool:
    source = str(
        event.get("reportingComponent") or _mapping(event, "source").get("component") or ""
    )
    return source.startswith(EVENT_SOURCE_PREFIX)


def _last_seen(event: Mapping[str, Any]) -> str:
    series = _mapping(event, "series")
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or ""
    )


ISSUED_REASONS = frozenset({Reason.ISSUED.value, Reason.RENEWED.value})


def was_issued(pki: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the Pki ever got a certificate, from its status or pkiwarden's Events on it."""
    status = _mapping(pki, "status")
    return bool(status.get("serialNumber")) or any(
        _is_pkiwardens(event) and event.get("reason") in ISSUED_REASONS for event in events
    )


def event_facts(
    events: Iterable[Mapping[str, Any]], limit: int = EVENTS_SHOWN
) -> tuple[EventFacts, ...]:
    """pkiwarden's Events, newest first, one line per object, reason and message."""
    merged: dict[tuple[str, str, str, str], EventFacts] = {}
    for event in events:
        if not _is_pkiwardens(event):
            continue
        key = (
            _event_object(event),
            str(event.get("type") or ""),
            str(event.get("reason") or ""),
            str(event.get("message") or ""),
        )
        count = event.get("count")
        count = count if isinstance(count, int) and count > 0 else 1
        seen = _last_seen(event) or None
        known = merged.get(key)
        if known is not None:
            count += known.count
            seen = max(seen or "", known.last_seen or "") or None
        merged[key] = EventFacts(*key, count=count, last_seen=seen)
    newest = sorted(merged.values(), key=lambda e: e.last_seen or "", reverse=True)
    return tuple(newest[:limit])


def trust_facts(config_map: Mapping[str, Any] | None) -> TrustFacts:
    """The CA certificates in the trust ConfigMap's ``ca.crt`` (public by design)."""
    if config_map is None:
        return TrustFacts(present=False)
    pem = str(_mapping(config_map, "data").get(TRUST_KEY) or "")
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        return TrustFacts(
            present=True, problem=f"{TRUST_KEY} holds no readable certificate: {error}"
        )
    authorities = tuple(
        Authority(
            subject=certificate.subject.rfc4514_string(),
            not_after=certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for certificate in certificates
    )
    return TrustFacts(present=True, authorities=authorities, certificates=tuple(certificates))


def certificate_facts(
    leaf_pem: bytes | None, trust: TrustFacts | None, now: dt.datetime
) -> ChainFacts:
    """The Secret's ``tls.crt`` checked against the namespace's trust bundle at ``now``."""
    bundle_problem = None
    if trust is None or trust.present is None:
        bundle_problem = f"the trust bundle ({TRUST_CONFIGMAP}) could not be read"
    elif not trust.present:
        bundle_problem = f"no trust bundle ({TRUST_CONFIGMAP}) is published in this namespace"
    elif trust.problem or not trust.certificates:
        bundle_problem = f"the trust bundle {TRUST_CONFIGMAP} holds no readable CA certificate"
    return check_chain(
        leaf_pem,
        trust.certificates if trust is not None else (),
        now,
        bundle=TRUST_CONFIGMAP,
        bundle_problem=bundle_problem,
    )
