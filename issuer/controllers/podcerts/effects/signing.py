"""The certificate a Sign decision calls for, signed for the kubelet's public key.

No private key is made here: the kubelet made it on the node and sent only
its public key. The leaf has no subject (SPIFFE's convention; the SAN is then
critical, RFC 5280 4.2.1.6), the Pod's SPIFFE URI and any allowed DNS names,
and both server and client auth, since Pods use it for mutual TLS. The chain
is the leaf, then the CA's chain above it (never the root, which is trust).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from issuer.controllers.podcerts.decisions.answer import Sign
from issuer.runtime import issuance
from shared import certificates


def sign_pod_certificate(
    decision: Sign, public_key: CertificatePublicKeyTypes, ca: issuance.SigningCA
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(decision.uri)]
    names += [x509.DNSName(name) for name in decision.dns_names]
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(issuance.random_serial())
        .not_valid_before(decision.not_before)
        .not_valid_after(decision.not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(certificates.leaf_key_usage(public_key), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(issuance.authority_key_identifier(ca.certificate), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
    )
    return builder.sign(ca.key, certificates.signature_hash(ca.key))


def certificate_chain(leaf: x509.Certificate, ca: issuance.SigningCA) -> str:
    """``status.certificateChain``: the leaf, then the intermediates up to (not incl.) the root."""
    chain = [leaf, *([ca.certificate] if ca.certificate != ca.root else []), *ca.chain]
    return b"".join(issuance.certificate_to_pem(c) for c in chain).decode()
