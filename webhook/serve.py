"""``pkiwarden webhook serve``: certificates, caches, then uvicorn over TLS.

Start-up order is chosen so the API server never sees a half-ready webhook:
the serving certificate exists (and the caBundle trusts it) before the port
opens, and ``/readyz`` stays 503 until every cache has listed once, so a
Deployment's readiness probe keeps traffic away until answers are right.
"""

from __future__ import annotations

import logging
import ssl

import uvicorn

from shared.clock import utc_now
from shared.kube.client import Kube
from shared.kube.view import ClusterView
from shared.ticker import Ticker
from webhook.app import create_app
from webhook.cert_store import ensure_certificates, write_files
from webhook.context import ClusterViewSource
from webhook.settings import WebhookSettings
from webhook.tls import CertificateReloader, harden

log = logging.getLogger("pkiwarden.webhook")


class CertificateError(RuntimeError):
    """The serving certificate is missing or unusable; the message says where and why."""


def sync_certificates(kube: Kube, settings: WebhookSettings, *, force_rotate: bool = False) -> bool:
    """Bring the Secret, the caBundle and the files up to date; True if the files changed."""
    material = ensure_certificates(kube, settings.certs, utc_now(), force_rotate=force_rotate)
    return write_files(material, settings.cert_file, settings.key_file)


class RotationLoop:
    """Re-checks the Secret periodically: rotates when due and picks up a peer's rotation."""

    def __init__(self, kube: Kube, settings: WebhookSettings) -> None:
        self._kube = kube
        self._settings = settings
        self._ticker = Ticker(settings.rotation_check_interval, self._check, name="cert-rotation")

    def start(self) -> RotationLoop:
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._ticker.stop()

    def _check(self) -> None:
        try:
            sync_certificates(self._kube, self._settings)
        except Exception as error:  # keep serving the current certificate; retry later
            log.warning("certificate check failed: %s", type(error).__name__)


def serve(settings: WebhookSettings) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    kube = Kube.from_environment(settings.kubeconfig)
    rotation: RotationLoop | None = None
    if settings.manage_certs:
        sync_certificates(kube, settings)
        rotation = RotationLoop(kube, settings).start()
    if not (settings.cert_file.is_file() and settings.key_file.is_file()):
        raise CertificateError(
            f"no serving certificate at {settings.cert_file} and {settings.key_file};"
            " mount the webhook's TLS Secret there or run without --no-manage-certs"
        )
    view = ClusterView.start(kube, with_secrets=True)
    app = create_app(ClusterViewSource(view), max_body_bytes=settings.max_body_bytes)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.cert_file),
        ssl_keyfile=str(settings.key_file),
        timeout_keep_alive=settings.keep_alive_seconds,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    config.load()
    if config.ssl is None:
        raise CertificateError("uvicorn did not set up TLS")
    context: ssl.SSLContext = harden(config.ssl)
    reloader = CertificateReloader(
        context, settings.cert_file, settings.key_file, settings.reload_interval
    ).start()
    log.info("serving on https://%s:%d", settings.host, settings.port)
    try:
        uvicorn.Server(config).run()
    finally:
        reloader.stop()
        if rotation is not None:
            rotation.stop()
        view.stop()
    return 0
