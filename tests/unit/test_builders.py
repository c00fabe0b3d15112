"""The unit-test builders themselves: a Secret built for a Pki is one the issuer keeps."""

from __future__ import annotations

from issuer.controllers.pkis.decisions.verdict import Step, decide_issuance
from tests.unit.builders import NOW, issued_secret, make_ca, make_pki


def test_builders_make_a_secret_that_is_up_to_date() -> None:
    pki = make_pki()
    ca = make_ca()
    assert decide_issuance(pki, issued_secret(pki, ca), ca, [], NOW).step is Step.WAIT
