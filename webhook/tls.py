"""TLS for the webhook: TLS 1.2 or newer, and a certificate swapped in without a restart.

uvicorn loads the certificate once, into one ``ssl.SSLContext`` that every new
connection is wrapped with. Calling ``load_cert_chain`` again on that same
context changes what the *next* handshakes present, while established
connections carry on; so rotation drops no request. The reloader polls the
files (a mounted Secret changes by a symlink swap, which inotify-style
watching of the file itself would miss).
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.ticker import Ticker

log = logging.getLogger("pkiwarden.webhook.tls")


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 minimum; no renegotiation or compression."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def load_pair(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a certificate and key that are known to belong together into a live context.

    A failed ``load_cert_chain`` is not harmless: OpenSSL may already have
    swapped in the new certificate and dropped the old key, leaving a context
    that fails every handshake. So the pair is checked first and loaded from
    one consistent snapshot (an anonymous in-memory file: the key never
    touches a disk of ours), not from two files that may be mid-rotation.
    """
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise ValueError("the certificate and the key do not belong together")
    descriptor = os.memfd_create("webhook-tls", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, cert_pem + b"\n" + key_pem)
        context.load_cert_chain(f"/proc/self/fd/{descriptor}")
    finally:
        os.close(descriptor)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def describe_pem(cert_pem: bytes) -> str:
    """Serial and expiry of a certificate, for the log (never the key)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "unreadable certificate"
    return f"serial {cert.serial_number:x}, valid until {cert.not_valid_after_utc.isoformat()}"


def describe(cert_file: Path) -> str:
    try:
        return describe_pem(cert_file.read_bytes())
    except OSError:
        return "unreadable certificate file"


class CertificateReloader:
    """Reloads ``context`` from the files whenever they change."""

    def __init__(
        self, context: ssl.SSLContext, cert_file: Path, key_file: Path, interval: float
    ) -> None:
        self.context = context
        self.cert_file = cert_file
        self.key_file = key_file
        self.interval = interval
        self.reloads = 0
        self._loaded = self._stamps()
        self._ticker = Ticker(interval, self.check, name="tls-reloader")

    def _stamps(self) -> tuple[object, object]:
        return (_stamp(self.cert_file), _stamp(self.key_file))

    def start(self) -> CertificateReloader:
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._ticker.stop()

    def check(self) -> bool:
        """Reload if the files changed; True if a new certificate was loaded."""
        stamps = self._stamps()
        if stamps == self._loaded:
            return False
        try:
            load_pair(self.context, self.cert_file.read_bytes(), self.key_file.read_bytes())
        except (OSError, ValueError, ssl.SSLError) as error:
            # Mid-rotation the new certificate may sit next to the old key;
            # keep serving the old pair and look again at the next tick.
            log.warning("serving certificate not reloaded yet: %s", type(error).__name__)
            return False
        self._loaded = stamps
        self.reloads += 1
        log.info("serving certificate reloaded: %s", describe(self.cert_file))
        return True
