"""Key material for the local control plane: a throw-away CA, the API server's
serving certificate, client certificates for the admin, the controller-manager
and the scheduler, and the service-account signing key.

Everything here is pure apart from :func:`write_control_plane_pki`, which puts
the PEM files where the API server flags point. ECDSA P-256 keys keep start-up
fast (an RSA key costs far more to generate) and are accepted everywhere the
API server and the Python client need them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkiwarden.local.readiness import LOOPBACK
from shared import certificates

ADMIN_USER = "pkiwarden-admin"
ADMIN_GROUP = "system:masters"
# The users the API server's bootstrap RBAC grants each component's rights to.
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
# The API server's identity when it calls a kubelet (logs, exec, port-forward).
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
# The in-cluster names a client may use for the API server, plus loopback.
SERVING_DNS_NAMES: tuple[str, ...] = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# Long enough that a control plane left running for a while keeps working.
VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True)
class PkiFiles:
    """Where :func:`write_control_plane_pki` put each file."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    ca_key: Path
    admin_cert: Path
    admin_key: Path
    controller_manager_cert: Path
    controller_manager_key: Path
    scheduler_cert: Path
    scheduler_key: Path
    sa_key: Path
    sa_pub: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path


def new_ca(now: dt.datetime, common_name: str = "pkiwarden-local-ca") -> Issued:
    """A self-signed CA that signs both the serving and the client certificates."""
    key = certificates.new_ec_key()
    cert = certificates.self_signed_ca(certificates.common_name(common_name), key, now, VALIDITY)
    return Issued(certificates.key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _leaf(
    ca: Issued,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
    *,
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> Issued:
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the local CA key must be an ECDSA key")
    key = certificates.new_ec_key()
    cert = certificates.signed_leaf(
        x509.load_pem_x509_certificate(ca.cert_pem),
        ca_key,
        key.public_key(),
        subject,
        now=now,
        lifetime=VALIDITY,
        usages=[usage],
        dns_names=dns_names,
        ip_addresses=ips,
    )
    return Issued(certificates.key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def new_serving_cert(
    ca: Issued, now: dt.datetime, service_ip: str, extra_ips: Sequence[str] = ()
) -> Issued:
    """The API server's certificate: loopback, the in-cluster names and the ``kubernetes`` IP.

    ``extra_ips``: other addresses clients dial it at (the node's bridge, for Pods).
    """
    return _leaf(
        ca,
        certificates.common_name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        now,
        dns_names=SERVING_DNS_NAMES,
        ips=(LOOPBACK, service_ip, *extra_ips),
    )


def new_kubelet_serving_cert(ca: Issued, now: dt.datetime) -> Issued:
    """A kubelet's certificate for the only names the API server dials it by: loopback."""
    return _leaf(
        ca,
        certificates.common_name("kubelet"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        now,
        dns_names=("localhost",),
        ips=(LOOPBACK,),
    )


def new_client_cert(ca: Issued, user: str, groups: Sequence[str], now: dt.datetime) -> Issued:
    """A client certificate: the API server reads CN as the user and O as groups."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    return _leaf(ca, x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, now)


def new_signing_key() -> tuple[bytes, bytes]:
    """Service-account token signing key as (private PEM, public PEM)."""
    key = certificates.new_ec_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return certificates.key_pem(key), public


def write_pem_pair(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    """Write ``NAME.crt`` and ``NAME.key`` (owner-only) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return (
        _write(directory / f"{name}.crt", issued.cert_pem),
        _write(directory / f"{name}.key", issued.key_pem, private=True),
    )


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def write_control_plane_pki(
    directory: Path, now: dt.datetime, service_ip: str, extra_ips: Sequence[str] = ()
) -> PkiFiles:
    """Generate every key and certificate the control plane needs into ``directory``.

    ``service_ip`` is the ClusterIP of the ``kubernetes`` Service (the first
    address of the service range), which in-cluster clients would dial;
    ``extra_ips`` are further addresses the API server is reached at.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca(now)
    serving = new_serving_cert(ca, now, service_ip, extra_ips)
    admin = new_client_cert(ca, ADMIN_USER, [ADMIN_GROUP], now)
    manager = new_client_cert(ca, CONTROLLER_MANAGER_USER, [], now)
    scheduler = new_client_cert(ca, SCHEDULER_USER, [], now)
    kubelet_client = new_client_cert(ca, KUBELET_CLIENT_USER, [], now)
    sa_key, sa_pub = new_signing_key()
    return PkiFiles(
        ca_cert=_write(directory / "ca.crt", ca.cert_pem),
        ca_key=_write(directory / "ca.key", ca.key_pem, private=True),
        serving_cert=_write(directory / "apiserver.crt", serving.cert_pem),
        serving_key=_write(directory / "apiserver.key", serving.key_pem, private=True),
        admin_cert=_write(directory / "admin.crt", admin.cert_pem),
        admin_key=_write(directory / "admin.key", admin.key_pem, private=True),
        controller_manager_cert=_write(directory / "controller-manager.crt", manager.cert_pem),
        controller_manager_key=_write(
            directory / "controller-manager.key", manager.key_pem, private=True
        ),
        scheduler_cert=_write(directory / "scheduler.crt", scheduler.cert_pem),
        scheduler_key=_write(directory / "scheduler.key", scheduler.key_pem, private=True),
        sa_key=_write(directory / "sa.key", sa_key, private=True),
        sa_pub=_write(directory / "sa.pub", sa_pub),
        kubelet_client_cert=_write(
            directory / "apiserver-kubelet-client.crt", kubelet_client.cert_pem
        ),
        kubelet_client_key=_write(
            directory / "apiserver-kubelet-client.key", kubelet_client.key_pem, private=True
        ),
    )
