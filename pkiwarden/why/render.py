"""Facts to words: the verdict first, then the chain, then the fix. No I/O, no clock.

The fix is never composed here: it is the product's own sentence, either the
re-check's findings (shared phrasing, as the webhook and the issuer's Events
word them) or, when the policies could not be read, the message the issuer
wrote into the Pki's status. What is added here is only the chain around it
and who can act on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from issuer.controllers.authorities.effects.configmaps import TRUST_CONFIGMAP
from issuer.controllers.pkis.reporting.reasons import Reason
from pkiwarden.why.chain import CHAIN_WHO, ChainFacts, chain_fix, chain_problem
from pkiwarden.why.facts import (
    AuthorityFacts,
    Facts,
    PkiFacts,
    PolicyFacts,
    SecretFacts,
    TrustFacts,
)
from pkiwarden.why.secret_uses import How, Use
from pkiwarden.why.targets import Kind, Target


class Exit(IntEnum):
    """``why``'s exit status, for scripts: the same numbers ``pkiwarden lint`` uses."""

    READY = 0
    NOT_READY = 1
    UNREADABLE = 2


WHO_FIXES: dict[Reason, str] = {
    Reason.NOT_ALLOWED: "you (the Pki's spec) or the platform team (the PkiPolicy)",
    Reason.INVALID_SPEC: "you: correct the Pki's spec",
    Reason.SECRET_CONFLICT: "you: remove or rename that Secret, or set the Pki's spec.secretName",
    Reason.CA_UNAVAILABLE: "the platform team: the CA is theirs; nothing in a namespace fixes it",
    Reason.ISSUANCE_FAILED: "the issuer retries by itself; if it persists, the platform team",
}
RECHECKED = frozenset({Reason.NOT_ALLOWED, Reason.INVALID_SPEC, Reason.SECRET_CONFLICT})
"""Failures that ``why``'s re-check (shared validation) covers; CA and API failures it cannot."""
NOT_SEEN = "the issuer has not reported on it yet (is the issuer running?)"

_HOW_WORDS = {
    How.VOLUME: "volume {via}",
    How.PROJECTED_VOLUME: "projected volume {via}",
    How.ENV: "env of container {via}",
    How.ENV_FROM: "envFrom of container {via}",
}


@dataclass(frozen=True)
class Headline:
    exit: Exit
    line: str  # the first line of the text output
    fix: str | None  # the product's own sentence for the first problem
    who: str | None  # who can act on the fix


def _pki_problem(pki: PkiFacts) -> str | None:
    if pki.ready is None:
        return f"Pki {pki.name}: {NOT_SEEN}"
    if not pki.ready:
        return f"Pki {pki.name} is not Ready ({pki.reason or 'no reason given'})"
    if pki.findings:
        return f"Pki {pki.name} is Ready, but its next issuance would fail"
    return None


def _secret_problem(secret: SecretFacts, failing: set[str]) -> str | None:
    """A missing Secret, unless its Pki's own problem already explains it."""
    if secret.exists is not False or secret.written_by in failing:
        return None
    if secret.written_by:
        return f"Secret {secret.name} (written by Pki {secret.written_by}) does not exist yet"
    return f"Secret {secret.name} does not exist and no Pki writes it"


def _fix(pki: PkiFacts) -> tuple[str | None, str | None]:
    if pki.findings:
        reason = _reason(pki.findings_reason)
        return "; ".join(pki.findings), WHO_FIXES.get(reason) if reason else None
    reason = _reason(pki.reason)
    if pki.ready is False and pki.findings == () and reason in RECHECKED:
        # The issuer retries when what caused the failure changes (a policy, the Secret
        # that took the name), not only at the retry its backoff scheduled.
        latest = f" (at the latest at {pki.next_retry})" if pki.next_retry else ""
        return (
            f"none needed any more: Pki {pki.name} passes the check now; the issuer retries"
            f" it as soon as it sees the change{latest}",
            None,
        )
    if pki.ready is False and pki.message:
        return pki.message, WHO_FIXES.get(reason) if reason else None
    return None, None


def _reason(text: str | None) -> Reason | None:
    try:
        return Reason(text) if text else None
    except ValueError:
        return None


def headline(facts: Facts) -> Headline:
    """READY or NOT READY, with the problems in the order of the chain."""
    failing = {pki.name for pki in facts.pkis if _pki_problem(pki)}
    problems = [p for s in facts.secrets if (p := _secret_problem(s, failing))]
    problems += [p for p in map(_pki_problem, facts.pkis) if p]
    problems += [
        p for s in facts.secrets if s.certificate and (p := chain_problem(s.name, s.certificate))
    ]
    if not facts.pkis_readable and facts.target.kind is not Kind.PKI:
        problems.append(
            f"the Pkis of namespace {facts.target.namespace} could not be read,"
            " so whether its certificates are Ready is unknown"
        )
    where = f"{facts.target} in namespace {facts.target.namespace}"
    fix = who = None
    for pki in facts.pkis:
        fix, who = _fix(pki)
        if fix:
            break
    if not fix:
        refused = next((s for s in facts.secrets if s.certificate and s.certificate.failed), None)
        if refused is not None and refused.certificate is not None:
            fix = chain_fix(refused.name, refused.written_by or "", refused.certificate)
            who = CHAIN_WHO
    if not fix:
        missing = next((s for s in facts.secrets if s.exists is False and not s.written_by), None)
        if missing is not None:
            fix = f"create Secret {missing.name}, or a Pki with spec.secretName: {missing.name}"
    if problems:
        return Headline(Exit.NOT_READY, f"NOT READY: {where}: " + "; ".join(problems), fix, who)
    return Headline(Exit.READY, f"READY: {where}: {_summary(facts)}", None, None)


def _summary(facts: Facts) -> str:
    if facts.pkis:
        names = ", ".join(pki.name for pki in facts.pkis)
        return f"every certificate it needs is Ready (Pki {names})"
    if facts.target.runs_pods:
        return "it uses no Secret written by a Pki"
    return "no Pki writes this Secret"


# --- text ----------------------------------------------------------------------------------


def _use(use: Use) -> str:
    return _HOW_WORDS[use.how].format(via=use.via)


def _secret_line(secret: SecretFacts, pkis_readable: bool) -> str:
    state = {True: "exists", False: "does not exist", None: "not readable"}[secret.exists]
    if secret.exists and secret.managed is False:
        state += ", not managed by pkiwarden"
    writer = f"written by Pki {secret.written_by}" if secret.written_by else "no Pki writes it"
    if secret.claimed_by:
        writer = f"taken: Pki {secret.claimed_by} names it in spec.secretName and cannot write it"
    elif not secret.written_by and not pkis_readable:
        writer = "which Pki writes it is unknown"
    uses = f" ({', '.join(map(_use, secret.uses))})" if secret.uses else ""
    return f"  Secret {secret.name}{uses}: {state}; {writer}"


def _policy_lines(pki: PkiFacts, policy: PolicyFacts, namespace: str) -> Iterator[str]:
    if not policy.readable:
        yield (
            "    policy: PkiPolicies not readable with these permissions; the issuer's"
            " message and Events are what is known of them"
        )
        return
    if not policy.selecting:
        yield f"    policy: no PkiPolicy selects namespace {namespace}"
        return
    for rule in policy.selecting:
        deciding = " (decides)" if rule.name == policy.deciding else ""
        yield f"    PkiPolicy {rule.name}{deciding}: service names {', '.join(rule.service_names)}"
        if rule.name == policy.deciding:
            yield f"      DNS names {', '.join(rule.dns_names) or 'none'}"
            yield f"      IP ranges {', '.join(rule.ip_ranges) or 'none'}"
            yield f"      key algorithms {', '.join(rule.key_algorithms)}"
            yield f"      max duration {rule.max_duration or 'no bound beyond the global one'}"
    if policy.deciding is None:
        yield f"    no selecting PkiPolicy allows service name {pki.service_name!r}"


def _certificate_lines(chain: ChainFacts) -> Iterator[str]:
    if chain.chains:
        yield (
            f"    certificate chains to trust bundle CA {chain.authority_subject}"
            f" (serial {chain.authority_serial})"
        )
    elif chain.chains is False:
        yield f"    certificate does NOT chain to any CA in {TRUST_CONFIGMAP}: {chain.problem}"
    if chain.serial is None:
        return
    window = f"valid {chain.not_before} to {chain.not_after}"
    if chain.valid_now is False and chain.chains is not False:
        window += f": NOT valid now, {chain.problem}"
    yield f"    certificate {chain.serial}, issued by {chain.issuer}, {window}"
    if chain.chains is None and chain.valid_now:
        yield f"    whether it chains to the trust bundle is not checked: {chain.problem}"


def _authority_words(authority: AuthorityFacts) -> str:
    """Which CA signs, and whether it can: a Pki waiting on its CA is not the Pki's fault."""
    name = f"PkiAuthority {authority.name}"
    if authority.exists is None:
        return f"{name} (signs it): not readable with these permissions"
    if not authority.exists:
        return f"{name} (signs it): does not exist"
    phase = f"phase {authority.phase}" if authority.phase else "no phase yet"
    if authority.ready is True:
        return f"{name} (signs it): Ready, {phase}"
    if authority.ready is False:
        return f"{name} (signs it): NOT Ready, {phase}: {authority.message or 'no message'}"
    return f"{name} (signs it): no status yet, no issuer has taken it up; {phase}"


def _pki_lines(pki: PkiFacts, namespace: str) -> Iterator[str]:
    state = {True: "Ready", False: "not Ready", None: NOT_SEEN}[pki.ready]
    reason = f" ({pki.reason})" if pki.reason and pki.ready is not None else ""
    yield f"  Pki {pki.name}: {state}{reason}; service {pki.service_name}, Secret {pki.secret_name}"
    if not pki.up_to_date:
        yield "    status is from an earlier spec; the issuer has not processed the latest yet"
    if pki.serial:
        yield (
            f"    certificate {pki.serial}, valid until {pki.not_after}, renewal at"
            f" {pki.renewal_time}"
        )
    yield f"    DNS names {', '.join(pki.dns_names) or 'none'}"
    if pki.authority is not None:
        yield "    " + _authority_words(pki.authority)
    if pki.ready is False:
        yield f"    message: {pki.message or 'none'}"
        yield (
            f"    last failure {pki.last_failure or 'unknown'}, next retry"
            f" {pki.next_retry or 'unknown'}, {pki.attempts} attempt(s)"
        )
    if pki.findings and "; ".join(pki.findings) == pki.message:
        yield "    re-checked now: fails the same way"
    elif pki.findings:
        yield "    re-checked now: " + "; ".join(pki.findings)
    yield from _policy_lines(pki, pki.policy, namespace)


def _trust_lines(trust: TrustFacts, namespace: str) -> list[str]:
    where = f"ConfigMap {TRUST_CONFIGMAP} in namespace {namespace}"
    if trust.present is None:
        return []  # said under "Not checked"
    if not trust.present:
        return [f"Trust bundle: none published in namespace {namespace} ({TRUST_CONFIGMAP})"]
    if trust.problem:
        return [f"Trust bundle: {where}: {trust.problem}"]
    return [f"Trust bundle: {where}, {len(trust.authorities)} CA(s):"] + [
        f"  {authority.subject}, valid until {authority.not_after}"
        for authority in trust.authorities
    ]


def render_text(facts: Facts) -> str:
    result = headline(facts)
    lines = [result.line]
    if facts.secrets:
        lines.append("Secrets:")
        for secret in facts.secrets:
            lines.append(_secret_line(secret, facts.pkis_readable))
            if secret.certificate is not None:
                lines += _certificate_lines(secret.certificate)
    if facts.consumers:
        lines.append("Used by: " + ", ".join(facts.consumers))
    for pki in facts.pkis:
        lines.append("Pki:")
        lines += _pki_lines(pki, facts.target.namespace)
    if facts.trust is not None:
        lines += _trust_lines(facts.trust, facts.target.namespace)
    if facts.events:
        lines.append("Events (pkiwarden, newest first):")
        lines += [
            f"  {e.last_seen or '?'} {e.type} {e.reason} on {e.object} (x{e.count}): {e.message}"
            for e in facts.events
        ]
    if facts.unchecked:
        lines.append("Not checked:")
        lines += [f"  {u.what}: needs {u.needs}" for u in facts.unchecked]
    if result.fix:
        lines.append(f"Fix: {result.fix}")
    if result.who:
        lines.append(f"Who can fix it: {result.who}")
    return "\n".join(lines) + "\n"


def render_unreadable_text(message: str) -> str:
    return f"CANNOT TELL: {message}\n"


# --- JSON ----------------------------------------------------------------------------------


def _target_json(target: Target) -> dict[str, str]:
    return {"kind": target.kind.value, "name": target.name, "namespace": target.namespace}


def _pki_json(pki: PkiFacts) -> dict[str, Any]:
    return {
        "name": pki.name,
        "serviceName": pki.service_name,
        "secretName": pki.secret_name,
        "dnsNames": list(pki.dns_names),
        "ready": pki.ready,
        "reason": pki.reason,
        "message": pki.message,
        "serialNumber": pki.serial,
        "notAfter": pki.not_after,
        "renewalTime": pki.renewal_time,
        "lastFailureTime": pki.last_failure,
        "nextRetryTime": pki.next_retry,
        "failedIssuanceAttempts": pki.attempts,
        "upToDate": pki.up_to_date,
        "findings": list(pki.findings) if pki.findings is not None else None,
        "policy": {
            "readable": pki.policy.readable,
            "deciding": pki.policy.deciding,
            "selecting": [
                {
                    "name": rule.name,
                    "allowedServiceNames": list(rule.service_names),
                    "allowedDNSNames": list(rule.dns_names),
                    "allowedIPRanges": list(rule.ip_ranges),
                    "maxDuration": rule.max_duration,
                    "allowedKeyAlgorithms": list(rule.key_algorithms),
                }
                for rule in pki.policy.selecting
            ],
        },
        "authority": (
            {
                "name": pki.authority.name,
                "exists": pki.authority.exists,
                "ready": pki.authority.ready,
                "phase": pki.authority.phase,
                "message": pki.authority.message,
            }
            if pki.authority is not None
            else None
        ),
    }


def render_json(facts: Facts) -> dict[str, Any]:
    """The ``-o json`` document; its field names are documented in the README."""
    result = headline(facts)
    return {
        "target": _target_json(facts.target),
        "exitCode": int(result.exit),
        "ready": result.exit is Exit.READY,
        "verdict": result.line,
        "fix": result.fix,
        "whoCanFix": result.who,
        "secrets": [
            {
                "name": secret.name,
                "uses": [{"how": use.how.value, "via": use.via} for use in secret.uses],
                "exists": secret.exists,
                "managedByPkiwarden": secret.managed,
                "writtenBy": secret.written_by,
                "claimedBy": secret.claimed_by,
                "certificate": _certificate_json(secret.certificate),
            }
            for secret in facts.secrets
        ],
        "pkis": [_pki_json(pki) for pki in facts.pkis],
        "consumers": list(facts.consumers),
        "events": [
            {
                "object": event.object,
                "type": event.type,
                "reason": event.reason,
                "message": event.message,
                "count": event.count,
                "lastSeen": event.last_seen,
            }
            for event in facts.events
        ],
        "trust": _trust_json(facts.trust),
        "unchecked": [{"what": u.what, "needs": u.needs} for u in facts.unchecked],
    }


def _certificate_json(chain: ChainFacts | None) -> dict[str, Any] | None:
    if chain is None:
        return None
    authority = (
        {"subject": chain.authority_subject, "serialNumber": chain.authority_serial}
        if chain.chains
        else None
    )
    return {
        "serialNumber": chain.serial,
        "issuer": chain.issuer,
        "notBefore": chain.not_before,
        "notAfter": chain.not_after,
        "validNow": chain.valid_now,
        "chainsToTrustBundle": chain.chains,
        "authority": authority,
        "problem": chain.problem,
    }


def _trust_json(trust: TrustFacts | None) -> dict[str, Any] | None:
    if trust is None:
        return None
    return {
        "configMap": TRUST_CONFIGMAP,
        "present": trust.present,
        "authorities": [
            {"subject": authority.subject, "notAfter": authority.not_after}
            for authority in trust.authorities
        ],
        "problem": trust.problem,
    }


def render_unreadable_json(target: Target | None, text: str, message: str) -> dict[str, Any]:
    return {
        "target": _target_json(target) if target else {"text": text},
        "exitCode": int(Exit.UNREADABLE),
        "ready": False,
        "error": message,
    }
