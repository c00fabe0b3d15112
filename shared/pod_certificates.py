"""Pod certificates: what a ``podCertificate`` ask for a ``pkiwarden.dev/`` signer may get.

One judgement for both places that see such an ask: the webhook, reading the
projected volume source of a Pod (or a Pod template) at apply time, and the
issuer, reading the PodCertificateRequest the kubelet made from it. Both get
the same findings in the same words as a Pki's (``shared.findings``); only the
field paths differ, so each caller hands in where its fields live.

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

from shared.findings import Category, Finding, Severity
from shared.names import dns_name_problem
from shared.policy import CompiledPolicy, dns_name_allowed, selecting
from shared.schema import KEY_ALGORITHMS, KEY_SIZES
from shared.suggest import closest, did_you_mean

SIGNER_PREFIX = "pkiwarden.dev/"
DNS_NAMES_ANNOTATION = "pkiwarden.dev/dns-names"
KNOWN_ANNOTATIONS = (DNS_NAMES_ANNOTATION,)
DEFAULT_AUTHORITY = "default"
DEFAULT_TRUST_DOMAIN = "cluster.local"

# The API server's bounds for maxExpirationSeconds and its default (certificates.k8s.io/v1).
MIN_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(seconds=7862400)
DEFAULT_MAX_EXPIRATION_SECONDS = 86400

# The kubelet's key types, in the order a fix suggests them, as pkiwarden's key specs.
# ECDSAP521 is a kubelet key type pkiwarden does not sign (no Pki may ask for it either).
KEY_TYPES: Mapping[str, tuple[str, int | None]] = {
    "ECDSAP256": ("ECDSA", 256),
    "ECDSAP384": ("ECDSA", 384),
    "ED25519": ("Ed25519", None),
    "RSA3072": ("RSA", 3072),
    "RSA4096": ("RSA", 4096),
}
KUBELET_KEY_TYPES = ("RSA3072", "RSA4096", "ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519")


def authority_of(signer: str) -> str | None:
    """The PkiAuthority a signer name asks for; None if it is not one of pkiwarden's."""
    if not signer.startswith(SIGNER_PREFIX):
        return None
    return signer[len(SIGNER_PREFIX) :]


def signer_name(authority: str) -> str:
    return SIGNER_PREFIX + authority


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """The Pod's identity as a URI SAN: its ServiceAccount, as SPIFFE's Kubernetes convention."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def requested_dns_names(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The names of ``pkiwarden.dev/dns-names``: comma-separated, blanks ignored."""
    text = annotations.get(DNS_NAMES_ANNOTATION, "")
    return tuple(name.strip() for name in text.split(",") if name.strip())


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


def _q(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, default=str)


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "(none)"


def _signer_suggestion(authority: str, candidates: Sequence[str]) -> str:
    """``did you mean`` for a signer, judged on the authority names (the prefix is shared)."""
    match = closest(authority, candidates)
    return "" if match is None else f"; did you mean {_q(signer_name(match))}?"


def _error(category: Category, path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.ERROR, category, path, problem, value)


def _warning(path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.WARNING, Category.ADVICE, path, problem, value)


def allowed_authorities(policy: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.allowedAuthorities`` of a PkiPolicy; ``[default]`` when left out."""
    spec = policy.get("spec") if isinstance(policy, Mapping) else None
    given = spec.get("allowedAuthorities") if isinstance(spec, Mapping) else None
    if not isinstance(given, list):
        return (DEFAULT_AUTHORITY,)
    return tuple(a for a in given if isinstance(a, str))


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
            _error(
                Category.NOT_ALLOWED,
                "metadata.namespace",
                "is not selected by any PkiPolicy, so no Pod certificate can be issued there; "
                "ask the platform team to add it to a PkiPolicy",
                ask.namespace,
            )
        )
        return _judged(findings, None, None)
    raw = {_policy_name(p): p for p in context.policies if isinstance(p, Mapping)}
    best: tuple[list[Finding], CompiledPolicy] | None = None
    for policy in chosen:
        found = list(_against_policy(policy, raw.get(policy.name, {}), ask, paths, context))
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


def _policy_name(policy: Mapping[str, Any]) -> str:
    return str((policy.get("metadata") or {}).get("name") or "")


def _ask_syntax(ask: PodCertificateAsk, paths: AskPaths, context: AskContext) -> list[Finding]:
    """What is wrong whatever the policies say: the authority, annotations, key type, lifetime."""
    found: list[Finding] = []
    known = context.authorities
    if known is not None and ask.authority not in known:
        candidates = sorted(signer_name(a) for a in known)
        found.append(
            _error(
                Category.INVALID_SPEC,
                paths.signer,
                f"names no PkiAuthority (signers: {_listing(candidates)})"
                + _signer_suggestion(ask.authority, sorted(known)),
                ask.signer,
            )
        )
    for key in sorted(ask.annotations):
        if key.startswith(SIGNER_PREFIX) and key not in KNOWN_ANNOTATIONS:
            found.append(
                _error(
                    Category.INVALID_SPEC,
                    paths.annotations,
                    f"has a key pkiwarden does not know (known: {_listing(KNOWN_ANNOTATIONS)})"
                    + did_you_mean(key, KNOWN_ANNOTATIONS),
                    key,
                )
            )
    for index, name in enumerate(requested_dns_names(ask.annotations)):
        if problem := dns_name_problem(name):
            path = f"{paths.annotation(DNS_NAMES_ANNOTATION)}[{index}]"
            found.append(_error(Category.INVALID_SPEC, path, problem, name))
    if ask.key_type not in KEY_TYPES:
        found.append(
            _error(
                Category.INVALID_SPEC,
                paths.key_type,
                f"is a key type pkiwarden does not sign (it signs {_listing(list(KEY_TYPES))})"
                + key_type_fix(KEY_ALGORITHMS),
                ask.key_type,
            )
        )
    seconds = ask.asked_lifetime.total_seconds()
    if not MIN_LIFETIME.total_seconds() <= seconds <= MAX_LIFETIME.total_seconds():
        found.append(
            _error(
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
    raw: Mapping[str, Any],
    ask: PodCertificateAsk,
    paths: AskPaths,
    context: AskContext,
) -> list[Finding]:
    """What ``policy`` (selecting the namespace) does not allow in the ask."""
    by = f"PkiPolicy {_q(policy.name)}"
    found: list[Finding] = []
    authorities = allowed_authorities(raw)
    known = context.authorities is None or ask.authority in context.authorities
    if ask.authority and known and ask.authority not in authorities:
        found.append(
            _error(
                Category.NOT_ALLOWED,
                paths.signer,
                f"names authority {_q(ask.authority)}, which {by} does not allow "
                f"(allowedAuthorities: {_listing(authorities)})"
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
                _error(
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
                _warning(
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
            _error(
                Category.NOT_ALLOWED,
                paths.service_account,
                f"is not allowed as a service name by {by} (allowed: "
                f"{_listing(policy.service_names)}); the DNS names of {DNS_NAMES_ANNOTATION} "
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
        problem = f"is not allowed by {by} (allowed: {_listing(patterns)})"
        if context.at_run_time:
            problem += f"; ask the platform team to allow it, or change {DNS_NAMES_ANNOTATION}"
        else:
            problem += did_you_mean(name, [p for p in patterns if not p.startswith("*.")])
        found.append(_error(Category.NOT_ALLOWED, f"{path}[{index}]", problem, name))
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
            f"is a {algorithm} key, which {by} does not allow "
            f"(allowedKeyAlgorithms: {_listing(policy.key_algorithms)}){fix}"
        )
        return [_error(Category.NOT_ALLOWED, paths.key_type, problem, ask.key_type)]
    if algorithm == "RSA" and size is not None and size < policy.min_rsa_size:
        problem = f"is smaller than {by} allows (minRSASize {policy.min_rsa_size}){fix}"
        return [_error(Category.NOT_ALLOWED, paths.key_type, problem, ask.key_type)]
    if size is not None and size not in (KEY_SIZES.get(algorithm) or ()):
        return [_error(Category.INVALID_SPEC, paths.key_type, "is not a size pkiwarden signs")]
    return []
