"""Validation of a PkiPolicy: pure functions returning findings.

A platform team reads these at apply time (the webhook) and in CI (``pkiwarden
lint``); the pattern and range checks are also what a Pki's names are later
matched with, so a policy that passes here can be compiled and matched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from shared.durations import DurationError, format_duration, parse_duration
from shared.findings import Category, Finding
from shared.names import (
    dns1035_label_problem,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    dns_name_problem,
    label_key_problem,
    label_value_problem,
)
from shared.schema import (
    DEFAULT_DURATION,
    DNS_PATTERN_PLACEHOLDERS,
    MAX_DURATION,
    MIN_DURATION,
    PKI_POLICY_SCHEMA,
)
from shared.structure import check_structure, child_path
from shared.suggest import did_you_mean
from shared.validation.common import (
    DEFAULT_DURATION_SPAN,
    MAX_DURATION_SPAN,
    MIN_DURATION_SPAN,
    NOT_A_MAPPING,
    duplicate_entries,
    invalid_finding,
    malformed_entries,
    mapping_field,
    most_telling,
    ordered,
    parsed_ip,
    quoted,
    text_entries,
    text_field,
    warning_finding,
)


def validate_policy(policy: Any) -> list[Finding]:
    """All findings for a PkiPolicy: errors first, in field order."""
    if not isinstance(policy, Mapping):
        return [invalid_finding("object", NOT_A_MAPPING)]
    structural = check_structure(policy, PKI_POLICY_SCHEMA)
    spec = mapping_field(policy, "spec")
    semantic: list[Finding] = []
    if (
        isinstance(policy.get("spec"), Mapping)
        and "namespaces" not in spec
        and "namespaceSelector" not in spec
    ):
        semantic.append(
            invalid_finding(
                "spec.namespaces",
                "is missing, and so is spec.namespaceSelector; set either (or both) "
                "to say which namespaces the policy applies to",
            )
        )
    namespaces = text_entries(spec, "namespaces")
    semantic += malformed_entries("spec.namespaces", namespaces, dns1123_label_problem)
    semantic += duplicate_entries("spec.namespaces", namespaces)
    semantic += _selector_rules(mapping_field(spec, "namespaceSelector"))
    services = text_entries(spec, "allowedServiceNames")
    semantic += malformed_entries("spec.allowedServiceNames", services, dns1035_label_problem)
    semantic += duplicate_entries("spec.allowedServiceNames", services)
    patterns = text_entries(spec, "allowedDNSNames")
    semantic += malformed_entries("spec.allowedDNSNames", patterns, dns_pattern_problem)
    semantic += duplicate_entries("spec.allowedDNSNames", patterns)
    ranges = text_entries(spec, "allowedIPRanges")
    semantic += malformed_entries("spec.allowedIPRanges", ranges, cidr_problem)
    semantic += duplicate_entries("spec.allowedIPRanges", ranges)
    semantic += _max_duration_rules(text_field(spec, "maxDuration"))
    semantic += _broad_scope(spec)
    semantic += duplicate_entries(
        "spec.allowedKeyAlgorithms", text_entries(spec, "allowedKeyAlgorithms")
    )
    semantic += duplicate_entries("spec.allowedUsages", text_entries(spec, "allowedUsages"))
    authorities = text_entries(spec, "allowedAuthorities")
    semantic += malformed_entries("spec.allowedAuthorities", authorities, dns1123_subdomain_problem)
    semantic += duplicate_entries("spec.allowedAuthorities", authorities)
    return ordered(most_telling(structural, semantic), PKI_POLICY_SCHEMA)


def dns_pattern_problem(pattern: str) -> str | None:
    """Why an allowedDNSNames pattern is malformed, or ``None``."""
    expanded = pattern
    for placeholder in DNS_PATTERN_PLACEHOLDERS:
        expanded = expanded.replace("{" + placeholder + "}", "a")
    start = expanded.find("{")
    if start >= 0 and "}" in expanded[start:]:
        unknown = expanded[start : expanded.index("}", start) + 1]
        allowed = [f"{{{p}}}" for p in DNS_PATTERN_PLACEHOLDERS]
        return (
            f"has an unknown placeholder {quoted(unknown)}; use {' or '.join(allowed)}"
            + did_you_mean(unknown, allowed)
        )
    problem = dns_name_problem(expanded)
    if problem and "upper case" in problem:
        return "has upper case letters; patterns are lower case"
    return problem


def cidr_problem(text: str) -> str | None:
    """Why an allowedIPRanges entry is not a CIDR, or ``None``."""
    if "/" not in text:
        address = parsed_ip(text)
        if address is not None:
            single = f"{text}/{address.max_prefixlen}"
            return f'is an address, not a range; write "{single}" for one address'
        return 'is not a CIDR such as "10.0.0.0/8" or "fd00::/64"'
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return 'is not a CIDR such as "10.0.0.0/8" or "fd00::/64"'
        return f'has bits set after the prefix length; did you mean "{network}"?'
    return None


def _broad_scope(spec: Mapping[str, Any]) -> Iterator[Finding]:
    """Warnings for a policy that is legal but almost certainly wider than meant."""
    selector = spec.get("namespaceSelector")
    if (
        isinstance(selector, Mapping)
        and not selector.get("matchLabels")
        and not (selector.get("matchExpressions"))
    ):
        yield warning_finding(
            Category.ADVICE,
            "spec.namespaceSelector",
            "selects every namespace, kube-system included; list spec.namespaces or "
            "select by label",
            selector,
        )
    for index, text in text_entries(spec, "allowedIPRanges"):
        if cidr_problem(text) is None and ipaddress.ip_network(text).prefixlen == 0:
            yield warning_finding(
                Category.ADVICE,
                f"spec.allowedIPRanges[{index}]",
                f"allows every IPv{ipaddress.ip_network(text).version} address; "
                "name the ranges the services really use",
                text,
            )


def _max_duration_rules(text: str | None) -> Iterator[Finding]:
    if text is None:
        return
    try:
        bound = parse_duration(text)
    except DurationError as error:
        yield invalid_finding("spec.maxDuration", str(error), text)
        return
    if bound < MIN_DURATION_SPAN:
        problem = (
            f"is shorter than {MIN_DURATION}, the shortest a Pki may ask for, "
            "so no Pki could use this policy"
        )
        yield invalid_finding("spec.maxDuration", problem, text)
    elif bound > MAX_DURATION_SPAN:
        yield warning_finding(
            Category.ADVICE,
            "spec.maxDuration",
            f"is longer than {MAX_DURATION} (ten years), the longest pkiwarden issues for any "
            f"Pki; {MAX_DURATION} applies",
            text,
        )
    elif bound < DEFAULT_DURATION_SPAN:
        yield warning_finding(
            Category.ADVICE,
            "spec.maxDuration",
            f"is below the default spec.duration ({DEFAULT_DURATION}); a Pki that leaves "
            f"spec.duration out gets {format_duration(bound)}",
            text,
        )


def _selector_rules(selector: Mapping[str, Any]) -> Iterator[Finding]:
    path = "spec.namespaceSelector"
    labels = mapping_field(selector, "matchLabels")
    for key, value in labels.items():
        where = child_path(f"{path}.matchLabels", key)
        if isinstance(key, str) and (problem := label_key_problem(key)):
            yield invalid_finding(where, f"is not a valid label key: it {problem}", key)
        elif isinstance(value, str) and (problem := label_value_problem(value)):
            yield invalid_finding(where, f"is not a valid label value: it {problem}", value)
    expressions = selector.get("matchExpressions")
    if not isinstance(expressions, list | tuple):
        return
    for index, expression in enumerate(expressions):
        if not isinstance(expression, Mapping):
            continue
        where = f"{path}.matchExpressions[{index}]"
        label = text_field(expression, "key")
        if label is not None and (problem := label_key_problem(label)):
            yield invalid_finding(f"{where}.key", f"is not a valid label key: it {problem}", label)
        operator = text_field(expression, "operator")
        values = expression.get("values")
        count = len(values) if isinstance(values, list | tuple) else 0
        if operator in ("In", "NotIn") and count == 0:
            yield invalid_finding(
                f"{where}.values", f"must list at least one value for operator {operator}"
            )
        elif operator in ("Exists", "DoesNotExist") and count:
            yield invalid_finding(f"{where}.values", f"must be empty for operator {operator}")
        for value_index, value in text_entries(expression, "values"):
            if problem := label_value_problem(value):
                yield invalid_finding(
                    f"{where}.values[{value_index}]",
                    f"is not a valid label value: it {problem}",
                    value,
                )


__all__ = ["cidr_problem", "dns_pattern_problem", "validate_policy"]
