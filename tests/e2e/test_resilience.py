"""An API server restart loses nothing: both processes reconnect and carry on.

The webhook and the issuer hold list+watch caches; when kube-apiserver goes
away their watches break, and they must re-list and resume on their own,
without a restart of their own, without re-issuing what is still valid.
Runs on a control plane of its own, since it takes the API server away.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process, webhook_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from tests.e2e.helpers import apply, condition, eventually, get, wait_ready
from tests.e2e.helpers import web_pki as pki
from tests.e2e.helpers import web_policy as policy

NAMESPACE = "resilience"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    directory: Path = tmp_path_factory.mktemp("resilience") / "plane"
    try:
        cp = controlplane.up(directory, die_with_caller=True)
        webhook_process.start(cp)
        issuer_process.start(cp, Settings(health_port=0, workers=2, leader_elect=False))
        cp.kubectl("create", "namespace", NAMESPACE)
        apply(cp, policy(NAMESPACE, ["web", "api"]))
        yield cp
    finally:
        controlplane.down(directory)


def pids(plane: ControlPlane) -> dict[str, int]:
    found = {}
    for name in ("webhook", "issuer"):
        record = procs.read(plane.dir, name)
        assert record is not None and procs.is_running(record), f"{name} is not running"
        found[name] = record.pid
    return found


def test_api_server_restart_is_survived_by_webhook_and_issuer(plane: ControlPlane) -> None:
    apply(plane, pki(NAMESPACE, "before"))
    serial = wait_ready(plane, NAMESPACE, "before")["status"]["serialNumber"]
    running = pids(plane)

    controlplane.restart_apiserver(plane, die_with_caller=True)

    # The webhook still judges, with the message, once it has reconnected.
    def denied() -> str | None:
        result = plane.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(pki(NAMESPACE, "typo", serviceName="wbe")),
            check=False,
        )
        return result.stderr if "did you mean" in result.stderr else None

    message = eventually(denied, 60, "the webhook to deny a typo after the restart")
    assert 'spec.serviceName: "wbe" is not allowed in namespace "resilience"' in message
    # The issuer still issues, and re-issued nothing that was valid.
    apply(plane, pki(NAMESPACE, "after", serviceName="api", dnsNames=[f"api.{NAMESPACE}.svc"]))
    assert condition(wait_ready(plane, NAMESPACE, "after"))["status"] == "True"
    before = get(plane, "pki", NAMESPACE, "before")
    assert before is not None and before["status"]["serialNumber"] == serial
    assert pids(plane) == running, "a process restarted instead of reconnecting"
