"""End-to-end fixtures: one real control plane per test session.

Helper functions are in ``helpers.py``; this module holds the fixtures only.

Everything under tests/e2e is marked ``e2e`` here, so ``pytest -m "not e2e"``
runs the fast tier alone. Missing binaries fail the tests with the reason;
they are never skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from issuer.controllers.authorities.effects.bootstrap_ca import bootstrap_authority
from issuer.runtime.settings import Settings as IssuerSettings
from pkiwarden.local import controlplane, node, node_config, on_node, webhook_process
from pkiwarden.local.controlplane import ControlPlane, ControlPlaneError
from pkiwarden.local.node import Node
from pkiwarden.local.webhook_process import LocalWebhook
from pkiwarden.release.helm import HelmMissingError, helm_binary
from shared.kube.client import Kube

E2E_DIR = Path(__file__).resolve().parent
CRD_DIR = controlplane.REPO_ROOT / "deploy" / "crds"
EXAMPLES = controlplane.REPO_ROOT / "deploy" / "examples"
_BUILD_ERROR = pytest.StashKey[ControlPlaneError | None]()
_GUARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# test_deploy.py's fixture that runs `make demo`'s program on a cluster of its own.
DEMO_FIXTURE = "demo_run"
# Set while a Pod must outlive its module (a check late in the session reads it):
# between node modules the node is then parked under this taint, not removed.
KEEP_NODE = pytest.StashKey[bool]()
PARKED_TAINT = "pkiwarden.dev/parked"


def _session_order(item: pytest.Item) -> int:
    """``early`` modules first, ``last`` tests at the very end, the rest as collected."""
    if item.get_closest_marker("last") is not None:
        return 2
    return 0 if item.get_closest_marker("early") is not None else 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this directory ``e2e``; run ``early`` modules first, ``last`` tests last.

    A ``last`` test checks what needs minutes of wall-clock time (a kubelet's
    refresh), started by an ``early`` module: the rest of the session runs
    while it waits, instead of the wait adding to it.
    """
    for item in items:
        if E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=_session_order)  # stable


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before the first test: a cold build outlasts any per-test timeout."""
    session.config.stash[_BUILD_ERROR] = None
    if not any(item.get_closest_marker("e2e") for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    # Uncaptured, so a cold build (minutes) shows its progress instead of a silent pause.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        try:
            controlplane.binaries()
            fixtures = {name for item in session.items for name in _fixture_names(item)}
            if fixtures & {"local_node", DEMO_FIXTURE}:
                node.build()
            if DEMO_FIXTURE in fixtures:  # the demo runs pkiwarden as Pods from its image
                on_node.build_image()
        except ControlPlaneError as error:
            session.config.stash[_BUILD_ERROR] = error


def _fixture_names(item: pytest.Item) -> tuple[str, ...]:
    return tuple(getattr(item, "fixturenames", ()))


class _Teardown:
    """Runs ``down`` once: from the fixture's finally, at exit, or on SIGTERM/SIGHUP.

    Ctrl-C unwinds through the fixture and, failing that, through atexit; a
    terminating signal would skip both, so it is caught, the control plane
    stopped, and the signal delivered again with its default action.
    """

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.done = False
        self.previous: dict[int, Any] = {}
        for sig in _GUARDED_SIGNALS:
            self.previous[sig] = signal.signal(sig, self._on_signal)
        atexit.register(self.run)

    def run(self) -> None:
        if self.done:
            return
        self.done = True
        atexit.unregister(self.run)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        controlplane.down(self.dir, report=lambda line: print(line, file=sys.stderr))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.run()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """A running control plane shared by the session, always torn down afterwards."""
    error = request.config.stash.get(_BUILD_ERROR, None)
    if error is not None:
        pytest.fail(f"no control plane binaries: {error}", pytrace=False)
    teardown = _Teardown(tmp_path_factory.mktemp("controlplane"))
    try:
        # die_with_caller: even a SIGKILLed test run leaves no server behind.
        yield controlplane.up(teardown.dir, die_with_caller=True)
    finally:
        teardown.run()


@pytest.fixture(scope="module")
def local_node(request: pytest.FixtureRequest, control_plane: ControlPlane) -> Iterator[Node]:
    """A node (containerd and kubelet) for the module's tests, Ready; removed afterwards.

    Per module, so that other modules' Pods stay unscheduled as they expect.
    While a Pod must outlive the module (``KEEP_NODE``), the node is parked
    instead: a NoSchedule taint that only that Pod tolerates keeps every other
    Pod unscheduled, and the next node module lifts it.
    """
    started = node.up(control_plane, die_with_caller=True)
    park_node(control_plane, parked=False)
    try:
        yield started
    finally:
        if request.config.stash.get(KEEP_NODE, False):
            park_node(control_plane, parked=True)
        else:
            node.down(control_plane, report=lambda line: print(line, file=sys.stderr))


def park_node(plane: ControlPlane, *, parked: bool) -> None:
    """Put the parking taint on the node, or take it off (either is idempotent)."""
    taint = f"{PARKED_TAINT}=true:NoSchedule" if parked else f"{PARKED_TAINT}:NoSchedule-"
    name = node_config.NODE_NAME
    result = plane.kubectl("taint", "node", name, taint, "--overwrite", check=False)
    if result.returncode != 0 and "not found" not in result.stderr:
        pytest.fail(f"cannot {'park' if parked else 'unpark'} the node: {result.stderr}")


def crd_names(directory: Path = CRD_DIR) -> set[str]:
    """Names of the CRDs defined in ``directory`` (every YAML document of kind CRD)."""
    names: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                names.add(document["metadata"]["name"])
    return names


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> set[str]:
    """deploy/crds applied and Established; returns the CRD names."""
    names = crd_names()
    if not names:
        pytest.fail(f"no CustomResourceDefinition found in {CRD_DIR}", pytrace=False)
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        *(f"customresourcedefinition/{name}" for name in sorted(names)),
    )
    return names


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane, crds: set[str]) -> Kube:
    """pkiwarden's own API client, as admin, with the CRDs installed."""
    return Kube.from_environment(str(control_plane.kubeconfig))


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, crds: set[str]) -> Iterator[LocalWebhook]:
    """The example policy, namespaces app1/app2/lonely, the PkiAuthority ``default`` (created
    if missing, as the issuer's start-up does) and a running, registered webhook."""
    control_plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
    issuer = IssuerSettings()
    bootstrap_authority(
        Kube.from_environment(str(control_plane.kubeconfig)), issuer.authority, issuer.ca_secret
    )
    for namespace in ("app1", "app2", "lonely"):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    started = webhook_process.start(control_plane)
    try:
        yield started
    finally:
        webhook_process.stop(control_plane)
        # Other test modules share this control plane; leave no webhook registered.
        control_plane.kubectl(
            "delete", "validatingwebhookconfiguration", "pkiwarden", "--ignore-not-found"
        )


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm (deploy/local/build-helm.sh, built once into the cache)."""
    try:
        return helm_binary()
    except HelmMissingError as error:
        pytest.fail(f"no helm: {error}", pytrace=False)
