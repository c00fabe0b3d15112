"""Does a Secret's certificate chain to the namespace's trust bundle: real certificates, a table."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pkiwarden.why.chain import ChainFacts, chain_fix, chain_problem
from pkiwarden.why.facts import TrustFacts, certificate_facts, trust_facts
from shared.certificates import common_name, new_ec_key, self_signed_ca, serial_hex, signed_leaf

NOW = dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC)
YEAR = dt.timedelta(days=365)
CA_KEY = new_ec_key()
CA = self_signed_ca(common_name("pkiwarden CA 1"), CA_KEY, NOW, YEAR)
NEXT_KEY = new_ec_key()
NEXT = self_signed_ca(common_name("pkiwarden CA 2"), NEXT_KEY, NOW, YEAR)
# The same name as CA, another key: a CA replaced under its name.
IMPOSTOR_KEY = new_ec_key()
IMPOSTOR = self_signed_ca(common_name("pkiwarden CA 1"), IMPOSTOR_KEY, NOW, YEAR)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def leaf(ca: x509.Certificate, key: object, issued: dt.datetime = NOW) -> x509.Certificate:
    return signed_leaf(
        ca,
        key,  # type: ignore[arg-type]
        new_ec_key().public_key(),
        common_name("app2"),
        now=issued,
        lifetime=dt.timedelta(days=90),
        usages=[x509.ExtendedKeyUsageOID.SERVER_AUTH],
        dns_names=["app2.app2.svc"],
    )


def bundle(*cas: x509.Certificate) -> TrustFacts:
    return trust_facts({"data": {"ca.crt": pem(*cas).decode()}})


LEAF = leaf(CA, CA_KEY)
EXPIRED = leaf(CA, CA_KEY, issued=NOW - dt.timedelta(days=100))


@pytest.mark.parametrize(
    ("certificate", "trust", "chains", "valid_now", "problem"),
    [
        pytest.param(LEAF, bundle(CA), True, True, None, id="chains"),
        pytest.param(LEAF, bundle(NEXT, CA), True, True, None, id="chains-during-rotation"),
        pytest.param(
            LEAF,
            bundle(NEXT),
            False,
            True,
            "issued by CN=pkiwarden CA 1, which is not a CA in pkiwarden-ca.crt",
            id="wrong-ca",
        ),
        pytest.param(
            LEAF,
            bundle(IMPOSTOR),
            False,
            True,
            "issued by CN=pkiwarden CA 1, a name a CA in pkiwarden-ca.crt has, but its signature"
            " does not verify with that CA's key (a CA replaced under the same name)",
            id="same-name-other-key",
        ),
        pytest.param(
            EXPIRED,
            bundle(CA),
            True,
            False,
            f"expired at {EXPIRED.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            id="expired",
        ),
        pytest.param(
            LEAF,
            TrustFacts(present=False),
            None,
            True,
            "no trust bundle (pkiwarden-ca.crt) is published in this namespace",
            id="bundle-missing",
        ),
        pytest.param(
            LEAF,
            TrustFacts(present=None),
            None,
            True,
            "the trust bundle (pkiwarden-ca.crt) could not be read",
            id="bundle-unreadable",
        ),
        pytest.param(
            LEAF,
            trust_facts({"data": {"ca.crt": "not pem"}}),
            None,
            True,
            "the trust bundle pkiwarden-ca.crt holds no readable CA certificate",
            id="bundle-broken",
        ),
    ],
)
def test_chain_and_validity(
    certificate: x509.Certificate,
    trust: TrustFacts,
    chains: bool | None,
    valid_now: bool,
    problem: str | None,
) -> None:
    facts = certificate_facts(pem(certificate), trust, NOW)
    assert (facts.chains, facts.valid_now, facts.problem) == (chains, valid_now, problem)
    assert facts.serial == serial_hex(certificate.serial_number)
    assert facts.issuer == "CN=pkiwarden CA 1"
    if chains:
        assert facts.authority_subject == "CN=pkiwarden CA 1"
        assert facts.authority_serial == serial_hex(CA.serial_number)
    else:
        assert facts.authority_subject is facts.authority_serial is None
    assert facts.failed is (chains is False or not valid_now)


def test_not_yet_valid_is_outside_the_window() -> None:
    early = certificate_facts(
        pem(leaf(CA, CA_KEY, issued=NOW + dt.timedelta(days=1))), bundle(CA), NOW
    )
    assert early.valid_now is False and early.chains is True
    assert early.problem is not None and early.problem.startswith("not valid before ")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "tls.crt is empty"),
        (b"-----BEGIN CERTIFICATE-----\nx\n", "tls.crt is not a certificate"),
    ],
)
def test_an_unreadable_certificate_does_not_chain(data: bytes | None, problem: str) -> None:
    facts = certificate_facts(data, bundle(CA), NOW)
    assert facts.chains is False and facts.serial is None
    assert facts.problem is not None and facts.problem.startswith(problem)


def test_the_verdict_and_the_fix_name_the_secret_and_the_pki() -> None:
    wrong = certificate_facts(pem(LEAF), bundle(NEXT), NOW)
    assert chain_problem("app2-pki-tls", wrong) == (
        "the certificate in Secret app2-pki-tls does not chain to the trust bundle"
    )
    fix = chain_fix("app2-pki-tls", "app2-pki", wrong)
    assert fix is not None and "wait for the issuer to re-issue Pki app2-pki" in fix
    fine = certificate_facts(pem(LEAF), bundle(CA), NOW)
    assert (
        chain_problem("app2-pki-tls", fine) is chain_fix("app2-pki-tls", "app2-pki", fine) is None
    )
    unknown = certificate_facts(pem(LEAF), TrustFacts(present=False), NOW)
    assert chain_problem("app2-pki-tls", unknown) is None  # nothing to check against is no failure
    assert ChainFacts(None, None, None, None, chains=None).failed is False
