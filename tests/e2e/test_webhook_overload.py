"""An overloaded webhook behind a real kube-apiserver: the user reads why, and client-go
(kubectl) retries on its own, instead of a webhook timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import uvicorn

from pkiwarden.local import webhook_process
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.readiness import free_port
from shared.kube.client import Kube
from shared.validation.pki import Context
from webhook.app import create_app
from webhook.context import StaticContext
from webhook.protocol import AdmissionHttpProtocol

EXAMPLES = REPO_ROOT / "deploy" / "examples"


@pytest.fixture(scope="module")
def overloaded(control_plane: ControlPlane, kube: Kube) -> Iterator[None]:
    """The registered webhook, served by an app whose queue bound is 0: every review is over."""
    control_plane.kubectl("create", "namespace", "app1", check=False)
    port = free_port()
    settings = webhook_process.settings_for(control_plane, port)
    webhook_process.register(kube, settings)
    config = uvicorn.Config(
        create_app(StaticContext(Context()), max_queued_reviews=0),
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(settings.cert_file),
        ssl_keyfile=str(settings.key_file),
        http=AdmissionHttpProtocol,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        control_plane.kubectl(
            "delete", "validatingwebhookconfiguration", "pkiwarden", "--ignore-not-found"
        )


def test_kubectl_retries_then_says_the_webhook_is_overloaded(
    control_plane: ControlPlane, overloaded: None
) -> None:
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-v=6", "-f", str(EXAMPLES / "app1.yaml"), check=False
    )
    assert result.returncode != 0
    assert "429 Too Many Requests" in result.stderr
    assert "Got a Retry-After response" in result.stderr  # the API server passed the hint on
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error from server (TooManyRequests):"), last
    assert 'admission webhook "pkis.pkiwarden.dev" denied the request:' in last
    assert "the pkiwarden admission webhook is overloaded" in last
    assert "retry in a moment" in last
