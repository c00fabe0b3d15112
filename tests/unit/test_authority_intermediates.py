"""A supplied intermediate under an offline root: the root is the trust, the chain rides along.

A new intermediate under the same root changes no consumer's trust, so
Propagating (and Retiring) need not wait for it to spread.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509

from issuer.controllers.authorities.decisions.phases import (
    Move,
    Observed,
    Phase,
    RotationState,
    next_transition,
)
from issuer.controllers.authorities.decisions.trust import anchor, bundle_certificates, bundle_pem
from issuer.controllers.authorities.inputs.state import (
    NewCA,
    material_after,
    read_material,
    render,
)
from issuer.runtime import issuance
from issuer.runtime.signers import load_ca
from tests.unit.builders import NOW, intermediate_ca, supplied_ca_secret

ROOT, ROOT_KEY = issuance.self_signed_ca("offline root", NOW, timedelta(days=3650))
MIDDLE, MIDDLE_KEY = intermediate_ca(ROOT, ROOT_KEY, "policy CA")
FIRST, FIRST_KEY = intermediate_ca(MIDDLE, MIDDLE_KEY, "issuing CA 1")
SECOND, SECOND_KEY = intermediate_ca(MIDDLE, MIDDLE_KEY, "issuing CA 2")
OTHER_ROOT, OTHER_KEY = issuance.self_signed_ca("another root", NOW, timedelta(days=3650))
SECRET = supplied_ca_secret("pkiwarden-system", "platform-ca", FIRST, FIRST_KEY, (MIDDLE,), (ROOT,))
HOUR = timedelta(hours=1)


def _subjects(certificates: object) -> list[str]:
    assert isinstance(certificates, (list, tuple))
    return [c.subject.rfc4514_string() for c in certificates if isinstance(c, x509.Certificate)]


def test_an_intermediate_is_anchored_at_its_root_through_its_chain() -> None:
    assert anchor(FIRST, (MIDDLE,), (ROOT,)) == ROOT
    assert anchor(ROOT) == ROOT  # a self-signed CA is its own anchor
    assert anchor(FIRST, (), (ROOT,)) == FIRST  # no way up: trusted as itself, never a guess
    assert anchor(FIRST, (MIDDLE,), (OTHER_ROOT,)) == MIDDLE  # a root that did not sign it


def test_the_trust_set_of_a_supplied_intermediate_is_its_root() -> None:
    material = read_material(SECRET)
    assert material is not None
    assert (material.active, material.active_chain, material.roots) == (FIRST, (MIDDLE,), (ROOT,))
    assert _subjects([t.certificate for t in material.trusted(RotationState(), NOW)]) == [
        "CN=offline root"
    ]


def test_a_move_keeps_the_chain_and_a_new_intermediate_under_the_root_adds_no_trust() -> None:
    material = read_material(SECRET)
    assert material is not None
    stable = RotationState()
    begun = material_after(
        material, stable, Move.BEGIN, NewCA(SECOND, SECOND_KEY, (MIDDLE,), (ROOT,))
    )
    propagating = RotationState(phase=Phase.PROPAGATING, has_next=True)
    assert begun.adds_no_trust(propagating, NOW)
    assert bundle_pem(begun.trusted(propagating, NOW)) == bundle_pem(material.trusted(stable, NOW))
    written = read_material(render(SECRET, propagating, begun, NOW))
    assert written is not None
    assert (written.active_chain, written.next, written.next_chain) == (
        (MIDDLE,),
        SECOND,
        (MIDDLE,),
    )
    promoted = material_after(written, propagating, Move.PROMOTE, None)
    reissuing = RotationState(phase=Phase.REISSUING, has_previous=True)
    body = render(SECRET, reissuing, promoted, NOW)
    signer = load_ca(body, "pkiwarden-system", "platform-ca", NOW)
    assert isinstance(signer, issuance.SigningCA)
    assert (signer.certificate, signer.chain, signer.root) == (SECOND, (MIDDLE,), ROOT)
    assert _subjects(bundle_certificates(signer.trust)) == ["CN=offline root"]


def test_a_new_intermediate_under_another_root_is_propagated_first() -> None:
    material = read_material(SECRET)
    assert material is not None
    other, other_key = intermediate_ca(OTHER_ROOT, OTHER_KEY, "issuing CA elsewhere")
    begun = material_after(
        material, RotationState(), Move.BEGIN, NewCA(other, other_key, (), (OTHER_ROOT,))
    )
    propagating = RotationState(phase=Phase.PROPAGATING, has_next=True)
    assert not begun.adds_no_trust(propagating, NOW)
    assert sorted(_subjects([t.certificate for t in begun.trusted(propagating, NOW)])) == [
        "CN=another root",
        "CN=offline root",
    ]


def test_propagating_and_retiring_wait_only_when_the_trust_set_changes() -> None:
    seen = Observed(now=NOW, trust_propagation=HOUR, trust_current=True, trust_unchanged=True)
    propagating = RotationState(phase=Phase.PROPAGATING, phase_start=NOW, has_next=True)
    step = next_transition(propagating, seen)
    assert step.move is Move.PROMOTE
    assert "no trust change to propagate" in step.message
    retiring = RotationState(phase=Phase.RETIRING, phase_start=NOW, has_previous=True)
    assert next_transition(retiring, seen).move is Move.FORGET
    changed = Observed(now=NOW, trust_propagation=HOUR, trust_current=True)
    assert next_transition(propagating, changed).move is Move.TRUST_SYNCED
    assert next_transition(retiring, changed).move is Move.NONE
