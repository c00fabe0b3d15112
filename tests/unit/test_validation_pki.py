"""Every Pki rule, each with a passing and a failing case, as a table."""

from typing import Any

import pytest

from shared.defaults import apply_defaults
from shared.findings import Category, Finding, Severity, phrase
from shared.validation.common import message_for_denial, warning_messages
from shared.validation.pki import Context, SecretInfo, policy_defaulted, validate_pki

E, W = Severity.ERROR, Severity.WARNING

POLICY: dict[str, Any] = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "PkiPolicy",
    "metadata": {"name": "app-teams"},
    "spec": {
        "namespaces": ["app1"],
        "allowedServiceNames": ["app1", "app2"],
        "allowedDNSNames": [
            "{serviceName}.{namespace}.svc",
            "{serviceName}.{namespace}.svc.cluster.local",
            "*.{serviceName}.example.com",
        ],
        "allowedIPRanges": ["10.0.0.0/8", "fd00::/64"],
        "maxDuration": "8784h",
    },
}
CONTEXT = Context(policies=[POLICY])


def pki(name: str = "app1-pki", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": "app1"},
        "spec": {"serviceName": "app1", **spec},
    }


def summary(findings: list[Finding]) -> list[tuple[Severity, str]]:
    return [(f.severity, f.path) for f in findings]


CASES: list[tuple[str, dict[str, Any], list[tuple[Severity, str, str]]]] = [
    ("minimal is valid", {}, []),
    (
        "all fields valid",
        {
            "secretName": "app1-tls",
            "dnsNames": ["app1.app1.svc", "*.app1.example.com"],
            "ipAddresses": ["10.1.2.3", "fd00::1"],
            "commonName": "app1.app1.svc",
            "duration": "720h",
            "renewBefore": "240h",
            "privateKey": {"algorithm": "RSA", "size": 3072, "rotationPolicy": "Never"},
            "usages": ["server auth", "client auth"],
        },
        [],
    ),
    # serviceName syntax
    (
        "serviceName upper case",
        {"serviceName": "App1"},
        [(E, "spec.serviceName", 'use lower case: "app1"')],
    ),
    (
        "serviceName leading digit",
        {"serviceName": "1app"},
        [(E, "spec.serviceName", "must start with a letter")],
    ),
    ("serviceName too long", {"serviceName": "a" * 64}, [(E, "spec.serviceName", "at most 63")]),
    ("serviceName empty", {"serviceName": ""}, [(E, "spec.serviceName", "must not be empty")]),
    ("serviceName wrong type", {"serviceName": 7}, [(E, "spec.serviceName", "must be a string")]),
    # secretName
    ("secretName valid subdomain", {"secretName": "tls.app1"}, []),
    (
        "secretName illegal character",
        {"secretName": "app1_tls"},
        [(E, "spec.secretName", 'illegal character "_" at position 5')],
    ),
    (
        "secretName empty label",
        {"secretName": "app1..tls"},
        [(E, "spec.secretName", "empty label")],
    ),
    ("secretName default too long", {}, []),
    # dnsNames
    ("dnsName wildcard allowed", {"dnsNames": ["*.app1.example.com"]}, []),
    ("dnsName wildcard as a label matched by *", {"dnsNames": ["x.app1.example.com"]}, []),
    (
        "dnsName bad wildcard",
        {"dnsNames": ["app1.*.example.com"]},
        [(E, "spec.dnsNames[0]", "bad wildcard")],
    ),
    (
        "dnsName upper case",
        {"dnsNames": ["App1.app1.svc"]},
        [(E, "spec.dnsNames[0]", "upper case")],
    ),
    (
        "dnsName label too long",
        {"dnsNames": ["a" * 64 + ".svc"]},
        [(E, "spec.dnsNames[0]", "label of 64 characters")],
    ),
    ("dnsName empty label", {"dnsNames": ["app1..svc"]}, [(E, "spec.dnsNames[0]", "empty label")]),
    (
        "dnsName with a trailing dot",
        {"dnsNames": ["app1.app1.svc.cluster.local."]},
        [
            (
                E,
                "spec.dnsNames[0]",
                '"app1.app1.svc.cluster.local." ends with a dot, which certificate names never '
                'have; write "app1.app1.svc.cluster.local"',
            )
        ],
    ),
    (
        "dnsName too long",
        {"dnsNames": ["a." * 127 + "b"]},
        [(E, "spec.dnsNames[0]", "at most 253")],
    ),
    (
        "dnsName duplicate",
        {"dnsNames": ["app1.app1.svc", "app1.app1.svc"]},
        [(E, "spec.dnsNames[1]", "listed twice (also at spec.dnsNames[0])")],
    ),
    (
        "dnsNames not a list",
        {"dnsNames": "app1.app1.svc"},
        [(E, "spec.dnsNames", "must be a list")],
    ),
    # ipAddresses
    ("ip v4 and v6", {"ipAddresses": ["10.0.0.1", "fd00::2"]}, []),
    (
        "ip malformed",
        {"ipAddresses": ["10.0.0"]},
        [(E, "spec.ipAddresses[0]", "not an IPv4 or IPv6 address")],
    ),
    (
        "ip with zone",
        {"ipAddresses": ["fd00::1%eth0"]},
        [(E, "spec.ipAddresses[0]", "not an IPv4 or IPv6 address")],
    ),
    (
        "ip given as a CIDR",
        {"ipAddresses": ["10.20.0.0/24"]},
        [
            (
                E,
                "spec.ipAddresses[0]",
                '"10.20.0.0/24" is a range, not an address; list the addresses one by one '
                "(ranges belong in a PkiPolicy's spec.allowedIPRanges)",
            )
        ],
    ),
    (
        "ip given as a CIDR with host bits",
        {"ipAddresses": ["fd00::1/64"]},
        [(E, "spec.ipAddresses[0]", "is a range, not an address")],
    ),
    (
        "ip duplicate in other spelling",
        {"ipAddresses": ["fd00::1", "fd00:0::1"]},
        [(E, "spec.ipAddresses[1]", "listed twice")],
    ),
    # commonName
    (
        "commonName 64 chars",
        {"commonName": "a" * 64},
        [
            (E, "spec.commonName", "is not allowed by PkiPolicy"),
        ],
    ),
    (
        "commonName too long",
        {"commonName": "a" * 65},
        [(E, "spec.commonName", "65 characters long; at most 64")],
    ),
    (
        "commonName not among dnsNames",
        {"commonName": "app1.app1.svc.cluster.local", "dnsNames": ["app1.app1.svc"]},
        [(W, "spec.commonName", "will be added")],
    ),
    ("commonName an allowed ip", {"commonName": "10.0.0.1", "ipAddresses": ["10.0.0.1"]}, []),
    # duration
    ("duration combination", {"duration": "100h30m"}, []),
    (
        "duration days",
        {"duration": "90d"},
        [(E, "spec.duration", 'days are not a unit; use hours, e.g. "2160h"')],
    ),
    (
        "duration too short",
        {"duration": "59m"},
        [(E, "spec.duration", "shorter than the minimum, 1h")],
    ),
    (
        "duration over global max",
        {"duration": "90000h"},
        [(E, "spec.duration", "longer than 87600h (ten years), the longest pkiwarden issues")],
    ),
    # renewBefore
    ("renewBefore valid", {"duration": "24h", "renewBefore": "8h"}, []),
    (
        "renewBefore not shorter",
        {"duration": "24h", "renewBefore": "24h"},
        [(E, "spec.renewBefore", 'shorter than spec.duration (24h); try "8h"')],
    ),
    (
        "renewBefore vs default duration",
        {"renewBefore": "3000h"},
        [(E, "spec.renewBefore", "shorter than spec.duration (2160h)")],
    ),
    (
        "renewBefore under 5m",
        {"renewBefore": "4m"},
        [(E, "spec.renewBefore", "shorter than the minimum, 5m")],
    ),
    ("renewBefore syntax", {"renewBefore": "soon"}, [(E, "spec.renewBefore", "is not a duration")]),
    # The gap between issuance and renewal (duration - renewBefore) has a floor, 30m.
    (
        "renewBefore leaving a second: a renewal every second",
        {"duration": "1h", "renewBefore": "59m59s"},
        [
            (
                E,
                "spec.renewBefore",
                '"59m59s" would renew the certificate 1s after issuing it (spec.duration 1h); '
                'at least 30m must lie between; try "20m"',
            )
        ],
    ),
    (
        "renewBefore leaving 29m",
        {"duration": "1h", "renewBefore": "31m"},
        [(E, "spec.renewBefore", "29m after issuing it")],
    ),
    ("renewBefore leaving exactly 30m", {"duration": "1h", "renewBefore": "30m"}, []),
    (
        "renewBefore leaving 10m of a long certificate",
        {"duration": "720h", "renewBefore": "719h50m"},
        [(E, "spec.renewBefore", "10m after issuing it (spec.duration 720h); at least 30m")],
    ),
    # Hints are computed from the values that will be accepted: following them all is enough.
    (
        "renewBefore hint from the longest duration allowed",
        {"duration": "9000h", "renewBefore": "9000h"},
        [
            (E, "spec.duration", 'set it to "8784h" or less'),
            (
                E,
                "spec.renewBefore",
                'must be shorter than spec.duration (8784h, the longest allowed); try "2928h"',
            ),
        ],
    ),
    (
        "renewBefore hint from the shortest duration allowed",
        {"duration": "30m", "renewBefore": "45m"},
        [
            (E, "spec.duration", "shorter than the minimum, 1h"),
            (
                E,
                "spec.renewBefore",
                "15m after issuing it (spec.duration 1h, the shortest allowed); at least 30m "
                'must lie between; try "20m"',
            ),
        ],
    ),
    (
        "renewBefore accepted once the duration is the allowed one",
        {"duration": "9000h", "renewBefore": "2928h"},
        [(E, "spec.duration", 'set it to "8784h" or less')],
    ),
    (
        "renewBefore under 10% of the allowed duration",
        {"duration": "90000h", "renewBefore": "500h"},
        [
            (E, "spec.duration", "longer than 87600h"),
            (
                W,
                "spec.renewBefore",
                'under 10% of the duration, little time to fix a failed renewal; try "2928h"',
            ),
        ],
    ),
    # privateKey
    ("ECDSA 384", {"privateKey": {"algorithm": "ECDSA", "size": 384}}, []),
    ("Ed25519 without size", {"privateKey": {"algorithm": "Ed25519"}}, []),
    (
        "RSA 256",
        {"privateKey": {"algorithm": "RSA", "size": 256}},
        [(E, "spec.privateKey.size", "not a size for RSA keys (allowed: 2048, 3072, 4096)")],
    ),
    (
        "ECDSA default with size 2048",
        {"privateKey": {"size": 2048}},
        [(E, "spec.privateKey.size", "not a size for ECDSA keys")],
    ),
    (
        "Ed25519 with size",
        {"privateKey": {"algorithm": "Ed25519", "size": 256}},
        [(E, "spec.privateKey.size", "must be left out for Ed25519")],
    ),
    (
        "algorithm typo lists the algorithms of the namespace",
        {"privateKey": {"algorithm": "ed-25519"}},
        [
            (
                E,
                "spec.privateKey.algorithm",
                '"ed-25519" is not a key algorithm; allowed in this namespace: ECDSA, RSA, '
                'Ed25519; did you mean "Ed25519"?',
            )
        ],
    ),
    (
        "algorithm typo",
        {"privateKey": {"algorithm": "rsa"}},
        [(E, "spec.privateKey.algorithm", 'did you mean "RSA"?')],
    ),
    (
        "rotationPolicy unknown",
        {"privateKey": {"rotationPolicy": "Sometimes"}},
        [(E, "spec.privateKey.rotationPolicy", "(Always, Never)")],
    ),
    (
        "size not an integer",
        {"privateKey": {"size": "big"}},
        [(E, "spec.privateKey.size", "must be an integer")],
    ),
    # usages
    ("usages from the list", {"usages": ["client auth", "digital signature"]}, []),
    (
        "usage typo",
        {"usages": ["server-auth"]},
        [(E, "spec.usages[0]", 'did you mean "server auth"?')],
    ),
    (
        "usage duplicate",
        {"usages": ["client auth", "client auth"]},
        [(E, "spec.usages[1]", "listed twice")],
    ),
    ("usages empty", {"usages": []}, [(E, "spec.usages", "must not be an empty list")]),
    (
        "key encipherment with an ECDSA key",
        {"usages": ["server auth", "key encipherment"]},
        [(W, "spec.usages[1]", "is for RSA key exchange; an ECDSA key cannot encipher keys")],
    ),
    (
        "key encipherment with an RSA key",
        {"usages": ["key encipherment"], "privateKey": {"algorithm": "RSA"}},
        [],
    ),
    # unknown fields
    (
        "unknown field typo",
        {"serviceNmae": "x"},
        [(E, "spec.serviceNmae", 'did you mean "serviceName"?')],
    ),
    # policy
    (
        "service typo",
        {"serviceName": "appp1"},
        [
            (
                E,
                "spec.serviceName",
                '"appp1" is not allowed in namespace "app1" '
                '(allowed by PkiPolicy "app-teams": app1, app2); did you mean "app1"?',
            )
        ],
    ),
    (
        "dnsName not allowed",
        {"dnsNames": ["app1.app1.svc", "app1.app1.svcc"]},
        [(E, "spec.dnsNames[1]", 'not allowed by PkiPolicy "app-teams"')],
    ),
    (
        "dnsName typo suggests",
        {"dnsNames": ["app1.app1.scv"]},
        [(E, "spec.dnsNames[0]", 'did you mean "app1.app1.svc"?')],
    ),
    (
        "wildcard needs exactly one label",
        {"dnsNames": ["a.b.app1.example.com"]},
        [(E, "spec.dnsNames[0]", "not allowed")],
    ),
    (
        "commonName outside policy",
        {"commonName": "evil.com", "dnsNames": ["app1.app1.svc", "evil.com"]},
        [(E, "spec.dnsNames[1]", "not allowed"), (E, "spec.commonName", "not allowed")],
    ),
    (
        "ip outside ranges",
        {"ipAddresses": ["192.168.0.1"]},
        [(E, "spec.ipAddresses[0]", "allowed ranges: 10.0.0.0/8, fd00::/64")],
    ),
    (
        "duration over maxDuration",
        {"duration": "9000h"},
        [(E, "spec.duration", 'maxDuration 8784h); set it to "8784h" or less')],
    ),
    (
        "RSA 2048 over a year",
        {"privateKey": {"algorithm": "RSA"}, "duration": "8784h"},
        [(W, "spec.privateKey.size", "(the default) is weak")],
    ),
    (
        "RSA 2048 within a year",
        {"privateKey": {"algorithm": "RSA", "size": 2048}, "duration": "8760h"},
        [],
    ),
    (
        "renewBefore under 10%",
        {"duration": "100h", "renewBefore": "9h"},
        [(W, "spec.renewBefore", "under 10%")],
    ),
    ("renewBefore at 10%", {"duration": "100h", "renewBefore": "10h"}, []),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pki_rules(spec: dict[str, Any], expected: list[tuple[Severity, str, str]]) -> None:
    findings = validate_pki(pki(**spec), "app1", CONTEXT)
    assert summary(findings) == [(severity, path) for severity, path, _ in expected]
    for finding, (_, _, fragment) in zip(findings, expected, strict=True):
        assert fragment in phrase(finding)


def test_typo_message_reads_as_designed() -> None:
    (finding,) = validate_pki(pki(serviceName="appp1"), "app1", CONTEXT)
    assert finding.category is Category.NOT_ALLOWED
    assert phrase(finding) == (
        'spec.serviceName: "appp1" is not allowed in namespace "app1" '
        '(allowed by PkiPolicy "app-teams": app1, app2); did you mean "app1"?'
    )


def test_no_policy_selects_the_namespace() -> None:
    (finding,) = validate_pki(pki(), "elsewhere", CONTEXT)
    assert (finding.path, finding.category, finding.value) == (
        "metadata.namespace",
        Category.NOT_ALLOWED,
        "elsewhere",
    )
    assert "not selected by any PkiPolicy" in finding.problem
    assert validate_pki(pki(), "app1", Context())[0].path == "metadata.namespace"


def test_selector_uses_namespace_labels() -> None:
    by_label = {
        **POLICY,
        "spec": {
            **POLICY["spec"],
            "namespaces": ["x"],
            "namespaceSelector": {"matchLabels": {"team": "one"}},
        },
    }
    assert (
        validate_pki(pki(), "app1", Context(policies=[by_label], namespace_labels={"team": "one"}))
        == []
    )
    assert (
        validate_pki(pki(), "app1", Context(policies=[by_label], namespace_labels=None))[0].path
        == "metadata.namespace"
    )


def test_service_not_allowed_lists_every_selecting_policy() -> None:
    other = {
        "metadata": {"name": "b-team"},
        "spec": {"namespaces": ["app1"], "allowedServiceNames": ["b"]},
    }
    (finding,) = validate_pki(pki(serviceName="zzz"), "app1", Context(policies=[other, POLICY]))
    assert 'allowed by PkiPolicy "app-teams": app1, app2; PkiPolicy "b-team": b)' in finding.problem
    assert "did you mean" not in finding.problem


def test_one_policy_must_allow_everything() -> None:
    names_only = {
        "metadata": {"name": "a-names"},
        "spec": {
            "namespaces": ["app1"],
            "allowedServiceNames": ["app1"],
            "allowedIPRanges": ["10.0.0.0/8"],
        },
    }
    ips_only = {
        "metadata": {"name": "b-ips"},
        "spec": {
            "namespaces": ["app1"],
            "allowedServiceNames": ["app1"],
            "allowedDNSNames": ["x.example.com"],
            "allowedIPRanges": ["192.168.0.0/16"],
        },
    }
    spec = {"dnsNames": ["app1.app1.svc"], "ipAddresses": ["192.168.1.1"]}
    findings = validate_pki(pki(**spec), "app1", Context(policies=[names_only, ips_only]))
    assert summary(findings) == [(E, "spec.ipAddresses[0]")]
    assert 'PkiPolicy "a-names"' in findings[0].problem
    assert (
        validate_pki(
            pki(**{**spec, "ipAddresses": ["10.0.0.1"]}),
            "app1",
            Context(policies=[names_only, ips_only]),
        )
        == []
    )


@pytest.mark.parametrize(
    ("policy_spec", "path", "fragment"),
    [
        (
            {"allowedKeyAlgorithms": ["RSA"]},
            "spec.privateKey.algorithm",
            '"ECDSA" (the default) is not allowed by PkiPolicy "p" (allowed: RSA)',
        ),
        # Below the default duration, a policy's bound is the default: nothing refused.
        ({"maxDuration": "720h"}, "", ""),
        (
            {"allowedDNSNames": ["{serviceName}.example.com"]},
            "spec.dnsNames",
            '2 DNS names (the default) are not allowed by PkiPolicy "p" (allowed: '
            'app1.example.com): [0] "app1.app1.svc", [1] "app1.app1.svc.cluster.local"',
        ),
        ({"allowedIPRanges": None}, "", ""),
    ],
)
def test_defaults_are_checked_against_the_policy(
    policy_spec: dict[str, Any], path: str, fragment: str
) -> None:
    policy = {
        "metadata": {"name": "p"},
        "spec": {"namespaces": ["app1"], "allowedServiceNames": ["app1"], **policy_spec},
    }
    policy["spec"] = {k: v for k, v in policy["spec"].items() if v is not None}
    findings = validate_pki(pki(), "app1", Context(policies=[policy]))
    if not path:
        assert findings == []
        return
    assert findings[0].path == path
    assert fragment in phrase(findings[0])


def _policy(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {"namespaces": ["app1"], "allowedServiceNames": ["app1"], **spec},
    }


@pytest.mark.parametrize(
    ("policy_spec", "pki_spec", "path", "message"),
    [
        # The default policy grants TLS server and client usages, nothing else.
        (
            {},
            {"usages": ["server auth", "code signing"]},
            "spec.usages[1]",
            'spec.usages[1]: "code signing" is not allowed by PkiPolicy "p" (allowed:'
            ' "server auth", "client auth", "digital signature", "key encipherment",'
            ' "key agreement"); remove it from spec.usages',
        ),
        (
            {},
            {"usages": ["ocsp signing", "code signing"]},
            "spec.usages",
            'spec.usages: 2 usages are not allowed by PkiPolicy "p" (allowed:'
            ' "server auth", "client auth", "digital signature", "key encipherment",'
            ' "key agreement"); remove them from spec.usages: [0] "ocsp signing",'
            ' [1] "code signing"',
        ),
        (
            {"allowedUsages": ["server auth", "code signing"]},
            {"usages": ["code signing"]},
            "",
            "",
        ),
        (
            {"allowedUsages": ["server auth"]},
            {},
            "spec.usages[1]",
            'spec.usages[1]: "digital signature" (the default) is not allowed by PkiPolicy'
            ' "p" (allowed: "server auth"); remove it from spec.usages',
        ),
        # minRSASize: 2048 by default; a policy may ask for more.
        ({}, {"privateKey": {"algorithm": "RSA", "size": 2048}}, "", ""),
        (
            {"minRSASize": 3072},
            {"privateKey": {"algorithm": "RSA"}},
            "spec.privateKey.size",
            'spec.privateKey.size: 2048 (the default) is smaller than PkiPolicy "p" allows'
            " (minRSASize 3072); set it to 3072 or 4096",
        ),
        ({"minRSASize": 4096}, {"privateKey": {"algorithm": "ECDSA"}}, "", ""),
    ],
)
def test_usages_and_rsa_size_are_the_policys_to_grant(
    policy_spec: dict[str, Any], pki_spec: dict[str, Any], path: str, message: str
) -> None:
    findings = validate_pki(pki(**pki_spec), "app1", Context(policies=[_policy(**policy_spec)]))
    if not path:
        assert findings == [] or all(f.severity is not E for f in findings), findings
        return
    errors = [f for f in findings if f.severity is E]
    assert [f.path for f in errors] == [path]
    assert phrase(errors[0]) == message


def test_usages_refused_at_run_time_say_who_can_fix_it() -> None:
    context = Context(policies=[_policy()], at_run_time=True)
    (finding,) = validate_pki(pki(usages=["server auth", "code signing"]), "app1", context)
    assert "(now allows:" in finding.problem
    assert "ask the platform team to allow it, or change spec.usages" in finding.problem


def test_ips_need_an_allowed_range() -> None:
    policy = {
        "metadata": {"name": "p"},
        "spec": {"namespaces": ["app1"], "allowedServiceNames": ["app1"]},
    }
    (finding,) = validate_pki(pki(ipAddresses=["10.0.0.1"]), "app1", Context(policies=[policy]))
    assert "allows no IP addresses" in finding.problem


def test_secret_name_used_by_another_pki() -> None:
    other = pki(name="other", secretName="app1-pki-tls")
    findings = validate_pki(pki(), "app1", Context(policies=[POLICY], other_pkis=[other, pki()]))
    assert [(f.severity, f.category, f.path) for f in findings] == [
        (E, Category.SECRET_CONFLICT, "spec.secretName")
    ]
    assert '"app1-pki-tls" (the default) is already the Secret of Pki "other"' in phrase(
        findings[0]
    )
    defaulted = pki(name="app1-pki")  # the same Pki, e.g. an update: not a conflict
    assert validate_pki(pki(), "app1", Context(policies=[POLICY], other_pkis=[defaulted])) == []
    by_default = {"metadata": {"name": "x"}, "spec": {"serviceName": "app1"}}
    findings = validate_pki(
        pki(secretName="x-tls"), "app1", Context(policies=[POLICY], other_pkis=[by_default, "junk"])
    )  # type: ignore[list-item]
    assert summary(findings) == [(E, "spec.secretName")]


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        (
            SecretInfo("app1-pki-tls", managed_by_pkiwarden=False, owner_pki=None),
            "exists and is not managed by pkiwarden",
        ),
        (
            SecretInfo("app1-pki-tls", managed_by_pkiwarden=True, owner_pki="gone"),
            'belongs to Pki "gone"',
        ),
        (SecretInfo("app1-pki-tls", managed_by_pkiwarden=True, owner_pki="app1-pki"), None),
    ],
)
def test_existing_secret(secret: SecretInfo, fragment: str | None) -> None:
    context = Context(policies=[POLICY], secrets={secret.name: secret})
    findings = validate_pki(pki(), "app1", context)
    if fragment is None:
        assert findings == []
        return
    (finding,) = findings
    assert (finding.severity, finding.category) == (W, Category.SECRET_CONFLICT)
    assert fragment in finding.problem
    assert len(phrase(finding)) <= 120


def test_all_errors_at_once_errors_first_in_field_order() -> None:
    spec = {
        "serviceName": "appp1",
        "usages": ["nope"],
        "duration": "2d",
        "dnsNames": ["B.svc"],
        "commonName": "zzz",
    }
    findings = validate_pki(pki(**spec), "app1", CONTEXT)
    assert summary(findings) == [
        (E, "spec.serviceName"),
        (E, "spec.dnsNames[0]"),
        (E, "spec.duration"),
        (E, "spec.usages[0]"),
        (W, "spec.commonName"),
    ]
    assert findings == validate_pki(pki(**spec), "app1", CONTEXT)


def test_denial_message_and_warning_messages() -> None:
    findings = validate_pki(
        pki(serviceName="appp1", duration="2d", commonName="x\ny"), "app1", CONTEXT
    )
    message = message_for_denial(findings)
    assert message.count("; did you mean") == 1
    assert message.startswith('spec.serviceName: "appp1" is not allowed')
    assert '; spec.duration: "2d" is not a duration' in message
    lines = warning_messages(findings)
    assert lines == [
        'spec.commonName: "x\\ny" is not among spec.dnsNames; it will be added to them'
    ]
    assert all(line.isprintable() for line in [message, *lines])


@pytest.mark.parametrize("body", [None, 5, "Pki", [], {"spec": None}, {"spec": []}, {}])
def test_not_an_object_or_no_spec(body: Any) -> None:
    findings = validate_pki(body, "app1", CONTEXT)
    assert findings
    assert all(f.severity is E and f.category is Category.INVALID_SPEC for f in findings)


def test_wrong_api_version_and_kind() -> None:
    body = {**pki(), "apiVersion": "pkiwarden.dev/v1", "kind": "Pkl"}
    findings = validate_pki(body, "app1", CONTEXT)
    assert summary(findings) == [(E, "apiVersion"), (E, "kind")]
    assert 'did you mean "Pki"?' in phrase(findings[1])


def test_many_refused_names_state_the_allow_list_once_and_count_the_rest() -> None:
    names = [f"n{i}.example.org" for i in range(100)]
    message = message_for_denial(validate_pki(pki(dnsNames=names), "app1", CONTEXT))
    assert message == (
        'spec.dnsNames: 100 DNS names are not allowed by PkiPolicy "app-teams" (allowed: '
        "app1.app1.svc, app1.app1.svc.cluster.local, *.app1.example.com): "
        '[0] "n0.example.org", [1] "n1.example.org", [2] "n2.example.org" and 97 more'
    )


def test_several_refused_ips_are_one_finding() -> None:
    findings = validate_pki(
        pki(ipAddresses=["10.0.0.1", "192.168.0.1", "fd01::1"]), "app1", CONTEXT
    )
    assert [phrase(f) for f in findings] == [
        'spec.ipAddresses: 2 IP addresses are not allowed: PkiPolicy "app-teams" (allowed '
        'ranges: 10.0.0.0/8, fd00::/64): [1] "192.168.0.1", [2] "fd01::1"'
    ]


# A namespace whose policy is narrower than the API: what its Pkis are told.
PAYMENTS_POLICY: dict[str, Any] = {
    "metadata": {"name": "payments"},
    "spec": {
        "namespaces": ["payments"],
        "allowedServiceNames": ["db", "api"],
        "maxDuration": "720h",
        "allowedKeyAlgorithms": ["ECDSA", "Ed25519"],
    },
}
PAYMENTS = Context(policies=[PAYMENTS_POLICY], namespace_labels={}, onboarded=True)

NAMESPACE_CASES: list[tuple[str, dict[str, Any], Context, list[tuple[Severity, str, str]]]] = [
    ("no duration: the policy's maxDuration is the default", {}, PAYMENTS, []),
    (
        "a duration over the bound is still refused",
        {"duration": "2160h"},
        PAYMENTS,
        [(E, "spec.duration", '"2160h" is longer than PkiPolicy "payments" allows')],
    ),
    (
        "every finding at once when the service name is refused",
        {
            "serviceName": "dbb",
            "duration": "1440h",
            "privateKey": {"algorithm": "RSA", "size": 4096},
        },
        PAYMENTS,
        [
            (
                E,
                "spec.serviceName",
                'allowed by PkiPolicy "payments": db, api); did you mean "db"?',
            ),
            (E, "spec.duration", 'longer than PkiPolicy "payments" allows (maxDuration 720h)'),
            (E, "spec.privateKey.algorithm", '"RSA" is not allowed by PkiPolicy "payments"'),
        ],
    ),
    (
        "a refused service name does not refuse the names made from it",
        {"serviceName": "dbb", "dnsNames": ["dbb.payments.svc"], "commonName": "dbb.payments.svc"},
        PAYMENTS,
        [(E, "spec.serviceName", "is not allowed")],
    ),
    (
        "the algorithms listed are the namespace's",
        {"privateKey": {"algorithm": "ed-25519"}},
        PAYMENTS,
        [
            (
                E,
                "spec.privateKey.algorithm",
                '"ed-25519" is not a key algorithm; allowed in this namespace: ECDSA, Ed25519; '
                'did you mean "Ed25519"?',
            )
        ],
    ),
    (
        "renewBefore hint from the policy's bound, not the refused duration",
        {"duration": "2160h", "renewBefore": "2160h"},
        PAYMENTS,
        [
            (E, "spec.duration", 'set it to "720h" or less'),
            (E, "spec.renewBefore", '(720h, the longest allowed); try "240h"'),
        ],
    ),
    (
        "renewBefore against the policy's default duration",
        {"renewBefore": "1000h"},
        PAYMENTS,
        [(E, "spec.renewBefore", 'must be shorter than spec.duration (720h); try "240h"')],
    ),
    (
        "a namespace not onboarded: a warning saying how",
        {},
        Context(policies=[PAYMENTS_POLICY], namespace_labels={}, onboarded=False),
        [
            (
                W,
                "metadata.namespace",
                'metadata.namespace: "payments" is not onboarded; a cluster admin runs: '
                "kubectl apply -n payments -f deploy/tenants/",
            )
        ],
    ),
    (
        "onboarding unknown (lint, the issuer): nothing said",
        {},
        Context(policies=[PAYMENTS_POLICY], namespace_labels={}),
        [],
    ),
]


@pytest.mark.parametrize(
    ("spec", "context", "expected"),
    [c[1:] for c in NAMESPACE_CASES],
    ids=[c[0] for c in NAMESPACE_CASES],
)
def test_what_a_namespace_is_told(
    spec: dict[str, Any], context: Context, expected: list[tuple[Severity, str, str]]
) -> None:
    body = {
        **pki(**{"serviceName": "db", **spec}),
        "metadata": {"name": "db", "namespace": "payments"},
    }
    findings = validate_pki(body, "payments", context)
    assert summary(findings) == [(severity, path) for severity, path, _ in expected]
    for finding, (_, _, fragment) in zip(findings, expected, strict=True):
        assert fragment in phrase(finding)
        assert len(phrase(finding)) <= 140, phrase(finding)


def test_the_issuer_issues_the_duration_the_policy_defaults_to() -> None:
    body = {"metadata": {"name": "db", "namespace": "payments"}, "spec": {"serviceName": "db"}}
    defaulted = policy_defaulted(body, "payments", PAYMENTS)
    assert defaulted["spec"]["duration"] == "720h"
    assert apply_defaults(defaulted)["spec"]["renewBefore"] == "240h"
    assert body["spec"] == {"serviceName": "db"}, "the input is left alone"
    # A bound at or above the default, or a duration given, leaves the Pki as it is.
    assert policy_defaulted(body, "app1", CONTEXT) is body
    given = {**body, "spec": {"serviceName": "db", "duration": "100h"}}
    assert policy_defaulted(given, "payments", PAYMENTS) is given


@pytest.mark.parametrize(
    ("algorithms", "advice"),
    [
        (["RSA"], "use 3072"),
        (["RSA", "ECDSA"], "use 3072 or ECDSA"),
    ],
)
def test_weak_rsa_advice_names_only_what_the_namespace_may_use(
    algorithms: list[str], advice: str
) -> None:
    policy = {
        "metadata": {"name": "p"},
        "spec": {
            "namespaces": ["payments"],
            "allowedServiceNames": ["db"],
            "allowedKeyAlgorithms": algorithms,
        },
    }
    body = {
        "metadata": {"name": "db", "namespace": "payments"},
        "spec": {"serviceName": "db", "privateKey": {"algorithm": "RSA"}, "duration": "8784h"},
    }
    (finding,) = validate_pki(body, "payments", Context(policies=[policy], namespace_labels={}))
    assert phrase(finding) == (
        "spec.privateKey.size: 2048 (the default) is weak for a certificate valid over a year; "
        + advice
    )
