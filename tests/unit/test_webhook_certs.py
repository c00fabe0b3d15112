"""The webhook's own certificates: when they are made, kept, rotated, and reloaded live."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from webhook.cert_store import write_files
from webhook.certs import ServingIdentity, WebhookCertificates, plan, renewal_time
from webhook.tls import CertificateReloader, server_context

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
IDENTITY = ServingIdentity(
    dns_names=("pkiwarden-webhook.pkiwarden-system.svc",), ip_addresses=("127.0.0.1",)
)
CA_LIFE = 3000 * DAY
SERVING_LIFE = 300 * DAY


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def bundle(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


@pytest.fixture(scope="module")
def fresh() -> WebhookCertificates:
    material = plan(None, IDENTITY, NOW, ca_lifetime=CA_LIFE, serving_lifetime=SERVING_LIFE)
    assert material is not None
    return material


def test_missing_material_is_created(fresh: WebhookCertificates) -> None:
    ca, serving = cert(fresh.ca_cert), cert(fresh.tls_cert)
    serving.verify_directly_issued_by(ca)
    assert bundle(fresh.ca_bundle) == [ca]
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == list(IDENTITY.dns_names)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert serving.not_valid_after_utc == NOW + 300 * DAY
    assert "PRIVATE" not in repr(fresh)


def test_kept_until_two_thirds_of_its_life(fresh: WebhookCertificates) -> None:
    due = renewal_time(cert(fresh.tls_cert))
    assert (
        due
        == cert(fresh.tls_cert).not_valid_before_utc
        + (cert(fresh.tls_cert).not_valid_after_utc - cert(fresh.tls_cert).not_valid_before_utc)
        * 2
        / 3
    )
    assert plan(fresh, IDENTITY, NOW, ca_lifetime=CA_LIFE, serving_lifetime=SERVING_LIFE) is None
    assert (
        plan(
            fresh,
            IDENTITY,
            due - dt.timedelta(seconds=1),
            ca_lifetime=CA_LIFE,
            serving_lifetime=SERVING_LIFE,
        )
        is None
    )


@pytest.mark.parametrize(
    ("when", "identity", "force"),
    [
        pytest.param(None, IDENTITY, False, id="at 2/3 of its life"),
        pytest.param(NOW, ServingIdentity(("other.svc",)), False, id="names changed"),
        pytest.param(NOW, IDENTITY, True, id="forced"),
    ],
)
def test_serving_certificate_rotates_under_the_same_ca(
    fresh: WebhookCertificates, when: dt.datetime | None, identity: ServingIdentity, force: bool
) -> None:
    at = when or renewal_time(cert(fresh.tls_cert))
    rotated = plan(
        fresh, identity, at, force_serving=force, ca_lifetime=CA_LIFE, serving_lifetime=SERVING_LIFE
    )
    assert rotated is not None
    assert rotated.ca_cert == fresh.ca_cert
    assert rotated.ca_key == fresh.ca_key
    assert rotated.ca_bundle == fresh.ca_bundle  # the caBundle needs no change
    assert rotated.tls_cert != fresh.tls_cert
    assert rotated.tls_key != fresh.tls_key
    cert(rotated.tls_cert).verify_directly_issued_by(cert(fresh.ca_cert))


def test_ca_rotation_keeps_the_old_ca_trusted_next_to_the_new(fresh: WebhookCertificates) -> None:
    rotated = plan(
        fresh,
        IDENTITY,
        renewal_time(cert(fresh.ca_cert)),
        ca_lifetime=CA_LIFE,
        serving_lifetime=SERVING_LIFE,
    )
    assert rotated is not None
    new_ca = cert(rotated.ca_cert)
    assert new_ca != cert(fresh.ca_cert)
    assert bundle(rotated.ca_bundle) == [new_ca, cert(fresh.ca_cert)]
    cert(rotated.tls_cert).verify_directly_issued_by(new_ca)
    # Once the old CA expires it leaves the bundle.
    later = cert(fresh.ca_cert).not_valid_after_utc + DAY
    again = plan(
        rotated,
        IDENTITY,
        later,
        force_serving=True,
        ca_lifetime=CA_LIFE,
        serving_lifetime=SERVING_LIFE,
    )
    assert again is not None
    assert bundle(again.ca_bundle) == [new_ca]


def test_unusable_material_is_replaced(fresh: WebhookCertificates) -> None:
    broken = WebhookCertificates(b"junk", fresh.ca_key, fresh.tls_cert, fresh.tls_key, b"")
    mismatched = WebhookCertificates(
        fresh.ca_cert, fresh.ca_key, fresh.tls_cert, fresh.ca_key, fresh.ca_bundle
    )
    replaced = plan(broken, IDENTITY, NOW, ca_lifetime=CA_LIFE, serving_lifetime=SERVING_LIFE)
    assert replaced is not None and replaced.ca_cert != fresh.ca_cert
    rekeyed = plan(mismatched, IDENTITY, NOW, ca_lifetime=CA_LIFE, serving_lifetime=SERVING_LIFE)
    assert rekeyed is not None
    assert rekeyed.ca_cert == fresh.ca_cert and rekeyed.tls_key != fresh.ca_key


# --- live reload --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def current() -> WebhookCertificates:
    """Material valid now, for real handshakes."""
    material = plan(
        None, IDENTITY, dt.datetime.now(dt.UTC), ca_lifetime=CA_LIFE, serving_lifetime=SERVING_LIFE
    )
    assert material is not None
    return material


@pytest.fixture
def tls_server(
    tmp_path: Path, current: WebhookCertificates
) -> Iterator[tuple[int, CertificateReloader]]:
    """A bare TLS listener on the reloadable context: accepts, handshakes, closes."""
    write_files(current, tmp_path / "tls.crt", tmp_path / "tls.key")
    context = server_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    reloader = CertificateReloader(context, tmp_path / "tls.crt", tmp_path / "tls.key", 60)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            connection, _ = listener.accept()
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], reloader
    stop.set()
    socket.create_connection(listener.getsockname()).close()
    listener.close()


def served(port: int, ca_bundle: bytes, *, tls13: bool = True) -> x509.Certificate:
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    if not tls13:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_new_handshakes_get_the_new_certificate_without_a_restart(
    tmp_path: Path, current: WebhookCertificates, tls_server: tuple[int, CertificateReloader]
) -> None:
    port, reloader = tls_server
    assert reloader.context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert served(port, current.ca_bundle) == cert(current.tls_cert)
    assert served(port, current.ca_bundle, tls13=False) == cert(current.tls_cert)
    rotated = plan(
        current,
        IDENTITY,
        dt.datetime.now(dt.UTC),
        force_serving=True,
        ca_lifetime=CA_LIFE,
        serving_lifetime=SERVING_LIFE,
    )
    assert rotated is not None
    # Half-way through a rotation (new key, old certificate) nothing is loaded...
    (tmp_path / "tls.key").write_bytes(rotated.tls_key)
    assert not reloader.check()
    assert served(port, current.ca_bundle) == cert(current.tls_cert)
    # ...and the complete pair is.
    write_files(rotated, tmp_path / "tls.crt", tmp_path / "tls.key")
    assert reloader.check()
    assert served(port, current.ca_bundle) == cert(rotated.tls_cert)
    assert not reloader.check()  # unchanged files: nothing to do
