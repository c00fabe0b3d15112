"""The webhook next to a local control plane, in two shapes.

:func:`start_deployed` is how ``deploy/`` runs it: the arguments of its
Deployment, its ServiceAccount's token, listening on the ClusterIP and port
of ``Service pkiwarden-webhook`` (no kube-proxy: the process stands where the
Service's Pods would be reached), and the Service-referenced registration as
shipped, whose caBundle the webhook keeps current itself. The demo,
``pkiwarden local up --with-webhook`` and the deployment tests use it.

:func:`start` is a shortcut for testing the HTTP edge and for benchmarks:
the registration carries a URL on 127.0.0.1 and the serving certificate that
IP address, both written here before the process starts.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import errno
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pkiwarden.local import install
from pkiwarden.local.controlplane import (
    ControlPlane,
    ControlPlaneError,
    pkiwarden_argv,
    stop_process,
)
from pkiwarden.local.prerequisites import apply_prerequisites
from pkiwarden.local.readiness import LOOPBACK, free_port, https_ok_as, wait_until_ready
from shared.kube.client import NAMESPACES, WEBHOOK_CONFIGURATIONS, ApiError, Kube
from webhook import cli as webhook_cli
from webhook.cert_store import ensure_certificates, write_files
from webhook.registration import url_client_config, webhook_configuration
from webhook.settings import CertificateSettings, WebhookSettings

PROCESS = "webhook"
HOST = LOOPBACK
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class LocalWebhook:
    """A webhook process serving a local control plane."""

    settings: WebhookSettings
    argv: tuple[str, ...]
    pid: int
    ca_bundle: bytes
    server_name: str  # what the API server verifies the certificate against

    @property
    def url(self) -> str:
        return f"https://{self.settings.host}:{self.settings.port}"


def settings_for(plane: ControlPlane, port: int, kubeconfig: Path | None = None) -> WebhookSettings:
    """The webhook's settings on ``port``, running as ``kubeconfig`` (default: the local admin)."""
    return WebhookSettings(
        host=HOST,
        port=port,
        cert_dir=plane.dir / "webhook-tls",
        kubeconfig=str(kubeconfig or plane.kubeconfig),
        certs=CertificateSettings(local=True),
    )


def start(
    plane: ControlPlane,
    *,
    port: int | None = None,
    kubeconfig: Path | None = None,
    wait: bool = True,
    workers: int = 1,
) -> LocalWebhook:
    """CRDs, registration, then ``webhook serve`` as a recorded process; waits until ready.

    The registration is written as the local admin, as an installer would;
    the process runs as ``kubeconfig`` (for example a ServiceAccount token),
    the local admin if omitted. ``pkiwarden local down`` stops it with the
    rest of the control plane. A second start reuses the registered port.
    """
    apply_prerequisites(plane)
    kube = Kube.from_environment(str(plane.kubeconfig))
    port = port or registered_port(kube) or free_port()
    settings = dataclasses.replace(settings_for(plane, port, kubeconfig), workers=workers)
    ca_bundle = register(kube, settings)
    argv = url_registered_argv(settings)
    pid = plane.start_process(PROCESS, argv)
    webhook = LocalWebhook(settings, tuple(argv), pid, ca_bundle, server_name=HOST)
    if wait:
        wait_ready(plane, webhook)
    return webhook


def start_deployed(plane: ControlPlane, kubeconfig: Path, *, wait: bool = True) -> LocalWebhook:
    """``webhook serve`` with its Deployment's arguments, on the Service's ClusterIP and port.

    ``deploy/`` must be applied (:func:`pkiwarden.local.install.install`);
    ``kubeconfig`` holds the webhook ServiceAccount's token. The process
    creates its serving certificate for ``pkiwarden-webhook.pkiwarden-system.svc``
    and patches the caBundle into the registration, as in a cluster; ready
    means the API server could call it: TLS verified against that name and
    the registration's caBundle, ``/readyz`` 200.
    """
    address, port = install.service_address(plane)
    args = install.with_flags(
        install.container_args(plane, "deployment", install.WEBHOOK_DEPLOYMENT),
        host=address,
        port=str(port),
        cert_dir=str(plane.dir / "webhook-tls"),
        kubeconfig=str(kubeconfig),
    )
    settings = parse_settings(args)
    _check_bindable(address, port)
    argv = pkiwarden_argv(*args)
    pid = plane.start_process(PROCESS, argv)
    service = settings.certs.dns_names[2]  # <service>.<namespace>.svc
    webhook = LocalWebhook(settings, tuple(argv), pid, b"", server_name=service)
    if wait:
        wait_ready(plane, webhook)
        webhook = dataclasses.replace(webhook, ca_bundle=registered_ca_bundle(plane, settings))
    return webhook


def parse_settings(args: Sequence[str]) -> WebhookSettings:
    """The settings ``pkiwarden webhook serve`` derives from ``args``, by its own parser."""
    parser = argparse.ArgumentParser(prog="pkiwarden")
    webhook_cli.register(parser.add_subparsers(dest="command", required=True))
    return webhook_cli.settings_from(parser.parse_args(list(args)))


def _check_bindable(address: str, port: int) -> None:
    """Fail with the fix if this user may not listen on the Service's port (443 is privileged)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except PermissionError as error:
            raise ControlPlaneError(
                f"cannot listen on {address}:{port}, the webhook Service's ClusterIP and port:"
                f" ports below 1024 need root, CAP_NET_BIND_SERVICE for {sys.executable},"
                f" or `sysctl net.ipv4.ip_unprivileged_port_start={port}`"
            ) from error
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise


def registered_ca_bundle(plane: ControlPlane, settings: WebhookSettings) -> bytes:
    """The caBundle of the registration's first webhook, b"" while it has none."""
    kube = Kube.from_environment(str(plane.kubeconfig))
    try:
        current = kube.get(WEBHOOK_CONFIGURATIONS.path(name=settings.certs.webhook_configuration))
    except ApiError as error:
        if error.not_found:
            return b""
        raise
    webhooks = current.get("webhooks") or [{}]
    encoded = (webhooks[0].get("clientConfig") or {}).get("caBundle") or ""
    return base64.b64decode(encoded)


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


def url_registered_argv(settings: WebhookSettings) -> list[str]:
    """``webhook serve`` for the URL registration of :func:`start`."""
    return [
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


def restart(plane: ControlPlane, webhook: LocalWebhook) -> LocalWebhook:
    """Start the process again with the same arguments, leaving the registration alone."""
    again = dataclasses.replace(webhook, pid=plane.start_process(PROCESS, webhook.argv))
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


def is_ready(plane: ControlPlane, webhook: LocalWebhook, timeout: float = 2.0) -> bool:
    """True if a client trusting the registration's caBundle gets 200 from ``/readyz``."""
    ca_bundle = registered_ca_bundle(plane, webhook.settings)
    if not ca_bundle:
        return False
    host, port = webhook.settings.host, webhook.settings.port
    name = webhook.server_name
    return https_ok_as(host, port, name, ca_bundle.decode(), "/readyz", timeout=timeout)


def wait_ready(plane: ControlPlane, webhook: LocalWebhook, timeout: float = READY_TIMEOUT) -> None:
    """Until ``/readyz`` answers as the API server would call it, or fail with the log."""

    def check() -> bool:
        return is_ready(plane, webhook)

    what = f"ready on {webhook.url} as {webhook.server_name}"
    wait_until_ready(plane.dir, check, [PROCESS], what=what, timeout=timeout, every=0.2)
