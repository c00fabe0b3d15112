"""The signer's decisions, its certificates and its trust bundles, without a cluster."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from issuer.controllers.podcerts.controller import trust_domain
from issuer.controllers.podcerts.decisions.answer import (
    Answer,
    AnswerReason,
    Refuse,
    Sign,
    decide_answer,
)
from issuer.controllers.podcerts.decisions.dependents import depending_on_others
from issuer.controllers.podcerts.decisions.trust_bundles import (
    BundleChange,
    Verb,
    bundle_body,
    bundle_changes,
    bundle_name,
)
from issuer.controllers.podcerts.effects.signing import certificate_chain, sign_pod_certificate
from issuer.controllers.podcerts.effects.status import issued_status
from issuer.controllers.podcerts.inputs.issued import IssuedPodCertificate, issued_certificate
from issuer.controllers.podcerts.inputs.requests import key_type_of, read_request
from shared.validation.pki_authority import validate_authority
from shared.validation.pod_certificate import REQUEST_PATHS, AskContext, judge_pod_certificate
from tests.unit.builders import NOW, make_ca

POLICY = {
    "metadata": {"name": "teams"},
    "spec": {"namespaces": ["app1"], "allowedServiceNames": ["web"]},
}


def stub_csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
) -> str:
    """An empty CSR for ``key``, as the kubelet makes it."""
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, algorithm)
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def request(key: Any = None, **spec: Any) -> dict[str, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return {
        "metadata": {
            "name": "req-abc",
            "namespace": "app1",
            "creationTimestamp": "2030-01-01T11:59:58Z",
            "resourceVersion": "5",
        },
        "spec": {
            "signerName": "pkiwarden.dev/default",
            "podName": "web-1",
            "podUID": "uid-pod",
            "serviceAccountName": "web",
            "maxExpirationSeconds": 3600,
            "stubPKCS10Request": stub_csr(key),
            **spec,
        },
    }


def decide(body: dict[str, Any], ca_not_after: Any = None, **times: Any) -> Sign | Refuse:
    read = read_request(body)
    context = AskContext(policies=[POLICY], namespace_labels={}, at_run_time=True)
    judgement = judge_pod_certificate(read.ask, REQUEST_PATHS, context)
    ca_end = NOW + timedelta(days=365) if ca_not_after is None else ca_not_after
    return decide_answer(read, judgement, ca_end, "example.org", NOW, **times)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ECDSAP256"),
        (ec.generate_private_key(ec.SECP384R1()), "ECDSAP384"),
        (ec.generate_private_key(ec.SECP521R1()), "ECDSAP521"),
        (ed25519.Ed25519PrivateKey.generate(), "ED25519"),
        (rsa.generate_private_key(65537, 3072), "RSA3072"),
    ],
)
def test_the_key_type_is_read_from_the_stub_csr(key: Any, expected: str) -> None:
    read = read_request(request(key))
    assert key_type_of(read.public_key) == expected == read.ask.key_type


def test_an_allowed_request_is_signed_with_the_api_servers_time_rules() -> None:
    decision = decide(request())
    assert isinstance(decision, Sign)
    assert decision.uri == "spiffe://example.org/ns/app1/sa/web"
    assert decision.not_after - decision.not_before == timedelta(hours=1)
    assert NOW - decision.not_before < timedelta(minutes=5)
    # 2/3 of the lifetime, and within the API's [notBefore+10m, notAfter-10m].
    assert decision.begin_refresh_at == decision.not_before + timedelta(minutes=40)


@pytest.mark.parametrize(
    ("fraction", "after_not_before"),
    [(0.0, timedelta(minutes=10)), (0.5, timedelta(minutes=30)), (0.99, timedelta(minutes=50))],
)
def test_the_refresh_fraction_is_kept_within_the_apis_ten_minute_bounds(
    fraction: float, after_not_before: timedelta
) -> None:
    decision = decide(request(), refresh_fraction=fraction, backdate=timedelta(minutes=4))
    assert isinstance(decision, Sign)
    assert decision.not_before == NOW.replace(microsecond=0) - timedelta(minutes=4)
    assert decision.begin_refresh_at == decision.not_before + after_not_before


def test_a_leaf_never_outlives_its_ca_and_a_ca_too_close_to_its_end_fails() -> None:
    decision = decide(request(maxExpirationSeconds=7200), ca_not_after=NOW + timedelta(minutes=90))
    assert isinstance(decision, Sign) and decision.not_after == NOW + timedelta(minutes=90)
    refused = decide(request(), ca_not_after=NOW + timedelta(minutes=30))
    assert isinstance(refused, Refuse)
    assert (refused.answer, refused.reason) == (Answer.FAILED, AnswerReason.CA_UNAVAILABLE)


def test_a_missing_ca_fails_with_its_message() -> None:
    refused = decide(request(), ca_not_after="the CA cannot sign: gone")
    assert refused == Refuse(Answer.FAILED, AnswerReason.CA_UNAVAILABLE, "the CA cannot sign: gone")


@pytest.mark.parametrize(
    ("body", "reason", "start"),
    [
        (
            request(ec.generate_private_key(ec.SECP521R1())),
            AnswerReason.UNSUPPORTED_KEY_TYPE,
            'spec.stubPKCS10Request: "ECDSAP521" in PodCertificateRequest req-abc is a key type',
        ),
        (
            request(unverifiedUserAnnotations={"pkiwarden.dev/dns": "web.app1.svc"}),
            AnswerReason.INVALID_ANNOTATIONS,
            'spec.unverifiedUserAnnotations: "pkiwarden.dev/dns" in PodCertificateRequest',
        ),
        (
            request(unverifiedUserAnnotations={"pkiwarden.dev/dns-names": "db.app1.svc"}),
            AnswerReason.NOT_ALLOWED,
            'spec.unverifiedUserAnnotations["pkiwarden.dev/dns-names"][0]: "db.app1.svc" in',
        ),
    ],
)
def test_refusals_are_denials_with_the_apis_reasons(
    body: dict[str, Any], reason: AnswerReason, start: str
) -> None:
    refused = decide(body)
    assert isinstance(refused, Refuse) and refused.answer is Answer.DENIED
    assert refused.reason is reason
    assert refused.message.startswith(start)


def test_an_unreadable_stub_is_denied() -> None:
    body = request()
    body["spec"]["stubPKCS10Request"] = base64.b64encode(b"not a csr").decode()
    refused = decide(body)
    assert isinstance(refused, Refuse) and refused.reason is AnswerReason.UNSUPPORTED_KEY_TYPE


def test_the_certificate_carries_the_identity_the_names_and_the_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = request(key, unverifiedUserAnnotations={"pkiwarden.dev/dns-names": "web.app1.svc"})
    decision = decide(body)
    assert isinstance(decision, Sign)
    ca = make_ca()
    leaf = sign_pod_certificate(decision, key.public_key(), ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # the subject is empty
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [decision.uri]
    assert san.value.get_values_for_type(x509.DNSName) == ["web.app1.svc"]
    assert leaf.public_key() == key.public_key()
    assert leaf.not_valid_before_utc == decision.not_before
    leaf.verify_directly_issued_by(ca.certificate)
    status = issued_status(decision, certificate_chain(leaf, ca), NOW)
    # A self-signed CA is trust, not chain: the chain is the leaf alone.
    assert len(x509.load_pem_x509_certificates(status["certificateChain"].encode())) == 1
    assert status["notAfter"] == decision.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("key", "enciphers"),
    [
        (ec.generate_private_key(ec.SECP256R1()), False),
        (ed25519.Ed25519PrivateKey.generate(), False),
        (rsa.generate_private_key(65537, 3072), True),  # TLS 1.2's RSA key exchange
    ],
    ids=["ECDSA", "Ed25519", "RSA"],
)
def test_the_key_usage_signs_and_enciphers_only_for_rsa(key: Any, enciphers: bool) -> None:
    decision = decide(request(key))
    assert isinstance(decision, Sign)
    leaf = sign_pod_certificate(decision, key.public_key(), make_ca())
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert usage.value.key_encipherment is enciphers
    assert not usage.value.key_cert_sign


TRUST = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"
NEWER = TRUST + TRUST.replace("A", "B")


def bundle(name: str, pem: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"trustBundle": pem}}


@pytest.mark.parametrize(
    ("trust", "existing", "changes"),
    [
        ("", [], []),  # no CA yet: nothing, not even a deletion
        (TRUST, [], [BundleChange(Verb.CREATE, bundle_name("default", TRUST))]),
        (TRUST, [bundle(bundle_name("default", TRUST), TRUST)], []),
        (
            NEWER,
            [bundle(bundle_name("default", TRUST), TRUST)],
            [
                BundleChange(Verb.CREATE, bundle_name("default", NEWER)),
                BundleChange(Verb.DELETE, bundle_name("default", TRUST)),
            ],
        ),
        (
            TRUST,
            [bundle(bundle_name("default", TRUST), NEWER)],  # edited by someone
            [
                BundleChange(Verb.DELETE, bundle_name("default", TRUST)),
                BundleChange(Verb.CREATE, bundle_name("default", TRUST)),
            ],
        ),
    ],
    ids=["no trust", "first", "current", "rotated: new first", "edited"],
)
def test_bundle_changes(
    trust: str, existing: list[dict[str, Any]], changes: list[BundleChange]
) -> None:
    assert bundle_changes("default", trust, existing) == changes


def test_a_bundle_is_named_and_linked_as_the_api_requires() -> None:
    body = bundle_body("team-ca", TRUST)
    assert body["metadata"]["name"].startswith("pkiwarden.dev:team-ca:")
    assert body["spec"] == {"signerName": "pkiwarden.dev/team-ca", "trustBundle": TRUST}


def test_only_each_pods_latest_valid_certificate_keeps_another_ca_trusted() -> None:
    old, new = b"old-ca", b"new-ca"
    certificates = [
        # refreshed: its newer certificate is from the active CA
        IssuedPodCertificate("pod-a", NOW - timedelta(hours=2), NOW + timedelta(hours=1), old),
        IssuedPodCertificate("pod-a", NOW - timedelta(minutes=1), NOW + timedelta(hours=2), new),
        # not refreshed yet: still depends on the old CA
        IssuedPodCertificate("pod-b", NOW - timedelta(hours=1), NOW + timedelta(hours=1), old),
        # expired: depends on nothing
        IssuedPodCertificate("pod-c", NOW - timedelta(hours=3), NOW - timedelta(hours=1), old),
    ]
    assert depending_on_others(certificates, new, NOW) == 1
    assert depending_on_others(certificates, old, NOW) == 1  # pod-a's newest is "new"


def test_an_issued_requests_certificate_is_read_back() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = request(key)
    decision = decide(body)
    assert isinstance(decision, Sign)
    ca = make_ca()
    leaf = sign_pod_certificate(decision, key.public_key(), ca)
    body["status"] = issued_status(decision, certificate_chain(leaf, ca), NOW)
    issued = issued_certificate(body)
    assert issued is not None and issued.pod_uid == "uid-pod"
    assert issued.not_after == decision.not_after
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert issued.issuer_key_id == ski.digest
    assert issued_certificate(request()) is None  # not answered yet


def test_the_trust_domain_is_the_authoritys_or_cluster_local() -> None:
    assert trust_domain({"spec": {"trustDomain": "example.org"}}) == "example.org"
    assert trust_domain({"spec": {}}) == "cluster.local"
    assert trust_domain(None) == "cluster.local"


def test_a_trust_domain_must_be_a_dns_name() -> None:
    authority = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": "team"},
        "spec": {"secretName": "team-ca", "trustDomain": "Example.org"},
    }
    found = [f for f in validate_authority(authority) if f.path == "spec.trustDomain"]
    assert len(found) == 1 and found[0].is_error
