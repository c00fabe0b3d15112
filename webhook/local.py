"""The webhook next to a local control plane (``pkiwarden local up --with-webhook``).

The local API server reaches the webhook at ``https://127.0.0.1:PORT/validate``
(no Service, no DNS), so the registration carries a URL and the serving
certificate carries the IP address. Certificates and registration are done
here, before the process starts, so the webhook configuration trusts the
certificate from its first request; the process then keeps both current.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pkiwarden.controlplane import ControlPlane, http_ok, stop_process
from shared.kube.client import NAMESPACES, WEBHOOK_CONFIGURATIONS, ApiError, Kube
from webhook.cert_store import ensure_certificates, write_files
from webhook.registration import url_client_config, webhook_configuration
from webhook.settings import CertificateSettings, WebhookSettings

PROCESS = "webhook"
HOST = "127.0.0.1"
READY_TIMEOUT = 60.0


class LocalWebhookError(RuntimeError):
    """The local webhook did not come up; the message includes the end of its log."""


@dataclass(frozen=True)
class LocalWebhook:
    """A webhook process serving a local control plane."""

    settings: WebhookSettings
    ca_bundle: bytes
    pid: int

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.settings.port}"


def settings_for(plane: ControlPlane, port: int) -> WebhookSettings:
    return WebhookSettings(
        host=HOST,
        port=port,
        cert_dir=plane.dir / "webhook-tls",
        kubeconfig=str(plane.kubeconfig),
        certs=CertificateSettings(local=True),
    )


def start(plane: ControlPlane, *, port: int | None = None, wait: bool = True) -> LocalWebhook:
    """Register the webhook, start ``webhook serve`` as a recorded process, wait until ready.

    ``pkiwarden local down`` stops the process with the rest of the control
    plane. ``wait`` requires the CRDs to be installed (readiness needs every
    cache synced, the Pki caches included).
    """
    kube = Kube.from_environment(str(plane.kubeconfig))
    port = port or registered_port(kube) or _free_port()
    settings = settings_for(plane, port)
    ca_bundle = register(kube, settings)
    pid = launch(plane, settings)
    webhook = LocalWebhook(settings=settings, ca_bundle=ca_bundle, pid=pid)
    if wait:
        wait_ready(plane, webhook)
    return webhook


def register(kube: Kube, settings: WebhookSettings) -> bytes:
    """Namespace, certificates, files and the webhook configuration; returns the caBundle."""
    try:
        kube.create(NAMESPACES.path(), {"metadata": {"name": settings.certs.namespace}})
    except ApiError as error:
        if not error.conflict:
            raise
    material = ensure_certificates(
        kube, settings.certs, dt.datetime.now(dt.UTC), patch_configuration=False
    )
    write_files(material, settings.cert_file, settings.key_file)
    body = webhook_configuration(
        settings.certs, url_client_config(HOST, settings.port, material.ca_bundle)
    )
    path = WEBHOOK_CONFIGURATIONS.path(name=settings.certs.webhook_configuration)
    try:
        current = kube.get(path)
    except ApiError as error:
        if not error.not_found:
            raise
        kube.create(WEBHOOK_CONFIGURATIONS.path(), body)
    else:
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.replace(path, body)
    return material.ca_bundle


def launch(plane: ControlPlane, settings: WebhookSettings) -> int:
    """Start ``webhook serve`` for ``settings`` (registration untouched); returns its pid."""
    argv = [
        sys.executable,
        "-m",
        "webhook",
        "serve",
        "--local",
        f"--host={settings.host}",
        f"--port={settings.port}",
        f"--workers={settings.workers}",
        f"--cert-dir={settings.cert_dir}",
        f"--kubeconfig={settings.kubeconfig}",
        f"--namespace={settings.certs.namespace}",
        f"--webhook-configuration={settings.certs.webhook_configuration}",
    ]
    return plane.start_process(PROCESS, argv)


def restart(plane: ControlPlane, webhook: LocalWebhook) -> LocalWebhook:
    """Start the process again with the same settings, leaving the registration alone."""
    again = LocalWebhook(webhook.settings, webhook.ca_bundle, launch(plane, webhook.settings))
    wait_ready(plane, again)
    return again


def stop(plane: ControlPlane) -> str:
    """Stop the webhook process (the registration stays: requests then fail closed)."""
    return stop_process(plane.dir, PROCESS)


def registered_port(kube: Kube, name: str = CertificateSettings().webhook_configuration) -> int:
    """The port of a URL registration from an earlier start, or 0."""
    try:
        current = kube.get(WEBHOOK_CONFIGURATIONS.path(name=name))
    except ApiError as error:
        if error.not_found:
            return 0
        raise
    for webhook in current.get("webhooks") or []:
        url = (webhook.get("clientConfig") or {}).get("url")
        if url:
            split = urlsplit(url)
            if split.hostname == HOST and split.port:
                return int(split.port)
    return 0


def is_ready(webhook: LocalWebhook, timeout: float = 2.0) -> bool:
    context = ssl.create_default_context(cadata=webhook.ca_bundle.decode())
    return http_ok(f"{webhook.url}/readyz", context=context, timeout=timeout)


def wait_ready(plane: ControlPlane, webhook: LocalWebhook, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    log = plane.dir / "logs" / f"{PROCESS}.log"
    while not is_ready(webhook):
        if not Path(f"/proc/{webhook.pid}").exists() or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            raise LocalWebhookError(
                f"the webhook on {webhook.url} did not become ready within {timeout:.0f} s"
                f" (are the CRDs installed?); last lines of {log}:\n" + "\n".join(tail)
            )
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
