"""The unit-test builders themselves: a Secret built for a Pki is one the issuer keeps."""

from __future__ import annotations

from issuer.plan import Action, plan
from tests.unit.builders import NOW, issued_secret, make_ca, make_pki


def test_builders_make_a_secret_that_is_up_to_date() -> None:
    pki = make_pki()
    ca = make_ca()
    assert plan(pki, issued_secret(pki, ca), ca, [], NOW).action is Action.WAIT
