"""Empty values: every string and list field of both kinds, emptied one at a time.

``dnsNames: []`` once gave a Ready certificate with no subject and no SANs. An
empty value must either be refused with a message or mean exactly what leaving
the field out means; the exceptions are listed here, with the reason.
"""

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.defaults import apply_defaults
from shared.findings import Finding, phrase
from shared.validation.pki import Context, validate_pki
from shared.validation.pki_policy import validate_policy

POLICY: dict[str, Any] = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "PkiPolicy",
    "metadata": {"name": "p"},
    "spec": {
        "namespaces": ["app1"],
        "namespaceSelector": {
            "matchLabels": {"team": "a"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}],
        },
        "allowedServiceNames": ["app1"],
        "allowedDNSNames": ["{serviceName}.{namespace}.svc", "*.example.com"],
        "allowedIPRanges": ["10.0.0.0/8"],
        "maxDuration": "8760h",
        "allowedKeyAlgorithms": ["ECDSA", "RSA"],
    },
}
PKI: dict[str, Any] = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "Pki",
    "metadata": {"name": "x", "namespace": "app1"},
    "spec": {
        "serviceName": "app1",
        "secretName": "s",
        "dnsNames": ["app1.app1.svc"],
        "ipAddresses": ["10.0.0.1"],
        "commonName": "app1.app1.svc",
        "duration": "720h",
        "renewBefore": "240h",
        "privateKey": {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Always"},
        "usages": ["server auth"],
    },
}
# Empty and meaning the same as left out, or a legal value in Kubernetes terms.
MAY_BE_EMPTY = {
    "spec.ipAddresses",  # no IP addresses, as when left out
    "spec.namespaceSelector.matchLabels.team",  # "" is a legal label value
    "spec.namespaceSelector.matchExpressions",  # no requirements
    "spec.namespaceSelector.matchExpressions[0].values[0]",  # "" is a legal label value
}
Check = Callable[[dict[str, Any]], list[Finding]]


def _emptied(node: dict[str, Any], path: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """(path, action emptying that field in place) for every string and list below ``node``."""
    for key, value in node.items():
        where = f"{path}.{key}"
        if isinstance(value, str):
            yield where, lambda key=key: node.__setitem__(key, "")
        elif isinstance(value, list):
            yield where, lambda key=key: node.__setitem__(key, [])
            if value and isinstance(value[0], str):
                yield f"{where}[0]", lambda value=value: value.__setitem__(0, "")
            elif value and isinstance(value[0], dict):
                yield from _emptied(value[0], f"{where}[0]")
        elif isinstance(value, dict):
            yield from _emptied(value, where)


def _cases(base: dict[str, Any]) -> list[str]:
    return [path for path, _ in _emptied(copy.deepcopy(base)["spec"], "spec")]


def _with_empty(base: dict[str, Any], path: str) -> dict[str, Any]:
    body = copy.deepcopy(base)
    dict(_emptied(body["spec"], "spec"))[path]()
    return body


def _check_pki(body: dict[str, Any]) -> list[Finding]:
    return validate_pki(body, "app1", Context(policies=[POLICY]))


@pytest.mark.parametrize(
    ("base", "check", "path"),
    [(PKI, _check_pki, path) for path in _cases(PKI)]
    + [(POLICY, validate_policy, path) for path in _cases(POLICY)],
)
def test_an_empty_value_is_refused_at_its_path_or_means_left_out(
    base: dict[str, Any], check: Check, path: str
) -> None:
    assert check(base) == []
    findings = check(_with_empty(base, path))
    errors = [f for f in findings if f.is_error]
    if path in MAY_BE_EMPTY:
        assert errors == [], [phrase(f) for f in errors]
    else:
        assert [f.path for f in errors] == [path], [phrase(f) for f in findings]


@pytest.mark.parametrize("path", _cases(PKI))
def test_no_accepted_pki_is_issued_without_a_name(path: str) -> None:
    body = _with_empty(PKI, path)
    spec = body["spec"]
    spec.pop("commonName", None)
    if path != "spec.dnsNames":
        spec.pop("dnsNames")
    if [f for f in _check_pki(body) if f.is_error]:
        return
    issued = apply_defaults(body)["spec"]
    assert issued["dnsNames"] and all(issued["dnsNames"])
    assert issued["commonName"]


def test_empty_dns_names_say_which_names_leaving_the_field_out_gives() -> None:
    findings = _check_pki(_with_empty(PKI, "spec.dnsNames"))
    assert [phrase(f) for f in findings if f.is_error] == [
        "spec.dnsNames: [] would give a certificate without a name; leave the field out for "
        "the default names (app1.app1.svc, app1.app1.svc.cluster.local) or list the names"
    ]


def test_an_empty_required_list_asks_for_an_entry() -> None:
    findings = validate_policy(_with_empty(POLICY, "spec.allowedServiceNames"))
    assert [phrase(f) for f in findings] == [
        "spec.allowedServiceNames: must not be an empty list; list at least one entry"
    ]
