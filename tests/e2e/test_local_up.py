"""``pkiwarden local up --no-node --with-issuer`` alone, as the command line runs it.

The control plane is this module's own: ``local up`` starts it, installs
deploy/ and runs the Deployments' processes (the host-process path, kept for
``--no-node``; with a node they run as Pods, see test_deploy.py), and
``local down`` removes it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pkiwarden.local import controlplane
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane


def local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        controlplane.pkiwarden_argv("local", *args),
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("local-up") / "plane"
    try:
        yield directory
    finally:
        local("down", "--dir", str(directory))


def test_with_issuer_alone_runs_the_webhook_deploy_registers(instance: Path) -> None:
    started = local("up", "--dir", str(instance), "--no-node", "--with-issuer")
    assert started.returncode == 0, started.stderr
    assert "webhook ready" in started.stderr and "issuer ready" in started.stderr, started.stderr
    for name in ("webhook", "issuer"):
        record = procs.read(instance, name)
        assert record is not None and procs.is_running(record), name
    plane = controlplane.running(instance)
    assert isinstance(plane, ControlPlane)
    # The CA Job's PkiAuthority got past the webhook, and a Pki is judged by it.
    authority = json.loads(plane.kubectl("get", "pkica", "default", "-o", "json").stdout)
    assert authority["spec"]["secretName"] == "pkiwarden-ca"
    plane.kubectl("create", "namespace", "lonely")
    refused = plane.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "pkiwarden.dev/v1alpha1",
                "kind": "Pki",
                "metadata": {"name": "web", "namespace": "lonely"},
                "spec": {"serviceName": "web"},
            }
        ),
        check=False,
    )
    assert refused.returncode != 0
    assert 'admission webhook "pkis.pkiwarden.dev" denied the request' in refused.stderr
