"""``pkiwarden webhook serve``: the serving certificate first, then one process or a pool.

The certificate is made (and the caBundle made to trust it) before any port
opens, and kept current while serving; the serving itself lives in
``webhook.serve`` (one process) and ``webhook.workers`` (several sharing the
port), which never import this module.
"""

from __future__ import annotations

import logging

from shared.clock import utc_now
from shared.kube.client import Kube
from shared.ticker import Ticker
from webhook.cert_store import ensure_certificates, write_files
from webhook.serve import CertificateError, serve_process
from webhook.settings import WebhookSettings

log = logging.getLogger("pkiwarden.webhook")


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
    try:
        if settings.workers > 1:
            # Imported here: a single process never starts the machinery.
            from webhook.workers import WorkerPool  # noqa: PLC0415

            return WorkerPool(settings).run()
        return serve_process(settings, kube)
    finally:
        if rotation is not None:
            rotation.stop()
