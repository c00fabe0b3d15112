"""Builders shared by the issuer's unit tests: Pkis, CAs and Secrets as the API would hold them."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from issuer.controllers.authorities.effects.bootstrap_ca import ca_secret_body
from issuer.controllers.pkis.decisions.secret_body import secret_body
from issuer.controllers.pkis.decisions.verdict import desired_of
from issuer.runtime import issuance
from issuer.runtime.signers import load_ca
from shared import certificates
from shared.certificates import serial_hex
from shared.defaults import apply_defaults

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NAMESPACE = "app1"


def make_ca(common_name: str = "test CA", days: int = 3650) -> issuance.SigningCA:
    certificate, key = issuance.self_signed_ca(
        common_name, NOW - timedelta(days=1), timedelta(days=days)
    )
    loaded = load_ca(
        ca_secret_body("pkiwarden-system", "ca", certificate, key), "pkiwarden-system", "ca", NOW
    )
    assert isinstance(loaded, issuance.SigningCA)
    return loaded


def make_pki(
    name: str = "app1-pki", uid: str = "uid-1", generation: int = 1, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": uid,
            "generation": generation,
            "resourceVersion": "10",
        },
        "spec": {"serviceName": "app1", **spec},
    }


def issued_secret(
    pki: dict[str, Any],
    ca: issuance.SigningCA,
    now: datetime = NOW,
    issued_for: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Secret the issuer would have written for ``issued_for`` (default: ``pki``) at ``now``."""
    desired = desired_of(apply_defaults(issued_for or pki))
    key = issuance.generate_key(desired.key)
    issued = issuance.issue_leaf(desired.request, key, ca, now)
    body = secret_body(pki, desired, issued, key, ca)
    body["metadata"]["resourceVersion"] = "5"
    return body


def with_status(pki: dict[str, Any], **status: Any) -> dict[str, Any]:
    """``pki`` with a status observed at its generation."""
    changed = copy.deepcopy(pki)
    changed["status"] = {"observedGeneration": changed["metadata"]["generation"], **status}
    return changed


def respec(pki: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """``pki`` with spec fields changed, as a new generation."""
    changed = copy.deepcopy(pki)
    changed["spec"].update(spec)
    changed["metadata"]["generation"] += 1
    return changed


def with_data(secret: dict[str, Any], **data: bytes) -> dict[str, Any]:
    changed = copy.deepcopy(secret)
    for key, value in data.items():
        changed["data"][key.replace("_", ".")] = base64.b64encode(value).decode()
    return changed


def data_of(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def leaf_of(secret: dict[str, Any]) -> x509.Certificate:
    """The certificate a Secret serves (the first of ``tls.crt``)."""
    return issuance.load_certificates(data_of(secret, "tls.crt"))[0]


def serial_of(secret: dict[str, Any]) -> str:
    """The serial of the Secret's certificate, spelled as status and annotations spell it."""
    return serial_hex(leaf_of(secret).serial_number)


def intermediate_ca(
    root: x509.Certificate,
    root_key: issuance.PrivateKey,
    common_name: str,
    now: datetime = NOW,
    lifetime: timedelta = timedelta(days=365),
) -> tuple[x509.Certificate, issuance.PrivateKey]:
    """A CA signed by ``root`` (an offline root's intermediate), with its own fresh key."""
    key = issuance.generate_key(issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256))
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + lifetime, root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(certificates.CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return certificate, key


def supplied_ca_secret(
    namespace: str,
    name: str,
    certificate: x509.Certificate,
    key: issuance.PrivateKey,
    chain: tuple[x509.Certificate, ...] = (),
    roots: tuple[x509.Certificate, ...] = (),
) -> dict[str, Any]:
    """A platform team's CA Secret: tls.crt the CA then its chain, tls.key, ca.crt the roots."""
    pem = b"".join(issuance.certificate_to_pem(c) for c in (certificate, *chain))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {
            "tls.crt": base64.b64encode(pem).decode(),
            "tls.key": base64.b64encode(issuance.key_to_pem(key)).decode(),
            "ca.crt": base64.b64encode(
                b"".join(issuance.certificate_to_pem(c) for c in roots)
            ).decode(),
        },
    }
