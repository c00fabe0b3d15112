"""``webhook serve --workers 2`` behind a real kube-apiserver: every worker answers, and a
worker that dies is replaced, with readiness waiting for it to sync again."""

from __future__ import annotations

import os
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from pkiwarden.local import webhook_process
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.readiness import free_port
from pkiwarden.local.webhook_process import LocalWebhook
from shared.kube.client import Kube
from tests.e2e.helpers import live_processes, metrics_reader_token

EXAMPLES = REPO_ROOT / "deploy" / "examples"
WORKERS = 2


@pytest.fixture(scope="module")
def pool(control_plane: ControlPlane, kube: Kube) -> Iterator[LocalWebhook]:
    control_plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
    control_plane.kubectl("create", "namespace", "app1", check=False)
    try:
        yield webhook_process.start(control_plane, port=free_port(), workers=WORKERS)
    finally:
        webhook_process.stop(control_plane)
        control_plane.kubectl(
            "delete", "validatingwebhookconfiguration", "pkiwarden", "--ignore-not-found"
        )


def workers_of(pid: int) -> list[int]:
    """The pool's worker processes: spawned interpreters (not multiprocessing's tracker)."""
    return sorted(
        child
        for child, fields, cmdline in live_processes()
        if int(fields[1]) == pid and b"spawn_main" in cmdline
    )


def get(webhook: LocalWebhook, path: str, token: str | None = None) -> tuple[int, str]:
    """A new connection per call: the kernel hands it to either worker."""
    context = ssl.create_default_context(cadata=webhook.ca_bundle.decode())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{webhook.url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), ""


def readyz(webhook: LocalWebhook) -> int:
    return get(webhook, "/readyz")[0]


def test_every_worker_answers_through_the_api_server(
    control_plane: ControlPlane, pool: LocalWebhook
) -> None:
    assert len(workers_of(pool.pid)) == WORKERS
    for _ in range(10):  # new kubectl, new connections: both workers get some
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-f", str(EXAMPLES / "app1.yaml"), check=False
        )
        assert result.returncode != 0
        assert 'did you mean "app1"?' in result.stderr, result.stderr
    # Whichever worker a scrape reaches, it counts the denials of both.
    denied = 'pkiwarden_admission_requests_total{allowed="false",kind="Pki",operation="CREATE"}'
    token = metrics_reader_token(control_plane)
    assert get(pool, "/metrics")[0] == 401  # every worker checks the token
    for _ in range(6):
        status, text = get(pool, "/metrics", token)
        assert status == 200
        counts = [line.split()[-1] for line in text.splitlines() if line.startswith(denied)]
        assert counts == ["10.0"], counts


def test_a_dead_worker_is_replaced_and_the_pool_is_ready_again(
    control_plane: ControlPlane, pool: LocalWebhook
) -> None:
    before = workers_of(pool.pid)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = workers_of(pool.pid)
        if len(now) == WORKERS and before[0] not in now and readyz(pool) == 200:
            break
        assert time.monotonic() < deadline, f"workers {now}, readyz {readyz(pool)}"
        time.sleep(0.5)
    log = (control_plane.dir / "logs" / f"{webhook_process.PROCESS}.log").read_text()
    assert "restarting it" in log
    assert log.count("caches synced") >= WORKERS + 1  # the replacement listed again
