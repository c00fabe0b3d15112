"""``pkiwarden ca``: the overview of every authority, the verdicts, and an unknown name."""

from datetime import UTC, datetime
from typing import Any

import pytest

from pkiwarden.ca.render import (
    NOT_SERVED,
    no_such_authority,
    not_ready,
    render_overview,
    render_status,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MISSING = 'CA Secret "pkiwarden-system/platform-ca" is missing or holds no readable tls.crt'


def authority(name: str, ready: str | None, message: str = "", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name, "creationTimestamp": "2026-12-06T11:00:00Z"}}
    if ready is not None:
        condition = {"type": "Ready", "status": ready, "reason": "R", "message": message}
        body["status"] = {"conditions": [condition], **status}
    return body


DEFAULT = authority(
    "default",
    "True",
    phase="Stable",
    activeNotAfter="2036-12-01T00:00:00Z",
    pendingPkis=0,
    caEstablishedTime="2026-12-06T11:00:00Z",
)
PLATFORM_GONE = authority("platform", "False", MISSING, phase="Stable", pendingPkis=0)
NEW = authority("internal", None)


def test_every_authority_gets_a_row_in_name_order_with_ready() -> None:
    assert render_overview([DEFAULT, authority("audit", "True", phase="Stable")], NOW) == (
        "NAME      READY   PHASE    ACTIVE CA EXPIRES      PENDING   AGE\n"
        "audit     True    Stable                                    1h\n"
        "default   True    Stable   2036-12-01T00:00:00Z   0         1h"
    )


def test_what_is_not_ready_is_said_first_one_line_each() -> None:
    lines = render_overview([DEFAULT, PLATFORM_GONE, NEW], NOW).splitlines()
    assert lines[:3] == [
        f"NOT READY: PkiAuthority internal is not Ready: {NOT_SERVED}",
        f"NOT READY: PkiAuthority platform cannot sign: {MISSING}",
        "",
    ]
    assert [line.split()[:2] for line in lines[3:]] == [
        ["NAME", "READY"],
        ["default", "True"],
        ["internal", "1h"],  # no status at all: empty cells
        ["platform", "False"],
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (DEFAULT, None),
        (PLATFORM_GONE, MISSING),
        (NEW, NOT_SERVED),
        (authority("x", "Unknown", "waiting for the first CA"), "waiting for the first CA"),
    ],
)
def test_not_ready(body: dict[str, Any], expected: str | None) -> None:
    assert not_ready(body) == expected


def test_no_authority_at_all_is_not_ready_and_says_what_to_create() -> None:
    assert render_overview([], NOW).startswith(
        "NOT READY: no PkiAuthority exists, so no Pki can be issued; create one"
    )


def test_one_authority_names_its_own_trust_key() -> None:
    text = render_status(PLATFORM_GONE, NOW)
    assert text.splitlines()[0] == f"NOT READY: PkiAuthority platform cannot sign: {MISSING}"
    assert "Trust set (ConfigMap pkiwarden-ca.crt, keys platform.crt and ca.crt):" in text


def test_an_unknown_name_lists_those_there_are_and_the_likely_one() -> None:
    assert no_such_authority("platfrom", ["platform", "default"]) == (
        'there is no PkiAuthority "platfrom" (there are: default, platform); '
        'did you mean "platform"?'
    )
    assert no_such_authority("x", []) == 'there is no PkiAuthority "x" (there are: none)'


def test_a_missing_ca_secret_is_not_ready_even_with_a_stale_ready_status() -> None:
    gone = "pkiwarden-system/pkiwarden-ca"
    assert not_ready(DEFAULT, gone) == (
        f'its CA Secret "{gone}" does not exist, so nothing can be signed; restore it from a '
        "backup, or create it (type kubernetes.io/tls)"
    )
    lines = render_overview([DEFAULT], NOW, {"default": gone}).splitlines()
    assert lines[0].startswith(
        f'NOT READY: PkiAuthority default cannot sign: its CA Secret "{gone}" does not exist'
    )
    # The issuer's own words win when it has said why already.
    assert not_ready(PLATFORM_GONE, "pkiwarden-system/platform-ca") == MISSING


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"generate": {}}, "the issuer generates its first one (spec.generate)"),
        ({}, "has not been created. A cluster administrator must create it"),
    ],
    ids=["generated", "supplied"],
)
def test_a_fresh_authoritys_missing_ca_secret_is_not_a_lost_one(
    spec: dict[str, Any], says: str
) -> None:
    """Never had a CA: nothing to restore, so the advice is to wait for it or supply it."""
    fresh = {**NEW, "spec": {"secretName": "internal-ca", **spec}}
    problem = not_ready(fresh, "pkiwarden-system/internal-ca")
    assert problem is not None
    assert problem.startswith('PkiAuthority "internal" has no CA yet: ')
    assert 'CA Secret "pkiwarden-system/internal-ca"' in problem
    assert says in problem
    assert "backup" not in problem
