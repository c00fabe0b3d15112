"""Validation of a Pki: pure functions returning findings.

The webhook (at apply time), the issuer (before issuing) and ``pkiwarden lint``
(offline) all call this module, so a user gets the same words wherever a
problem surfaces. Nothing here does I/O: what is known about the cluster comes
in through :class:`Context`. Every input is treated as untrusted JSON; no input
makes these functions raise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from shared.defaults import apply_defaults, secret_name
from shared.durations import DurationError, format_duration, parse_duration
from shared.findings import Category, Finding
from shared.names import dns1035_label_problem, dns1123_subdomain_problem, dns_name_problem
from shared.policy import CompiledPolicy, compiled, dns_name_allowed, expand, selecting
from shared.schema import (
    DEFAULT_DNS_PATTERNS,
    KEY_ALGORITHMS,
    KEY_SIZES,
    MAX_DURATION,
    MIN_DURATION,
    MIN_RENEW_BEFORE,
    MIN_RENEWAL_GAP,
    PKI_SCHEMA,
    USAGES,
)
from shared.shapes import is_mapping
from shared.structure import check_structure
from shared.suggest import did_you_mean
from shared.validation.common import (
    DEFAULT_DURATION_SPAN,
    MAX_DURATION_SPAN,
    MIN_DURATION_SPAN,
    NOT_A_MAPPING,
    default_note,
    duplicate_entries,
    error_finding,
    grouped,
    invalid_finding,
    key_size_problem,
    listing,
    malformed_entries,
    mapping_field,
    most_telling,
    ordered,
    parsed_duration,
    parsed_ip,
    quoted,
    text_entries,
    text_field,
    warning_finding,
)

_MIN_RENEW_BEFORE = parse_duration(MIN_RENEW_BEFORE)
_MIN_RENEWAL_GAP = parse_duration(MIN_RENEWAL_GAP)
_WEAK_RSA_SIZE = 2048
_WEAK_RSA_AFTER = timedelta(days=365)
_RENEW_ADVICE_SHARE = 0.10
_OVER_GLOBAL_CAP = (
    f"is longer than {MAX_DURATION} (ten years), the longest pkiwarden issues for any Pki "
    "whatever its PkiPolicy allows"
)


@dataclass(frozen=True)
class SecretInfo:
    """What validation may know about an existing Secret: metadata only, never data."""

    name: str
    managed_by_pkiwarden: bool  # label app.kubernetes.io/managed-by=pkiwarden
    owner_pki: str | None  # value of label pkiwarden.dev/pki, if any


@dataclass(frozen=True)
class Context:
    """What is known about the cluster around a Pki; everything optional."""

    policies: Sequence[Mapping[str, Any]] = ()
    namespace_labels: Mapping[str, str] | None = None  # None: unknown, taken as no labels
    other_pkis: Sequence[Mapping[str, Any]] = ()  # the Pki itself may appear; skipped by name
    secrets: Mapping[str, SecretInfo] | None = None  # None: unknown, no Secret warning
    # For a caller that may not know the namespace's labels (lint): with namespace_labels
    # None, policies that select by label are checked as if they select the namespace,
    # with a warning that ends with this hint (how to make the labels known). None: unknown
    # labels count as no labels, so nothing is ever granted on a guess (webhook, issuer).
    unknown_labels_hint: str | None = None
    # The issuer re-checking an admitted Pki: a policy finding is not a typo, so it says
    # what the policy allows now and who can fix it, never "did you mean".
    at_run_time: bool = False
    # Whether pkiwarden may write Secrets in the namespace (deploy/tenants applied there).
    # None: unknown (lint; the issuer, which learns it from the API server's answer).
    onboarded: bool | None = None
    # The names of the PkiAuthorities that exist. None: unknown (lint without them, a cache
    # not synced yet), and then only the policies' allowedAuthorities are checked.
    authorities: frozenset[str] | None = None


def validate_pki(pki: Any, namespace: str, context: Context) -> list[Finding]:
    """All findings for ``pki`` in ``namespace``: errors first, in field order.

    Defaults are applied before the semantic rules, so a default that a policy
    does not allow is reported (and said to be the default).
    """
    if not is_mapping(pki):
        return [invalid_finding("object", NOT_A_MAPPING)]
    namespace = namespace if isinstance(namespace, str) else ""
    given = mapping_field(pki, "spec")
    name = text_field(mapping_field(pki, "metadata"), "name") or ""
    judges = _judges(given, namespace, context)
    spec = mapping_field(apply_defaults(_duration_defaulted(pki, judges), namespace), "spec")
    accepted = _accepted_duration(spec, judges)
    structural = [
        _allowed_here(_empty_dns_names(finding, spec, namespace), judges)
        for finding in check_structure(pki, PKI_SCHEMA)
    ]
    semantic = [
        *_pki_syntax(given, spec, accepted),
        *_pki_policy(given, spec, namespace, context, judges),
        *_unknown_authority(given, spec, context, judges),
        *_secret_conflicts(given, spec, name, namespace, context),
        *_not_onboarded(namespace, context),
        *_pki_advice(given, spec, accepted, judges.key_algorithms),
    ]
    return ordered(most_telling(structural, semantic), PKI_SCHEMA)


@dataclass(frozen=True)
class _Judges:
    """The policies that judge a Pki: chosen once per review, read by several rules.

    ``selecting``: every policy that selects the namespace (or, for a caller that
    cannot know the labels, may select it; ``assumed`` then says so).
    ``deciding``: those that allow the service name, or all of ``selecting``
    when none does, so the rest of the Pki is still judged in the same answer.
    """

    selecting: tuple[CompiledPolicy, ...] = ()
    assumed: Finding | None = None
    deciding: tuple[CompiledPolicy, ...] = ()

    @property
    def duration_bound(self) -> timedelta:
        """The longest duration one of the deciding policies allows (the global cap at most)."""
        bounds = [p.max_duration for p in self.deciding]
        if not bounds or None in bounds:
            return MAX_DURATION_SPAN
        return min(MAX_DURATION_SPAN, max(b for b in bounds if b is not None))

    @property
    def key_algorithms(self) -> tuple[str, ...]:
        """The key algorithms the namespace may use, in the schema's order."""
        if not self.deciding:
            return KEY_ALGORITHMS
        return tuple(a for a in KEY_ALGORITHMS if any(a in p.key_algorithms for p in self.deciding))


def _judges(given: Mapping[str, Any], namespace: str, context: Context) -> _Judges:
    service = text_field(given, "serviceName")
    if service is None or dns1035_label_problem(service):
        return _Judges()
    policies = context.policies if isinstance(context.policies, Sequence) else ()
    chosen = selecting(policies, namespace, context.namespace_labels)
    assumed = None
    hint = context.unknown_labels_hint
    if not chosen and context.namespace_labels is None and isinstance(hint, str):
        chosen = _selecting_by_label(policies)
        if chosen:
            assumed = _unknown_labels(chosen, namespace, hint)
    allowing = tuple(policy for policy in chosen if policy.allows_service(service))
    return _Judges(tuple(chosen), assumed, allowing or tuple(chosen))


def _duration_defaulted(pki: Mapping[str, Any], judges: _Judges) -> Mapping[str, Any]:
    """``pki`` with spec.duration set to the policy's maxDuration when it leaves the field
    out and that bound is below the default: a default the policy refuses helps nobody."""
    spec = pki.get("spec")
    bound = max(judges.duration_bound, MIN_DURATION_SPAN)  # a broken policy never shortens it more
    if not is_mapping(spec) or "duration" in spec or bound >= DEFAULT_DURATION_SPAN:
        return pki
    return {**pki, "spec": {**spec, "duration": format_duration(bound)}}


def policy_defaulted(pki: Mapping[str, Any], namespace: str, context: Context) -> Mapping[str, Any]:
    """``pki`` with the defaults that depend on its policy filled in (spec.duration), for
    the issuer to issue exactly what validation judged; the same object when there are none."""
    return _duration_defaulted(pki, _judges(mapping_field(pki, "spec"), namespace, context))


def _accepted_duration(spec: Mapping[str, Any], judges: _Judges) -> timedelta | None:
    """The duration the Pki will have once its duration findings are fixed (None: unreadable).

    Hints about renewBefore are computed from it, so following every hint of one message
    gives an accepted Pki, never a third message.
    """
    duration = parsed_duration(text_field(spec, "duration"))
    if duration is None:
        return None
    return max(MIN_DURATION_SPAN, min(duration, judges.duration_bound))


def _allowed_here(finding: Finding, judges: _Judges) -> Finding:
    """An unknown key algorithm: list the ones this namespace's policy allows, not all."""
    if finding.path != "spec.privateKey.algorithm" or not judges.deciding:
        return finding
    if not isinstance(finding.value, str) or not finding.problem.startswith("is not one of"):
        return finding
    allowed = judges.key_algorithms
    return invalid_finding(
        finding.path,
        f"is not a key algorithm; allowed in this namespace: {listing(allowed)}"
        + did_you_mean(finding.value, allowed),
        finding.value,
    )


def _empty_dns_names(finding: Finding, spec: Mapping[str, Any], namespace: str) -> Finding:
    """``dnsNames: []`` would be a certificate without a name: say which names leaving
    the field out gives, since that is almost always what was meant."""
    if finding.path != "spec.dnsNames" or spec.get("dnsNames") != []:
        return finding
    service = text_field(spec, "serviceName") or "<serviceName>"
    defaults = [
        expand(pattern, service, namespace or "<namespace>") for pattern in DEFAULT_DNS_PATTERNS
    ]
    return invalid_finding(
        "spec.dnsNames",
        "would give a certificate without a name; leave the field out for the default "
        f"names ({listing(defaults)}) or list the names",
        [],
    )


def _pki_syntax(
    given: Mapping[str, Any], spec: Mapping[str, Any], accepted: timedelta | None
) -> Iterator[Finding]:
    service = text_field(given, "serviceName")
    problem = dns1035_label_problem(service) if service is not None else None
    if problem:
        yield invalid_finding("spec.serviceName", problem, service)
    secret = text_field(spec, "secretName")
    problem = dns1123_subdomain_problem(secret) if secret is not None else None
    if problem:
        note = default_note(given, "secretName")
        fix = "; set spec.secretName" if note else ""
        yield invalid_finding("spec.secretName", f"{note}{problem}{fix}", secret)
    dns_names = text_entries(given, "dnsNames")
    yield from malformed_entries("spec.dnsNames", dns_names, dns_name_problem)
    yield from duplicate_entries("spec.dnsNames", dns_names)
    ips = text_entries(given, "ipAddresses")
    for index, text in ips:
        if parsed_ip(text) is None:
            yield invalid_finding(f"spec.ipAddresses[{index}]", _ip_problem(text), text)
    yield from duplicate_entries(
        "spec.ipAddresses", ((i, t) for i, t in ips if parsed_ip(t)), parsed_ip
    )
    yield from _duration_rules(given, spec, accepted)
    yield from _key_rules(given, spec)
    yield from duplicate_entries("spec.usages", text_entries(given, "usages"))
    authority = text_field(given, "authority")
    if authority is not None and (problem := dns1123_subdomain_problem(authority)):
        yield invalid_finding(
            "spec.authority", f"is not a PkiAuthority name: it {problem}", authority
        )


def _ip_problem(text: str) -> str:
    """Why ``text`` is not an IP address; a range gets pointed to where ranges belong."""
    if _is_network(text):
        return (
            "is a range, not an address; list the addresses one by one "
            "(ranges belong in a PkiPolicy's spec.allowedIPRanges)"
        )
    return "is not an IPv4 or IPv6 address"


def _is_network(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _duration_rules(
    given: Mapping[str, Any], spec: Mapping[str, Any], accepted: timedelta | None
) -> Iterator[Finding]:
    duration_text = text_field(given, "duration")
    duration = parsed_duration(text_field(spec, "duration"))
    if duration_text is not None:
        try:
            parse_duration(duration_text)
        except DurationError as error:
            yield invalid_finding("spec.duration", str(error), duration_text)
    if duration is not None and duration_text is not None:
        if duration < MIN_DURATION_SPAN:
            yield invalid_finding(
                "spec.duration", f"is shorter than the minimum, {MIN_DURATION}", duration_text
            )
        elif duration > MAX_DURATION_SPAN:
            yield invalid_finding("spec.duration", _OVER_GLOBAL_CAP, duration_text)
    renew_text = text_field(given, "renewBefore")
    if renew_text is None:
        return
    try:
        renew = parse_duration(renew_text)
    except DurationError as error:
        yield invalid_finding("spec.renewBefore", str(error), renew_text)
        return
    if renew < _MIN_RENEW_BEFORE:
        yield invalid_finding(
            "spec.renewBefore", f"is shorter than the minimum, {MIN_RENEW_BEFORE}", renew_text
        )
    elif duration is None or accepted is None:
        return
    elif renew >= accepted:
        yield invalid_finding(
            "spec.renewBefore",
            f"must be shorter than spec.duration ({_duration_words(duration, accepted)}); "
            f'try "{_third(accepted)}"',
            renew_text,
        )
    elif accepted - renew < _MIN_RENEWAL_GAP:
        yield invalid_finding(
            "spec.renewBefore",
            f"would renew the certificate {format_duration(accepted - renew)} after issuing it "
            f"(spec.duration {_duration_words(duration, accepted)}); at least {MIN_RENEWAL_GAP} "
            f'must lie between; try "{_third(accepted)}"',
            renew_text,
        )


def _third(duration: timedelta) -> str:
    """The default renewBefore for ``duration``: the hint that always fits every bound."""
    return format_duration(timedelta(seconds=int(duration.total_seconds() // 3)))


def _duration_words(duration: timedelta, accepted: timedelta) -> str:
    """The duration a renewBefore is measured against, saying when it is the fixed one."""
    if duration == accepted:
        return format_duration(duration)
    which = "longest" if accepted < duration else "shortest"
    return f"{format_duration(accepted)}, the {which} allowed"


def _key_rules(given: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[Finding]:
    size = mapping_field(given, "privateKey").get("size")
    algorithm = text_field(mapping_field(spec, "privateKey"), "algorithm")
    if size is None or algorithm not in KEY_SIZES or isinstance(size, bool):
        return
    if not isinstance(size, int | float):
        return
    if problem := key_size_problem(algorithm, size):
        yield invalid_finding("spec.privateKey.size", problem, size)


_FIX = "; ask the platform team to allow it, or change {field}"


@lru_cache(maxsize=1024)
def _policy_label(name: str) -> str:
    return f"PkiPolicy {quoted(name)}"


def _pki_policy(
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    namespace: str,
    context: Context,
    judges: _Judges,
) -> list[Finding]:
    service = text_field(spec, "serviceName")
    if service is None or dns1035_label_problem(service):
        return []
    chosen = judges.selecting
    assumed = [judges.assumed] if judges.assumed is not None else []
    if not chosen:
        return [
            error_finding(
                Category.NOT_ALLOWED,
                "metadata.namespace",
                "is not selected by any PkiPolicy, so no certificate can be issued there; "
                "ask the platform team to add it to a PkiPolicy",
                namespace,
            )
        ]
    return assumed + _against_chosen(chosen, given, spec, service, namespace, context=context)


def _selecting_by_label(policies: Sequence[object]) -> list[CompiledPolicy]:
    """The policies that may select a namespace whose labels are not known."""
    maybe = [p for p in map(compiled, policies) if p.selector is not None and p.selector.valid]
    return sorted(maybe, key=lambda p: p.name)


def _unknown_labels(chosen: Sequence[CompiledPolicy], namespace: str, hint: str) -> Finding:
    names = ", ".join(quoted(p.name) for p in chosen)
    return warning_finding(
        Category.NOT_ALLOWED,
        "metadata.namespace",
        f"has labels that are not known, so it cannot be told whether it is selected by "
        f"PkiPolicy {names} (namespaceSelector); checked as if it is{hint}",
        namespace,
    )


def _against_chosen(
    chosen: Sequence[CompiledPolicy],
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    service: str,
    namespace: str,
    *,
    context: Context,
) -> list[Finding]:
    allowing = [policy for policy in chosen if policy.allows_service(service)]
    if not allowing:
        if context.at_run_time:
            now = "; ".join(
                f"PkiPolicy {quoted(p.name)} now allows: {listing(p.service_names)}" for p in chosen
            )
            problem = f"is not allowed in namespace {quoted(namespace)} ({now})"
            problem += _FIX.format(field="spec.serviceName")
        else:
            by_policy = "; ".join(
                f"PkiPolicy {quoted(p.name)}: {listing(p.service_names)}" for p in chosen
            )
            candidates = [name for p in chosen for name in p.service_names]
            problem = f"is not allowed in namespace {quoted(namespace)} (allowed by {by_policy})"
            problem += did_you_mean(service, candidates)
        refused = error_finding(Category.NOT_ALLOWED, "spec.serviceName", problem, service)
        # Every finding at once: what no selecting policy allows in the rest of the Pki
        # is said now, not after the service name is fixed. Names are left out: they are
        # judged against patterns that expand the service name, which is the mistake.
        rest = _fewest(chosen, given, spec, service, namespace, context=context, names=False)
        return [refused, *rest]
    return _fewest(allowing, given, spec, service, namespace, context=context, names=True)


def _fewest(
    policies: Sequence[CompiledPolicy],
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    service: str,
    namespace: str,
    *,
    context: Context,
    names: bool,
) -> list[Finding]:
    """The findings of the policy that refuses least: one policy must allow all of it."""
    best: list[Finding] | None = None
    for policy in policies:
        found = list(
            _against_policy(policy, given, spec, service, namespace, context=context, names=names)
        )
        if not found:
            return []
        if best is None or len(found) < len(best):
            best = found
    return best or []


def _against_policy(
    policy: CompiledPolicy,
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    service: str,
    namespace: str,
    *,
    context: Context,
    names: bool = True,
) -> Iterator[Finding]:
    """What ``policy`` (which allows the service name) does not allow in the rest of the Pki.

    ``names`` False: leave out the DNS names and the commonName (the service name is
    refused, and the names' patterns are expanded with it).
    """
    # Messages are composed only for what is refused: most reviews refuse nothing.
    by = _policy_label(policy.name)
    patterns = policy.dns_names_for(service, namespace)
    refused = [
        (index, name)
        for index, name in text_entries(spec, "dnsNames")
        if names and not dns_name_problem(name) and not dns_name_allowed(name, patterns)
    ]
    if refused:
        note = default_note(given, "dnsNames")
        allowed = (
            f"now allows: {listing(patterns)}"
            if context.at_run_time
            else f"allowed: {listing(patterns)}"
        )
    if len(refused) == 1:
        index, name = refused[0]
        problem = f"{note}is not allowed by {by} ({allowed})"
        if context.at_run_time:
            problem += _FIX.format(field="spec.dnsNames")
        else:
            problem += did_you_mean(name, [p for p in patterns if not p.startswith("*.")])
        yield error_finding(Category.NOT_ALLOWED, f"spec.dnsNames[{index}]", problem, name)
    elif refused:
        rule = f"{note}are not allowed by {by} ({allowed})"
        if context.at_run_time:
            rule += _FIX.format(field="spec.dnsNames")
        yield grouped("spec.dnsNames", "DNS names", refused, rule)
    refused = [
        (index, text)
        for index, text in text_entries(spec, "ipAddresses")
        if (address := parsed_ip(text)) is not None and not policy.allows_ip(address)
    ]
    if refused:
        ip_rule = (
            f"{by} allows no IP addresses; remove them"
            if not policy.ip_ranges
            else f"{by} (allowed ranges: {listing(str(n) for n in policy.ip_ranges)})"
        )
    if len(refused) == 1:
        index, text = refused[0]
        yield error_finding(
            Category.NOT_ALLOWED,
            f"spec.ipAddresses[{index}]",
            f"is not allowed: {ip_rule.replace('remove them', 'remove it')}",
            text,
        )
    elif refused:
        yield grouped("spec.ipAddresses", "IP addresses", refused, f"are not allowed: {ip_rule}")
    common = text_field(given, "commonName")
    if names and common is not None and not dns_name_allowed(common, patterns):
        address = parsed_ip(common)
        if address is None or not policy.allows_ip(address):
            problem = f"is not allowed by {by} (allowed: {listing(patterns)})"
            yield error_finding(Category.NOT_ALLOWED, "spec.commonName", problem, common)
    duration_text = text_field(spec, "duration")
    duration = parsed_duration(duration_text)
    if policy.max_duration is not None and duration is not None and duration > policy.max_duration:
        bound = format_duration(policy.max_duration)
        problem = (
            f"{default_note(given, 'duration')}is longer than {by} allows (maxDuration {bound})"
        )
        yield error_finding(
            Category.NOT_ALLOWED,
            "spec.duration",
            problem + f'; set it to "{bound}" or less',
            duration_text,
        )
    algorithm = text_field(mapping_field(spec, "privateKey"), "algorithm")
    if algorithm in KEY_ALGORITHMS and algorithm not in policy.key_algorithms:
        note = "" if "algorithm" in mapping_field(given, "privateKey") else "(the default) "
        problem = f"{note}is not allowed by {by} (allowed: {listing(policy.key_algorithms)})"
        yield error_finding(Category.NOT_ALLOWED, "spec.privateKey.algorithm", problem, algorithm)
    yield from _policy_key_size(policy, given, spec, by)
    yield from _policy_usages(policy, given, spec, by, at_run_time=context.at_run_time)
    yield from _policy_authority(policy, given, spec, by, context)


def _policy_key_size(
    policy: CompiledPolicy, given: Mapping[str, Any], spec: Mapping[str, Any], by: str
) -> Iterator[Finding]:
    """An RSA key smaller than the policy's minRSASize; the fix names the sizes that pass."""
    key = mapping_field(spec, "privateKey")
    size = key.get("size")
    if text_field(key, "algorithm") != "RSA" or not isinstance(size, int) or isinstance(size, bool):
        return
    if size >= policy.min_rsa_size:
        return
    note = "" if "size" in mapping_field(given, "privateKey") else "(the default) "
    bigger = [str(s) for s in KEY_SIZES["RSA"] if s >= policy.min_rsa_size]
    fix = f"; set it to {' or '.join(bigger)}" if bigger else "; use another algorithm"
    problem = f"{note}is smaller than {by} allows (minRSASize {policy.min_rsa_size}){fix}"
    yield error_finding(Category.NOT_ALLOWED, "spec.privateKey.size", problem, size)


def _policy_usages(
    policy: CompiledPolicy,
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    by: str,
    *,
    at_run_time: bool,
) -> Iterator[Finding]:
    """Usages the policy does not grant (code signing, OCSP signing, ...), with its list."""
    refused = [
        (index, usage)
        for index, usage in text_entries(spec, "usages")
        if usage in USAGES and usage not in policy.usages
    ]
    if not refused:
        return
    note = default_note(given, "usages")
    allowed = f"{'now allows' if at_run_time else 'allowed'}: {listing(policy.usages)}"
    fix = _FIX.format(field="spec.usages") if at_run_time else "; remove it from spec.usages"
    if len(refused) == 1:
        index, usage = refused[0]
        problem = f"{note}is not allowed by {by} ({allowed}){fix}"
        yield error_finding(Category.NOT_ALLOWED, f"spec.usages[{index}]", problem, usage)
        return
    fix = fix.replace("remove it", "remove them")
    yield grouped(
        "spec.usages", "usages", refused, f"{note}are not allowed by {by} ({allowed}){fix}"
    )


def _policy_authority(
    policy: CompiledPolicy,
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    by: str,
    context: Context,
) -> Iterator[Finding]:
    """An authority the policy does not list in allowedAuthorities, with its list.

    An authority that does not exist is :func:`_unknown_authority`'s to say (one story
    per field), except a defaulted one at apply time, which is only warned about there.
    """
    authority = text_field(spec, "authority")
    if authority is None or policy.allows_authority(authority):
        return
    note = default_note(given, "authority")
    missing = context.authorities is not None and authority not in context.authorities
    if missing and (context.at_run_time or not note):
        return
    if context.at_run_time:
        allowed = f"now allows: {listing(policy.authorities)}"
        fix = _FIX.format(field="spec.authority")
    else:
        allowed = f"allowed: {listing(policy.authorities)}"
        fix = did_you_mean(authority, policy.authorities)
    problem = f"{note}is not allowed by {by} ({allowed}){fix}"
    yield error_finding(Category.NOT_ALLOWED, "spec.authority", problem, authority)


def usable_authorities(
    policies: Sequence[CompiledPolicy], known: frozenset[str] | None
) -> tuple[str, ...]:
    """The authorities ``policies`` allow that exist (all they allow when none are known),
    in the policies' order, each once: what a namespace may put in spec.authority."""
    allowed = dict.fromkeys(name for policy in policies for name in policy.authorities)
    return tuple(name for name in allowed if known is None or name in known)


def _unknown_authority(
    given: Mapping[str, Any], spec: Mapping[str, Any], context: Context, judges: _Judges
) -> Iterator[Finding]:
    """A spec.authority that names no PkiAuthority, with the ones the namespace may use.

    At apply time only an authority the Pki names is denied: one left out is the
    default, which a platform team may create after the Pki (an install applied in one
    go), so the Pki is admitted with a warning and waits. At run time nothing can be
    signed either way, and a typo is not the likely cause: no ``did you mean``.
    """
    authority = text_field(spec, "authority")
    known = context.authorities
    if authority is None or known is None or authority in known:
        return
    if dns1123_subdomain_problem(authority):
        return
    usable = usable_authorities(judges.deciding, known)
    note = default_note(given, "authority")
    may_use = f"this namespace may use: {listing(usable)}"
    if context.at_run_time:
        problem = (
            f"{note}is not a PkiAuthority ({may_use}); ask the platform team to create it, "
            "or change spec.authority"
        )
        yield error_finding(Category.UNKNOWN_AUTHORITY, "spec.authority", problem, authority)
    elif note:
        problem = f"{note}is not a PkiAuthority yet; nothing is issued until it exists ({may_use})"
        yield warning_finding(Category.UNKNOWN_AUTHORITY, "spec.authority", problem, authority)
    else:
        problem = f"is not a PkiAuthority ({may_use})" + did_you_mean(authority, usable)
        yield error_finding(Category.UNKNOWN_AUTHORITY, "spec.authority", problem, authority)


def _secret_conflicts(
    given: Mapping[str, Any], spec: Mapping[str, Any], name: str, namespace: str, context: Context
) -> Iterator[Finding]:
    secret = text_field(spec, "secretName")
    if secret is None:
        return
    note = default_note(given, "secretName")
    others = context.other_pkis if isinstance(context.other_pkis, Sequence) else ()
    users = sorted(
        {
            other_name
            for other in others
            if isinstance(other, Mapping)
            and (other_name := text_field(mapping_field(other, "metadata"), "name") or "") != name
            and secret_name(other) == secret
        }
    )
    if users:
        owners = ", ".join(quoted(user) for user in users)
        yield error_finding(
            Category.SECRET_CONFLICT,
            "spec.secretName",
            f"{note}is already the Secret of Pki {owners} in this namespace; "
            "choose another spec.secretName",
            secret,
        )
        return
    info = context.secrets.get(secret) if is_mapping(context.secrets) else None
    if not isinstance(info, SecretInfo) or (info.managed_by_pkiwarden and info.owner_pki == name):
        return
    whose = (
        "exists and is not managed by pkiwarden"
        if not info.managed_by_pkiwarden
        else f"belongs to Pki {quoted(info.owner_pki or '')}"
    )
    # No "(the default)" here: the warning must stay short enough to be one readable line.
    yield warning_finding(
        Category.SECRET_CONFLICT,
        "spec.secretName",
        f"{whose}; issuance fails until it is removed or renamed",
        secret,
    )


def onboarding_fix(namespace: str) -> str:
    """How a namespace is onboarded, said the same at apply time and in the issuer's Events."""
    return f"a cluster admin runs: kubectl apply -n {namespace} -f deploy/tenants/"


def _not_onboarded(namespace: str, context: Context) -> Iterator[Finding]:
    if context.onboarded is False and namespace:
        yield warning_finding(
            Category.ADVICE,
            "metadata.namespace",
            f"is not onboarded; {onboarding_fix(namespace)}",
            namespace,
        )


def _pki_advice(
    given: Mapping[str, Any],
    spec: Mapping[str, Any],
    accepted: timedelta | None,
    algorithms: Sequence[str],
) -> Iterator[Finding]:
    algorithm = text_field(mapping_field(spec, "privateKey"), "algorithm")
    for index, usage in text_entries(given, "usages"):
        if usage == "key encipherment" and algorithm in ("ECDSA", "Ed25519"):
            yield warning_finding(
                Category.ADVICE,
                f"spec.usages[{index}]",
                f"is for RSA key exchange; an {algorithm} key cannot encipher keys, and strict "
                "clients refuse such a certificate; remove it",
                usage,
            )
    common = text_field(given, "commonName")
    dns_names = {text for _, text in text_entries(spec, "dnsNames")}
    ips = {text for _, text in text_entries(spec, "ipAddresses")}
    if common is not None and common not in dns_names and common not in ips:
        yield warning_finding(
            Category.ADVICE,
            "spec.commonName",
            "is not among spec.dnsNames; it will be added to them",
            common,
        )
    duration = parsed_duration(text_field(spec, "duration"))
    key = mapping_field(spec, "privateKey")
    weak = key.get("algorithm") == "RSA" and key.get("size") == _WEAK_RSA_SIZE
    if weak and duration is not None and duration > _WEAK_RSA_AFTER:
        note = "" if "size" in mapping_field(given, "privateKey") else "(the default) "
        yield warning_finding(
            Category.ADVICE,
            "spec.privateKey.size",
            f"{note}is weak for a certificate valid over a year; use 3072"
            + (" or ECDSA" if "ECDSA" in algorithms else ""),
            _WEAK_RSA_SIZE,
        )
    renew_text = text_field(given, "renewBefore")
    renew = parsed_duration(renew_text)
    if renew is not None and accepted is not None and renew < accepted * _RENEW_ADVICE_SHARE:
        yield warning_finding(
            Category.ADVICE,
            "spec.renewBefore",
            f"is under 10% of the duration, little time to fix a failed renewal; "
            f'try "{_third(accepted)}"',
            renew_text,
        )


__all__ = [
    "Context",
    "SecretInfo",
    "onboarding_fix",
    "policy_defaulted",
    "usable_authorities",
    "validate_pki",
]
