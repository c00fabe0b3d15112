"""pkiwarden's own processes next to a local control plane (``local up --with-…``).

``webhook.local`` and ``issuer.local`` own how each is configured and launched
(through :meth:`ControlPlane.start_process`, so ``local down`` stops it with
the servers); this module adds what both need first, and waits. They
authenticate as the admin of the local control plane: a development
convenience; the RBAC of a real deployment is in ``deploy/rbac`` and tested
separately under ServiceAccount tokens.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from pkiwarden import controlplane
from pkiwarden import local_processes as procs
from pkiwarden.controlplane import ControlPlane, ControlPlaneError

DEPLOY = controlplane.REPO_ROOT / "deploy"
READY_TIMEOUT = 60.0


def free_port() -> int:
    """A loopback port that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def apply_prerequisites(cp: ControlPlane) -> None:
    """The CRDs and the pkiwarden-system namespace, which both processes expect."""
    cp.kubectl("apply", "--server-side", "-f", str(DEPLOY / "crds"))
    cp.kubectl("apply", "-f", str(DEPLOY / "system"))
    # Right after creation a CRD has no conditions yet and `kubectl wait` errors
    # out instead of waiting; poll until it answers.
    deadline = time.monotonic() + 30
    while True:
        waited = cp.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=10s",
            "customresourcedefinition/pkis.pkiwarden.dev",
            "customresourcedefinition/pkipolicies.pkiwarden.dev",
            "customresourcedefinition/pkiauthorities.pkiwarden.dev",
            check=time.monotonic() > deadline,
        )
        if waited.returncode == 0:
            return
        time.sleep(0.2)


def wait_http_ok(cp: ControlPlane, name: str, url: str) -> None:
    """Poll ``url`` (plain HTTP) until 200, failing with the log if the process exits or stalls."""
    deadline = time.monotonic() + READY_TIMEOUT
    record = procs.read(cp.dir, name)
    while True:
        if controlplane.http_ok(url):
            return
        log = procs.log_path(cp.dir, name)
        if record is None or not procs.is_running(record):
            raise ControlPlaneError(f"{name} exited; last lines of {log}:\n{procs.tail(log)}")
        if time.monotonic() > deadline:
            raise ControlPlaneError(
                f"{name} was not ready at {url} within {READY_TIMEOUT:.0f} s;"
                f" last lines of {log}:\n{procs.tail(log)}"
            )
        time.sleep(0.2)


def start_webhook(cp: ControlPlane) -> int:
    """Start the webhook the way ``webhook.local`` registers it, and wait until ready.

    ``webhook.local`` owns the URL registration on 127.0.0.1 and the serving
    certificate; this only adds the CRDs, whose caches its readiness waits for.
    """
    from webhook.local import LocalWebhookError, start  # noqa: PLC0415 - only with --with-webhook

    apply_prerequisites(cp)
    try:
        return start(cp).pid
    except LocalWebhookError as error:
        raise ControlPlaneError(str(error)) from error


def start_issuer(cp: ControlPlane, kubeconfig: Path | None = None) -> int:
    """Start the issuer the way ``issuer.local`` prepares it, and wait until it is ready.

    ``issuer.local`` owns what the issuer needs (CRDs, the development CA
    Secret, its command line); this adds the identity and the wait. Without
    ``kubeconfig`` it runs as the local admin.
    """
    from issuer.local import start_local_issuer  # noqa: PLC0415
    from issuer.settings import Settings  # noqa: PLC0415 - only with --with-issuer

    port = free_port()
    extra = [f"--kubeconfig={kubeconfig}"] if kubeconfig is not None else []
    pid = start_local_issuer(cp, Settings(health_port=port), extra_args=extra)
    wait_http_ok(cp, "issuer", f"http://127.0.0.1:{port}/readyz")
    return pid
