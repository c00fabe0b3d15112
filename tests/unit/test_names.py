from collections.abc import Callable

import pytest

from shared.names import (
    dns1035_label_problem,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    dns_name_problem,
    label_key_problem,
    label_value_problem,
)

Check = Callable[[str], str | None]


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        (dns1035_label_problem, "app1", None),
        (dns1035_label_problem, "a-b-c", None),
        (dns1035_label_problem, "", "is empty"),
        (dns1035_label_problem, "App1", 'upper case letters; use lower case: "app1"'),
        (dns1035_label_problem, "a" * 64, "64 characters long; at most 63"),
        (dns1035_label_problem, "app_1", 'illegal character "_" at position 4'),
        (dns1035_label_problem, "app.1", 'illegal character "." at position 4'),
        (dns1035_label_problem, "1app", "must start with a letter"),
        (dns1035_label_problem, "app-", "must end with a letter or digit"),
        (dns1123_label_problem, "1ns", None),
        (dns1123_label_problem, "-ns", 'starts or ends with "-"'),
        (dns1123_subdomain_problem, "app1-pki-tls", None),
        (dns1123_subdomain_problem, "a.b-c.d", None),
        (dns1123_subdomain_problem, "a..b", "empty label"),
        (dns1123_subdomain_problem, "a." + "b" * 64, "label of 64 characters"),
        (dns1123_subdomain_problem, "a" * 254, "254 characters long; at most 253"),
        (dns1123_subdomain_problem, "Secret", "upper case"),
        (dns_name_problem, "app1.app1.svc", None),
        (dns_name_problem, "*.app1.svc", None),
        (dns_name_problem, "1.example.com", None),
        (dns_name_problem, "a.*.com", "bad wildcard"),
        (dns_name_problem, "*a.com", "bad wildcard"),
        (dns_name_problem, "*", "only a wildcard"),
        (dns_name_problem, "Example.com", "upper case"),
        (
            dns_name_problem,
            "example.com.",
            'ends with a dot, which certificate names never have; write "example.com"',
        ),
        (dns_name_problem, "example.com..", 'write "example.com"'),
        (dns_name_problem, ".", "empty label"),
        (dns_name_problem, ".example.com", "empty label"),
        (dns_name_problem, "a-.example.com", 'starts or ends with "-"'),
        (dns_name_problem, "ex ample.com", 'illegal character " " at position 3'),
        (dns_name_problem, "a\nb", 'illegal character "\\n" at position 2'),
        (dns_name_problem, ("a" * 63 + ".") * 4, "characters long; at most 253"),
        (label_key_problem, "team", None),
        (label_key_problem, "example.com/team", None),
        (label_key_problem, "kubernetes.io/metadata.name", None),
        (label_key_problem, "Bad_Prefix/x", "invalid prefix"),
        (label_key_problem, "", "is empty"),
        (label_key_problem, "example.com/", "no name"),
        (label_key_problem, "-team", "does not start and end"),
        (label_value_problem, "", None),
        (label_value_problem, "Blue_1.x", None),
        (label_value_problem, "a b", 'illegal character " "'),
        (label_value_problem, "v" * 64, "at most 63"),
    ],
)
def test_name_checks(check: Check, value: str, reason: str | None) -> None:
    problem = check(value)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None
        assert reason in problem
        assert "\n" not in problem


def test_wildcard_can_be_refused() -> None:
    assert dns_name_problem("*.example.com", wildcard=False) is not None
