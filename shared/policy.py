"""PkiPolicy matching: which policies select a namespace, and what a policy allows.

Policies are compiled once into frozen values (selector, expanded-ready
patterns, parsed CIDRs and durations) and cached by object identity, so that
checking a Pki against a hundred policies costs set look-ups, not parsing.
Compilation is lenient: a malformed entry allows nothing (``validate_policy``
is where it gets reported), and compiling never raises.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.durations import DurationError, parse_duration
from shared.schema import (
    DEFAULT_ALLOWED_AUTHORITIES,
    DEFAULT_ALLOWED_USAGES,
    DEFAULT_DNS_PATTERNS,
    DEFAULT_MIN_RSA_SIZE,
    KEY_ALGORITHMS,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace; known even when nothing else is."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        return False


@dataclass(frozen=True, slots=True)
class Selector:
    """A Kubernetes label selector; ``valid=False`` (malformed) selects nothing."""

    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[Requirement, ...]
    valid: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        if not self.valid:
            return False
        for key, value in self.match_labels:  # plain loops: this runs per policy per request
            if labels.get(key) != value:
                return False
        return all(requirement.matches(labels) for requirement in self.requirements)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    namespaces: frozenset[str]
    selector: Selector | None
    service_names: tuple[str, ...]
    dns_patterns: tuple[str, ...]
    ip_ranges: tuple[IPNetwork, ...]
    max_duration: timedelta | None
    key_algorithms: tuple[str, ...]
    usages: tuple[str, ...] = DEFAULT_ALLOWED_USAGES
    min_rsa_size: int = DEFAULT_MIN_RSA_SIZE
    authorities: tuple[str, ...] = DEFAULT_ALLOWED_AUTHORITIES

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if namespace in self.namespaces:
            return True
        return self.selector is not None and self.selector.matches(labels)

    def allows_service(self, service_name: str) -> bool:
        return service_name in self.service_names

    def dns_names_for(self, service_name: str, namespace: str) -> tuple[str, ...]:
        """The allowed DNS name patterns with ``{serviceName}`` and ``{namespace}`` filled in."""
        return tuple(expand(p, service_name, namespace) for p in self.dns_patterns)

    def allows_ip(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.ip_ranges)

    def allows_authority(self, authority: str) -> bool:
        return authority in self.authorities


def expand(pattern: str, service_name: str, namespace: str) -> str:
    return pattern.replace("{serviceName}", service_name).replace("{namespace}", namespace)


def pattern_matches(pattern: str, name: str) -> bool:
    """Exact match, or a leading ``*.`` standing for exactly one label (``*`` included)."""
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    head, dot, rest = name.partition(".")
    return bool(dot) and bool(head) and rest == pattern[2:]


def dns_name_allowed(name: str, expanded_patterns: Iterable[str]) -> bool:
    return any(pattern_matches(pattern, name) for pattern in expanded_patterns)


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _selector(value: object) -> Selector | None:
    if not isinstance(value, Mapping):
        return None
    labels = value.get("matchLabels", {})
    expressions = value.get("matchExpressions", [])
    if not isinstance(labels, Mapping) or not isinstance(expressions, list | tuple):
        return Selector((), (), valid=False)
    pairs = tuple((k, v) for k, v in labels.items() if isinstance(k, str) and isinstance(v, str))
    requirements = []
    for expression in expressions:
        if not isinstance(expression, Mapping):
            return Selector((), (), valid=False)
        key, operator = expression.get("key"), expression.get("operator")
        if not isinstance(key, str) or not isinstance(operator, str):
            return Selector((), (), valid=False)
        requirements.append(
            Requirement(key, operator, frozenset(_strings(expression.get("values"))))
        )
    return Selector(pairs, tuple(requirements), valid=len(pairs) == len(labels))


def _networks(value: object) -> tuple[IPNetwork, ...]:
    networks = []
    for text in _strings(value):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _duration(value: object) -> timedelta | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_duration(value)
    except DurationError:
        return timedelta(0)  # malformed bound: allow no duration rather than any


def policy_name(policy: object) -> str:
    metadata = policy.get("metadata") if isinstance(policy, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else ""


def compile_policy(policy: object) -> CompiledPolicy:
    """A PkiPolicy (as a dict) in the form matching needs; never raises."""
    spec: Mapping[str, Any] = {}
    if isinstance(policy, Mapping) and isinstance(policy.get("spec"), Mapping):
        spec = policy["spec"]
    patterns = spec.get("allowedDNSNames", DEFAULT_DNS_PATTERNS)
    algorithms = spec.get("allowedKeyAlgorithms", KEY_ALGORITHMS)
    return CompiledPolicy(
        name=policy_name(policy),
        namespaces=frozenset(_strings(spec.get("namespaces"))),
        selector=_selector(spec.get("namespaceSelector")),
        service_names=_strings(spec.get("allowedServiceNames")),
        dns_patterns=_strings(patterns),
        ip_ranges=_networks(spec.get("allowedIPRanges")),
        max_duration=_duration(spec.get("maxDuration")),
        key_algorithms=_strings(algorithms),
        usages=_strings(spec.get("allowedUsages", DEFAULT_ALLOWED_USAGES)),
        min_rsa_size=_min_rsa_size(spec.get("minRSASize")),
        authorities=_strings(spec.get("allowedAuthorities", DEFAULT_ALLOWED_AUTHORITIES)),
    )


def _min_rsa_size(value: object) -> int:
    """The bound as given; a malformed one (validation reports it) keeps the default."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return DEFAULT_MIN_RSA_SIZE


_CACHE_LIMIT = 4096
_cache: dict[int, tuple[object, CompiledPolicy]] = {}


def compiled(policy: object) -> CompiledPolicy:
    """:func:`compile_policy`, cached by identity.

    Policy objects come from a watch cache that replaces objects rather than
    mutating them, so identity is a sound key; the entry keeps the object alive
    so its id cannot be reused while cached.
    """
    entry = _cache.get(id(policy))
    if entry is not None and entry[0] is policy:
        return entry[1]
    result = compile_policy(policy)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[id(policy)] = (policy, result)
    return result


def selecting(
    policies: Sequence[object], namespace: str, labels: Mapping[str, str] | None
) -> list[CompiledPolicy]:
    """The policies selecting ``namespace``, sorted by name for stable messages."""
    known = {k: v for k, v in (labels or {}).items() if isinstance(k, str) and isinstance(v, str)}
    known[NAMESPACE_NAME_LABEL] = namespace
    chosen = []
    for policy in policies:
        entry = _cache.get(id(policy))
        candidate = entry[1] if entry is not None and entry[0] is policy else compiled(policy)
        if namespace in candidate.namespaces or (
            candidate.selector is not None and candidate.selector.matches(known)
        ):
            chosen.append(candidate)
    return sorted(chosen, key=lambda p: p.name)
