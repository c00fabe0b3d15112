"""Loading the CA Secret: each way it can be unusable gives CAUnavailable words, no key bytes."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from issuer.controllers.authorities.effects.bootstrap_ca import ca_secret_body
from issuer.runtime import issuance
from issuer.runtime.signers import CAProblem, load_ca
from tests.unit.builders import NOW, data_of, with_data

NS, NAME = "pkiwarden-system", "pkiwarden-ca"
CERT, KEY = issuance.self_signed_ca("test CA", NOW - timedelta(days=1), timedelta(days=30))
GOOD = ca_secret_body(NS, NAME, CERT, KEY)


def _leaf_as_ca() -> dict[str, Any]:
    loaded = load_ca(GOOD, NS, NAME, NOW)
    assert isinstance(loaded, issuance.SigningCA)
    key = issuance.generate_key(issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256))
    request = issuance.LeafRequest("x", ("x.y.svc",), (), ("server auth",), timedelta(hours=2))
    leaf = issuance.issue_leaf(request, key, loaded, NOW).certificate
    return with_data(
        GOOD, tls_crt=issuance.certificate_to_pem(leaf), tls_key=issuance.key_to_pem(key)
    )


CASES: list[tuple[str, dict[str, Any] | None, object, str]] = [
    ("missing", None, NOW, "does not exist"),
    ("no tls.key", {**GOOD, "data": {"tls.crt": GOOD["data"]["tls.crt"]}}, NOW, "key is missing"),
    ("garbage tls.crt", with_data(GOOD, tls_crt=b"nope"), NOW, "no readable PEM certificate"),
    ("garbage tls.key", with_data(GOOD, tls_key=b"nope"), NOW, "no readable unencrypted PEM"),
    ("not a CA", _leaf_as_ca(), NOW, "is not a CA"),
    (
        "key of another certificate",
        with_data(
            GOOD,
            tls_key=issuance.key_to_pem(
                issuance.generate_key(issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256))
            ),
        ),
        NOW,
        "does not belong",
    ),
    ("expired", GOOD, NOW + timedelta(days=40), "expired at"),
]


@pytest.mark.parametrize(
    ("secret", "now", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_unusable_ca_is_a_problem_with_words(
    secret: dict[str, Any] | None, now: Any, words: str
) -> None:
    problem = load_ca(secret, NS, NAME, now)
    assert isinstance(problem, CAProblem)
    assert words in problem.message
    assert f'"{NS}/{NAME}"' in problem.message
    key_b64 = GOOD["data"]["tls.key"]
    assert key_b64[:40] not in problem.message
    assert "PRIVATE KEY" not in problem.message


def test_good_ca_loads_with_itself_as_root() -> None:
    loaded = load_ca(GOOD, NS, NAME, NOW)
    assert isinstance(loaded, issuance.SigningCA)
    assert loaded.root == CERT and loaded.chain == ()
    assert base64.b64decode(GOOD["data"]["ca.crt"]) == data_of(GOOD, "tls.crt")
