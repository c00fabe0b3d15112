"""Which PkiAuthority a Pki may name: every message, at apply time and at run time, as a table."""

from typing import Any

import pytest

from shared.findings import Category, Severity, phrase
from shared.impact import PolicyContext, policy_change_findings, unknown_authorities
from shared.policy import compile_policy
from shared.validation.common import message_for_denial, warning_messages
from shared.validation.pki import Context, usable_authorities, validate_pki
from shared.validation.pki_policy import validate_policy

E, W = Severity.ERROR, Severity.WARNING
KNOWN = frozenset({"default", "platform", "internal"})


def policy(name: str, services: list[str], authorities: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"namespaces": ["app1"], "allowedServiceNames": services}
    if authorities is not None:
        spec["allowedAuthorities"] = authorities
    return {"kind": "PkiPolicy", "metadata": {"name": name}, "spec": spec}


APP_TEAMS = policy("app-teams", ["app1"], ["default", "platform"])
OTHERS = policy("others", ["web"], ["internal"])


def pki(authority: str | None = None, service: str = "app1") -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceName": service}
    if authority is not None:
        spec["authority"] = authority
    return {"kind": "Pki", "metadata": {"name": "app1-pki", "namespace": "app1"}, "spec": spec}


def told(
    body: dict[str, Any],
    known: frozenset[str] | None = KNOWN,
    policies: tuple[dict[str, Any], ...] = (APP_TEAMS, OTHERS),
    *,
    at_run_time: bool = False,
) -> list[tuple[Severity, str]]:
    context = Context(policies=policies, authorities=known, at_run_time=at_run_time)
    return [(f.severity, phrase(f)) for f in validate_pki(body, "app1", context)]


CASES: list[tuple[str, dict[str, Any], frozenset[str] | None, bool, list[tuple[Severity, str]]]] = [
    ("the default, which exists and is allowed", pki(), KNOWN, False, []),
    ("an allowed authority that exists", pki("platform"), KNOWN, False, []),
    ("nothing known: only the policy is asked", pki("platform"), None, False, []),
    (
        "a typo of an authority that exists: denied with the list and did you mean",
        pki("platfrom"),
        KNOWN,
        False,
        [
            (
                E,
                'spec.authority: "platfrom" is not a PkiAuthority (this namespace may use: '
                'default, platform); did you mean "platform"?',
            )
        ],
    ),
    (
        "an authority that exists but the policy does not allow: names the policy",
        pki("internal"),
        KNOWN,
        False,
        [
            (
                E,
                'spec.authority: "internal" is not allowed by PkiPolicy "app-teams" '
                "(allowed: default, platform)",
            )
        ],
    ),
    (
        "a typo while the authorities are unknown (lint without them): the policy's list",
        pki("platfom"),
        None,
        False,
        [
            (
                E,
                'spec.authority: "platfom" is not allowed by PkiPolicy "app-teams" '
                '(allowed: default, platform); did you mean "platform"?',
            )
        ],
    ),
    (
        "only authorities that exist are offered",
        pki("nope"),
        frozenset({"platform"}),
        False,
        [(E, 'spec.authority: "nope" is not a PkiAuthority (this namespace may use: platform)')],
    ),
    (
        "a default that does not exist yet is admitted with a warning",
        pki(),
        frozenset({"platform"}),
        False,
        [
            (
                W,
                'spec.authority: "default" (the default) is not a PkiAuthority yet; nothing is '
                "issued until it exists (this namespace may use: platform)",
            )
        ],
    ),
    (
        "at run time a missing authority stops issuance and says who can fix it",
        pki("platform"),
        frozenset({"default"}),
        True,
        [
            (
                E,
                'spec.authority: "platform" is not a PkiAuthority (this namespace may use: '
                "default); ask the platform team to create it, or change spec.authority",
            )
        ],
    ),
    (
        "at run time an allowed authority that exists passes",
        pki("platform"),
        KNOWN,
        True,
        [],
    ),
    (
        "a name that cannot be an object name",
        pki("Platform_CA"),
        KNOWN,
        False,
        [
            (
                E,
                'spec.authority: "Platform_CA" is not a PkiAuthority name: it has an illegal '
                'character "P" at position 1; only a-z, 0-9, "-" and "." are allowed',
            )
        ],
    ),
    ("an empty name", pki(""), KNOWN, False, [(E, 'spec.authority: "" must not be empty')]),
]


@pytest.mark.parametrize(
    ("body", "known", "at_run_time", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_spec_authority(
    body: dict[str, Any],
    known: frozenset[str] | None,
    at_run_time: bool,
    expected: list[tuple[Severity, str]],
) -> None:
    assert told(body, known, at_run_time=at_run_time) == expected


def test_a_policy_that_stopped_allowing_it_says_what_it_allows_now() -> None:
    tightened = policy("app-teams", ["app1"], ["default"])
    assert told(pki("platform"), policies=(tightened,), at_run_time=True) == [
        (
            E,
            'spec.authority: "platform" is not allowed by PkiPolicy "app-teams" (now allows: '
            "default); ask the platform team to allow it, or change spec.authority",
        )
    ]


def test_a_policy_that_says_nothing_allows_the_default_only() -> None:
    silent = policy("app-teams", ["app1"], None)
    assert told(pki(), policies=(silent,)) == []
    assert told(pki("platform"), policies=(silent,)) == [
        (
            E,
            'spec.authority: "platform" is not allowed by PkiPolicy "app-teams" (allowed: default)',
        )
    ]


def test_a_default_the_policy_does_not_allow_is_denied_even_if_missing() -> None:
    platform_only = policy("app-teams", ["app1"], ["platform"])
    assert told(pki(), frozenset({"platform"}), policies=(platform_only,)) == [
        (
            E,
            'spec.authority: "default" (the default) is not allowed by PkiPolicy "app-teams" '
            "(allowed: platform)",
        )
    ]


def test_did_you_mean_offers_only_what_the_namespace_may_use() -> None:
    # "internal" exists and is close, but only another service's policy allows it here.
    (finding,) = validate_pki(
        pki("interna"), "app1", Context((APP_TEAMS, OTHERS), authorities=KNOWN)
    )
    assert finding.category is Category.UNKNOWN_AUTHORITY
    assert "did you mean" not in finding.problem
    assert "default, platform" in finding.problem


def test_the_denial_and_the_warning_read_as_one_line_each() -> None:
    typo = validate_pki(pki("platfrom"), "app1", Context((APP_TEAMS,), authorities=KNOWN))
    assert message_for_denial(typo).startswith('spec.authority: "platfrom" is not a PkiAuthority')
    waiting = validate_pki(pki(), "app1", Context((APP_TEAMS,), authorities=frozenset()))
    assert message_for_denial(waiting) == ""
    assert warning_messages(waiting) == [
        'spec.authority: "default" (the default) is not a PkiAuthority yet; nothing is issued '
        "until it exists (this namespace may use: none)"
    ]


def test_usable_authorities_keep_the_policies_order_once_each() -> None:
    policies = [compile_policy(APP_TEAMS), compile_policy(policy("b", ["x"], ["platform", "z"]))]
    assert usable_authorities(policies, None) == ("default", "platform", "z")
    assert usable_authorities(policies, frozenset({"z", "platform"})) == ("platform", "z")


@pytest.mark.parametrize(
    ("authorities", "expected"),
    [
        (["default", "platform"], []),
        (
            ["Platform"],
            [
                'spec.allowedAuthorities[0]: "Platform" has upper case letters; use lower '
                'case: "platform"'
            ],
        ),
        (
            ["platform", "platform"],
            [
                'spec.allowedAuthorities[1]: "platform" is listed twice (also at '
                "spec.allowedAuthorities[0]); remove one"
            ],
        ),
        (
            [],
            [
                "spec.allowedAuthorities: must not be an empty list; leave the field out "
                "for the default"
            ],
        ),
    ],
)
def test_policy_allowed_authorities(authorities: list[str], expected: list[str]) -> None:
    body = {"apiVersion": "pkiwarden.dev/v1alpha1", **policy("p", ["x"], authorities)}
    body["kind"] = "PkiPolicy"
    assert [phrase(f) for f in validate_policy(body)] == expected


def test_a_policy_naming_an_authority_that_does_not_exist_is_warned() -> None:
    typo = policy("app-teams", ["app1"], ["default", "platfrom"])
    found = policy_change_findings(typo, PolicyContext(authorities=KNOWN))
    assert [(f.severity, phrase(f)) for f in found] == [
        (
            W,
            'spec.allowedAuthorities[1]: "platfrom" is not a PkiAuthority (yet), so no Pki can '
            'use it; did you mean "platform"?',
        )
    ]
    assert unknown_authorities(typo, None) == []  # unknown: nothing said


def test_a_policy_dropping_an_authority_names_the_pkis_it_stops_allowing() -> None:
    using = pki("platform")
    tightened = policy("app-teams", ["app1"], ["default"])
    context = PolicyContext(policies=[APP_TEAMS], pkis=[using], authorities=KNOWN)
    (warning,) = policy_change_findings(tightened, context)
    assert warning.problem.startswith("no longer allows 1 existing Pki")
    assert warning.problem.endswith(": app1/app1-pki")
