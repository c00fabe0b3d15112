"""Validation of a Pod certificate ask: what a ``podCertificate`` for a pkiwarden signer may get.

One judgement for both places that see such an ask: the webhook, reading the
projected volume source of a Pod or a Pod template at apply time
(``pod_template``), and the issuer, reading the PodCertificateRequest the
kubelet made from it. Both get the same findings in the same words as a
Pki's; only the field paths differ, so each caller hands in where its fields
live.

The rules (DESIGN.md, "Pod certificates"): a PkiPolicy must select the
namespace and allow the authority the signer names; DNS names come from the
``pkiwarden.dev/dns-names`` annotation and are allowed exactly as a Pki's are,
with the ServiceAccount's name as the service name; the key type must be one
pkiwarden signs and the policy allows; the lifetime is at most
``maxExpirationSeconds`` and the policy's ``maxDuration``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.findings import Category, Finding
from shared.names import dns_name_problem
from shared.pod_certificates import (
    DEFAULT_MAX_EXPIRATION_SECONDS,
    DNS_NAMES_ANNOTATION,
    KEY_TYPES,
    KNOWN_ANNOTATIONS,
    MAX_LIFETIME,
    MIN_LIFETIME,
    SIGNER_PREFIX,
    authority_of,
    requested_dns_names,
    signer_name,
)
from shared.policy import CompiledPolicy, dns_name_allowed, selecting
from shared.schema import KEY_ALGORITHMS
from shared.suggest import closest, did_you_mean
from shared.validation.common import error_finding, listing, quoted, warning_finding


@dataclass(frozen=True, slots=True)
class PodCertificateAsk:
    """A Pod's request as either place sees it; ``key_type`` in the kubelet's spelling."""

    namespace: str
    service_account: str
    signer: str
    key_type: str
    max_expiration_seconds: int | None  # None: the API server's default, 24 hours
    annotations: Mapping[str, str]

    @property
    def authority(self) -> str:
        return authority_of(self.signer) or ""

    @property
    def asked_lifetime(self) -> timedelta:
        seconds = self.max_expiration_seconds
        return timedelta(seconds=DEFAULT_MAX_EXPIRATION_SECONDS if seconds is None else seconds)


@dataclass(frozen=True, slots=True)
class AskPaths:
    """Where the ask's fields live in the object the reader is looking at."""

    signer: str
    service_account: str
    key_type: str
    lifetime: str
    annotations: str

    def annotation(self, key: str) -> str:
        return f"{self.annotations}[{json.dumps(key)}]"


REQUEST_PATHS = AskPaths(
    signer="spec.signerName",
    service_account="spec.serviceAccountName",
    key_type="spec.stubPKCS10Request",
    lifetime="spec.maxExpirationSeconds",
    annotations="spec.unverifiedUserAnnotations",
)


def source_paths(source: str, pod_spec: str) -> AskPaths:
    """The paths of a ``podCertificate`` source at ``source`` in the Pod spec at ``pod_spec``."""
    return AskPaths(
        signer=f"{source}.signerName",
        service_account=f"{pod_spec}.serviceAccountName",
        key_type=f"{source}.keyType",
        lifetime=f"{source}.maxExpirationSeconds",
        annotations=f"{source}.userAnnotations",
    )


@dataclass(frozen=True)
class AskContext:
    """What is known around the ask. ``authorities`` None: not known (nothing said about it)."""

    policies: Sequence[Mapping[str, Any]] = ()
    namespace_labels: Mapping[str, str] | None = None
    authorities: frozenset[str] | None = None
    at_run_time: bool = False


@dataclass(frozen=True)
class Judgement:
    """Every finding, and the lifetime it gets when there is no error."""

    findings: tuple[Finding, ...]
    lifetime: timedelta | None
    policy: str | None  # the PkiPolicy that allows it

    @property
    def allowed(self) -> bool:
        return not any(f.is_error for f in self.findings) and self.lifetime is not None


def _signer_suggestion(authority: str, candidates: Sequence[str]) -> str:
    """``did you mean`` for a signer, judged on the authority names (the prefix is shared)."""
    match = closest(authority, candidates)
    return "" if match is None else f"; did you mean {quoted(signer_name(match))}?"


def key_type_fix(algorithms: Sequence[str], min_rsa_size: int = 0) -> str:
    """The first kubelet key type pkiwarden signs that ``algorithms`` allow, as a fix."""
    for key_type, (algorithm, size) in KEY_TYPES.items():
        if algorithm in algorithms and (algorithm != "RSA" or (size or 0) >= min_rsa_size):
            return f"; use keyType {key_type}"
    return ""


def judge_pod_certificate(
    ask: PodCertificateAsk, paths: AskPaths, context: AskContext
) -> Judgement:
    """All findings for ``ask``, errors first; the lifetime to issue when there is none."""
    findings = [*_ask_syntax(ask, paths, context)]
    chosen = selecting(context.policies, ask.namespace, context.namespace_labels)
    if not chosen:
        findings.append(
            error_finding(
                Category.NOT_ALLOWED,
                "metadata.namespace",
                "is not selected by any PkiPolicy, so no Pod certificate can be issued there; "
                "ask the platform team to add it to a PkiPolicy",
                ask.namespace,
            )
        )
        return _judged(findings, None, None)
    best: tuple[list[Finding], CompiledPolicy] | None = None
    for policy in chosen:
        found = _against_policy(policy, ask, paths, context)
        if not any(f.is_error for f in found):
            best = (found, policy)
            break
        if best is None or len(found) < len(best[0]):
            best = (found, policy)
    assert best is not None
    found, policy = best
    findings += found
    lifetime = min(ask.asked_lifetime, policy.max_duration or MAX_LIFETIME)
    return _judged(findings, lifetime, policy.name)


def _judged(findings: list[Finding], lifetime: timedelta | None, policy: str | None) -> Judgement:
    ordered = tuple(sorted(findings, key=lambda f: not f.is_error))
    if any(f.is_error for f in ordered):
        return Judgement(ordered, None, policy)
    return Judgement(ordered, lifetime, policy)


def _ask_syntax(ask: PodCertificateAsk, paths: AskPaths, context: AskContext) -> list[Finding]:
    """What is wrong whatever the policies say: the authority, annotations, key type, lifetime."""
    found: list[Finding] = []
    known = context.authorities
    if known is not None and ask.authority not in known:
        candidates = sorted(signer_name(a) for a in known)
        found.append(
            error_finding(
                Category.INVALID_SPEC,
                paths.signer,
                f"names no PkiAuthority (signers: {listing(candidates)})"
                + _signer_suggestion(ask.authority, sorted(known)),
                ask.signer,
            )
        )
    for key in sorted(ask.annotations):
        if key.startswith(SIGNER_PREFIX) and key not in KNOWN_ANNOTATIONS:
            found.append(
                error_finding(
                    Category.INVALID_SPEC,
                    paths.annotations,
                    f"has a key pkiwarden does not know (known: {listing(KNOWN_ANNOTATIONS)})"
                    + did_you_mean(key, KNOWN_ANNOTATIONS),
                    key,
                )
            )
    for index, name in enumerate(requested_dns_names(ask.annotations)):
        if problem := dns_name_problem(name):
            path = f"{paths.annotation(DNS_NAMES_ANNOTATION)}[{index}]"
            found.append(error_finding(Category.INVALID_SPEC, path, problem, name))
    if ask.key_type not in KEY_TYPES:
        found.append(
            error_finding(
                Category.INVALID_SPEC,
                paths.key_type,
                f"is a key type pkiwarden does not sign (it signs {listing(list(KEY_TYPES))})"
                + key_type_fix(KEY_ALGORITHMS),
                ask.key_type,
            )
        )
    seconds = ask.asked_lifetime.total_seconds()
    if not MIN_LIFETIME.total_seconds() <= seconds <= MAX_LIFETIME.total_seconds():
        found.append(
            error_finding(
                Category.INVALID_SPEC,
                paths.lifetime,
                f"is out of range: at least {int(MIN_LIFETIME.total_seconds())} (1 hour), "
                f"at most {int(MAX_LIFETIME.total_seconds())} (91 days)",
                ask.max_expiration_seconds,
            )
        )
    return found


def _against_policy(
    policy: CompiledPolicy,
    ask: PodCertificateAsk,
    paths: AskPaths,
    context: AskContext,
) -> list[Finding]:
    """What ``policy`` (selecting the namespace) does not allow in the ask."""
    by = f"PkiPolicy {quoted(policy.name)}"
    found: list[Finding] = []
    authorities = policy.authorities
    known = context.authorities is None or ask.authority in context.authorities
    if ask.authority and known and ask.authority not in authorities:
        found.append(
            error_finding(
                Category.NOT_ALLOWED,
                paths.signer,
                f"names authority {quoted(ask.authority)}, which {by} does not allow "
                f"(allowedAuthorities: {listing(authorities)})"
                + _signer_suggestion(ask.authority, authorities),
                ask.signer,
            )
        )
    names = requested_dns_names(ask.annotations)
    if names:
        found += _names_against(policy, by, ask, names, paths=paths, context=context)
    found += _key_against(policy, by, ask, paths)
    if policy.max_duration is not None:
        if policy.max_duration < MIN_LIFETIME:
            found.append(
                error_finding(
                    Category.NOT_ALLOWED,
                    paths.lifetime,
                    f"cannot be met: {by} allows at most {policy.max_duration} (maxDuration) "
                    "and Pod certificates live at least 1 hour; ask the platform team",
                    ask.max_expiration_seconds,
                )
            )
        elif ask.asked_lifetime > policy.max_duration:
            seconds = int(policy.max_duration.total_seconds())
            found.append(
                warning_finding(
                    Category.ADVICE,
                    paths.lifetime,
                    f"is longer than {by} allows (maxDuration {policy.max_duration}); "
                    f"certificates are issued for {seconds} seconds",
                    ask.max_expiration_seconds,
                )
            )
    return found


def _names_against(
    policy: CompiledPolicy,
    by: str,
    ask: PodCertificateAsk,
    names: Sequence[str],
    *,
    paths: AskPaths,
    context: AskContext,
) -> list[Finding]:
    path = paths.annotation(DNS_NAMES_ANNOTATION)
    if not policy.allows_service(ask.service_account):
        return [
            error_finding(
                Category.NOT_ALLOWED,
                paths.service_account,
                f"is not allowed as a service name by {by} (allowed: "
                f"{listing(policy.service_names)}); the DNS names of {DNS_NAMES_ANNOTATION} "
                "are judged for the Pod's ServiceAccount, so run the Pod as an allowed one "
                "or ask for no DNS names",
                ask.service_account,
            )
        ]
    patterns = policy.dns_names_for(ask.service_account, ask.namespace)
    found = []
    for index, name in enumerate(names):
        if dns_name_problem(name) or dns_name_allowed(name, patterns):
            continue
        problem = f"is not allowed by {by} (allowed: {listing(patterns)})"
        if context.at_run_time:
            problem += f"; ask the platform team to allow it, or change {DNS_NAMES_ANNOTATION}"
        else:
            problem += did_you_mean(name, [p for p in patterns if not p.startswith("*.")])
        found.append(error_finding(Category.NOT_ALLOWED, f"{path}[{index}]", problem, name))
    return found


def _key_against(
    policy: CompiledPolicy, by: str, ask: PodCertificateAsk, paths: AskPaths
) -> list[Finding]:
    spec = KEY_TYPES.get(ask.key_type)
    if spec is None:
        return []
    algorithm, size = spec
    fix = key_type_fix(policy.key_algorithms, policy.min_rsa_size)
    if algorithm not in policy.key_algorithms:
        problem = (
            f"is an {algorithm} key, which {by} does not allow "
            f"(allowedKeyAlgorithms: {listing(policy.key_algorithms)}){fix}"
        )
        return [error_finding(Category.NOT_ALLOWED, paths.key_type, problem, ask.key_type)]
    if algorithm == "RSA" and size is not None and size < policy.min_rsa_size:
        problem = f"is smaller than {by} allows (minRSASize {policy.min_rsa_size}){fix}"
        return [error_finding(Category.NOT_ALLOWED, paths.key_type, problem, ask.key_type)]
    return []
