"""``why`` names the PkiAuthority that signs a Pki, its phase and whether it can sign."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pkiwarden.why.facts import AuthorityFacts, authority_facts, pki_facts
from pkiwarden.why.render import render_json, render_text
from tests.unit.test_why_facts import pki, policy
from tests.unit.test_why_render import READY, facts

MISSING = 'CA Secret "pkiwarden-system/platform-ca" is missing or holds no readable tls.crt'


def authority(name: str, ready: str | None = None, phase: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "message": MISSING}]
    if phase is not None:
        status["phase"] = phase
    return {"metadata": {"name": name}, "status": status}


KNOWN = {
    "default": authority("default", "True", "Stable"),
    "platform": authority("platform", "False", "Stable"),
    "new": authority("new"),
}


@pytest.mark.parametrize(
    ("name", "known", "expected", "line"),
    [
        (
            "default",
            KNOWN,
            AuthorityFacts("default", exists=True, ready=True, phase="Stable", message=MISSING),
            "PkiAuthority default (signs it): Ready, phase Stable",
        ),
        (
            "platform",
            KNOWN,
            AuthorityFacts("platform", exists=True, ready=False, phase="Stable", message=MISSING),
            f"PkiAuthority platform (signs it): NOT Ready, phase Stable: {MISSING}",
        ),
        (
            "new",
            KNOWN,
            AuthorityFacts("new", exists=True),
            "PkiAuthority new (signs it): no status yet, no issuer has taken it up; no phase yet",
        ),
        (
            "platfrom",
            KNOWN,
            AuthorityFacts("platfrom", exists=False),
            "PkiAuthority platfrom (signs it): does not exist",
        ),
        (
            "default",
            None,
            AuthorityFacts("default"),
            "PkiAuthority default (signs it): not readable with these permissions",
        ),
    ],
)
def test_the_authority_line(
    name: str, known: dict[str, Any] | None, expected: AuthorityFacts, line: str
) -> None:
    found = authority_facts(name, known)
    assert found == expected
    text = render_text(facts(dataclasses.replace(READY, authority=found)))
    assert f"    {line}" in text.splitlines()
    document = render_json(facts(dataclasses.replace(READY, authority=found)))
    assert document["pkis"][0]["authority"]["name"] == name


def test_a_pki_names_its_authority_or_the_default_and_is_re_checked_against_them() -> None:
    allowed = policy(["app2"])
    allowed["spec"]["allowedAuthorities"] = ["default", "platform"]
    defaulted = pki_facts(pki(), policies=[allowed], namespace_labels={}, authorities=KNOWN)
    assert defaulted.authority == authority_facts("default", KNOWN)
    assert defaulted.findings == ()
    typo = pki_facts(
        pki(authority="platfrom"), policies=[allowed], namespace_labels={}, authorities=KNOWN
    )
    assert typo.findings == (
        'spec.authority: "platfrom" in Pki app2-pki is not a PkiAuthority (this namespace may '
        'use: default, platform); did you mean "platform"?',
    )
