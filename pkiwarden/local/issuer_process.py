"""The issuer next to a local control plane: ``local up --with-issuer``, tests, benchmarks.

Gives it what a cluster would: the CRDs and the ``pkiwarden-system``
namespace, a development CA Secret (created only if missing, as the dev
overlay's Job does), then ``pkiwarden issuer run`` as a process the control
plane records, so ``pkiwarden local down`` stops it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from issuer.ca import bootstrap_ca
from issuer.controller import Settings, utc_now
from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.prerequisites import apply_prerequisites
from pkiwarden.local.readiness import LOOPBACK, free_port, http_ok, wait_until_ready
from shared.kube.client import Kube

PROCESS = "issuer"
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class LocalIssuer:
    """An issuer process serving a local control plane."""

    name: str
    pid: int
    settings: Settings

    @property
    def health_port(self) -> int:
        return self.settings.health_port

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.health_port}"


def issuer_argv(settings: Settings) -> list[str]:
    """The command line that runs ``pkiwarden issuer run`` with ``settings``."""
    argv = controlplane.pkiwarden_argv(
        "issuer",
        "run",
        f"--namespace={settings.namespace}",
        f"--ca-secret={settings.ca_secret}",
        f"--workers={settings.workers}",
        f"--health-port={settings.health_port}",
        "--leader-elect" if settings.leader_elect else "--no-leader-elect",
    )
    return [*argv, f"--kubeconfig={settings.kubeconfig}"] if settings.kubeconfig else argv


def prepare(plane: ControlPlane, settings: Settings) -> None:
    """CRDs applied and Established, CA Secret present (bootstrapped if missing), as admin."""
    apply_prerequisites(plane)
    kube = Kube.from_environment(str(plane.kubeconfig))
    bootstrap_ca(kube, settings.namespace, settings.ca_secret, utc_now())


def start(
    plane: ControlPlane,
    settings: Settings | None = None,
    *,
    name: str = PROCESS,
    kubeconfig: Path | None = None,
    wait: bool = True,
    with_prerequisites: bool = True,
) -> LocalIssuer:
    """Prepare the control plane, start the issuer as a recorded process, wait until ready.

    A health port of 0 becomes a free port chosen here, so the caller knows
    where ``/readyz`` and ``/metrics`` are and several issuers never collide.
    The process runs as ``kubeconfig`` (for example a ServiceAccount token),
    the local admin if omitted. Ready means its caches are synced. A restart
    may skip ``with_prerequisites`` (CRDs, CA), as a crash-looping Pod would.
    """
    settings = settings or Settings(health_port=0)
    if settings.health_port == 0:
        settings = dataclasses.replace(settings, health_port=free_port())
    if kubeconfig is not None:
        settings = dataclasses.replace(settings, kubeconfig=str(kubeconfig))
    if with_prerequisites:
        prepare(plane, settings)
    issuer = LocalIssuer(name, plane.start_process(name, issuer_argv(settings)), settings)
    if wait and settings.health_port > 0:
        wait_ready(plane, issuer)
    return issuer


def wait_ready(plane: ControlPlane, issuer: LocalIssuer, timeout: float = READY_TIMEOUT) -> None:
    """Until ``/readyz`` answers 200, or fail with the end of the issuer's log."""
    url = f"{issuer.health_url}/readyz"
    wait_until_ready(
        plane.dir, lambda: http_ok(url), [issuer.name], what=f"ready at {url}", timeout=timeout
    )


def stop(plane: ControlPlane, issuer: LocalIssuer | str = PROCESS) -> str:
    """Stop an issuer process started by :func:`start`; says what happened."""
    return controlplane.stop_process(plane.dir, issuer if isinstance(issuer, str) else issuer.name)
