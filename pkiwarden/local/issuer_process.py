"""The issuer next to a local control plane, as ``pkiwarden issuer run`` in a recorded process.

:func:`start_deployed` is how ``deploy/`` runs it: the dev overlay's
bootstrap Job first (its arguments, its ServiceAccount), then the arguments
of the issuer's Deployment under the issuer's ServiceAccount token. The demo,
``pkiwarden local up --with-issuer`` and the deployment tests use it.

:func:`start` runs it with chosen :class:`Settings`, as the local admin
unless told otherwise, after applying the CRDs and bootstrapping a CA: what
the issuer's own end-to-end tests and the benchmarks need. Either way
``pkiwarden local down`` stops the process.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from issuer import cli as issuer_cli
from issuer.controllers.authorities.effects.bootstrap_ca import bootstrap_authority, bootstrap_ca
from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, install
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane, ControlPlaneError
from pkiwarden.local.prerequisites import apply_prerequisites
from pkiwarden.local.readiness import LOOPBACK, http_ok, wait_until_ready
from shared.clock import utc_now
from shared.kube.client import Kube

PROCESS = "issuer"
READY_TIMEOUT = 60.0
_LISTENING = re.compile(r"listening on port (\d+)")
_METRICS_LISTENING = re.compile(r"metrics server \(https\) listening on port (\d+)")


@dataclass(frozen=True)
class LocalIssuer:
    """An issuer process serving a local control plane."""

    name: str
    pid: int
    settings: Settings
    argv: tuple[str, ...]
    log_offset: int = 0  # where this run's lines start in its log

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
        f"--authority={settings.authority}",
        f"--workers={settings.workers}",
        f"--health-port={settings.health_port}",
        "--leader-elect" if settings.leader_elect else "--no-leader-elect",
        f"--event-ttl={settings.event_ttl.total_seconds():g}s",
        f"--retry-base={settings.retry.base:g}s",
        f"--retry-cap={settings.retry.cap:g}s",
        f"--queue-order={settings.queue_order}",
        f"--metrics-secure-port={settings.metrics_port}",
        f"--shards={settings.shards}",
        f"--lease-duration={settings.lease_duration_seconds:g}s",
        f"--pod-certificate-refresh={settings.pod_refresh_fraction!r}",
        f"--pod-certificate-backdate={settings.pod_backdate.total_seconds():g}s",
    )
    return [*argv, f"--kubeconfig={settings.kubeconfig}"] if settings.kubeconfig else argv


def prepare(plane: ControlPlane, settings: Settings) -> None:
    """CRDs Established; CA Secret and PkiAuthority present (created if missing), as admin."""
    apply_prerequisites(plane)
    kube = Kube.from_environment(str(plane.kubeconfig))
    bootstrap_ca(kube, settings.namespace, settings.ca_secret, utc_now())
    bootstrap_authority(kube, settings.authority, settings.ca_secret)


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

    A health port of 0 lets the issuer pick a free port; waiting learns it
    from the log, so the caller knows where ``/readyz`` and ``/metrics`` are
    and several issuers never collide. The process runs as ``kubeconfig`` (for
    example a ServiceAccount token), the local admin if omitted. Ready means
    its caches are synced. A restart may skip ``with_prerequisites`` (CRDs,
    CA), as a crash-looping Pod would.
    """
    settings = settings or Settings(health_port=0)
    if kubeconfig is not None:
        settings = dataclasses.replace(settings, kubeconfig=str(kubeconfig))
    if with_prerequisites:
        prepare(plane, settings)
    return _launch(plane, name, issuer_argv(settings), settings, wait=wait)


def start_deployed(
    plane: ControlPlane,
    identities: install.Identities,
    *,
    wait: bool = True,
    name: str = PROCESS,
    bootstrap: bool = True,
) -> LocalIssuer:
    """The bootstrap Job, then ``issuer run`` with its Deployment's arguments and identity.

    ``deploy/`` must be applied (:func:`pkiwarden.local.install.install`).
    Only the health port differs from the Deployment: 0, for the issuer to
    pick a free one, since every local process shares one network. A further
    replica is another ``name`` and needs no ``bootstrap`` (the Job runs once).
    """
    if bootstrap:
        run_bootstrap_job(plane, identities)
    args = install.with_flags(
        install.container_args(plane, "deployment", install.ISSUER_DEPLOYMENT),
        health_port="0",
        metrics_secure_port="0",
        kubeconfig=str(identities.issuer),
    )
    argv = controlplane.pkiwarden_argv(*args)
    return _launch(plane, name, argv, parse_settings(args), wait=wait)


def run_bootstrap_job(plane: ControlPlane, identities: install.Identities) -> None:
    """What the dev overlay's bootstrap Job runs, under its ServiceAccount's token."""
    bootstrap = install.with_flags(
        install.container_args(plane, "job", install.BOOTSTRAP_JOB),
        kubeconfig=str(identities.bootstrap),
    )
    job = subprocess.run(
        controlplane.pkiwarden_argv(*bootstrap), capture_output=True, text=True, check=False
    )
    if job.returncode != 0:
        raise ControlPlaneError(
            f"the {install.BOOTSTRAP_JOB} Job's command failed: {job.stdout}{job.stderr}"
        )


def parse_settings(args: Sequence[str]) -> Settings:
    """The settings ``pkiwarden issuer run`` derives from ``args``, by its own parser."""
    parser = argparse.ArgumentParser(prog="pkiwarden")
    issuer_cli.register(parser.add_subparsers(dest="command", required=True))
    return issuer_cli.settings_from(parser.parse_args(list(args)))


def _launch(
    plane: ControlPlane, name: str, argv: Sequence[str], settings: Settings, *, wait: bool
) -> LocalIssuer:
    log = procs.log_path(plane.dir, name)
    offset = log.stat().st_size if log.exists() else 0
    pid = plane.start_process(name, argv)
    issuer = LocalIssuer(name, pid, settings, tuple(argv), log_offset=offset)
    return wait_ready(plane, issuer) if wait and settings.health_port >= 0 else issuer


def wait_ready(
    plane: ControlPlane, issuer: LocalIssuer, timeout: float = READY_TIMEOUT
) -> LocalIssuer:
    """Until ``/readyz`` answers 200, or fail with the end of the issuer's log.

    Returns the issuer with its health port, learned from the log if it was 0.
    """
    deadline = time.monotonic() + timeout
    if issuer.settings.health_port == 0:
        issuer = dataclasses.replace(
            issuer,
            settings=dataclasses.replace(
                issuer.settings, health_port=_logged_port(plane, issuer, timeout)
            ),
        )
    url = f"{issuer.health_url}/readyz"
    remaining = max(deadline - time.monotonic(), 0.0)
    wait_until_ready(
        plane.dir, lambda: http_ok(url), [issuer.name], what=f"ready at {url}", timeout=remaining
    )
    return issuer


def _logged_port(
    plane: ControlPlane,
    issuer: LocalIssuer,
    timeout: float,
    pattern: re.Pattern[str] = _LISTENING,
    what: str = "serving health checks",
) -> int:
    """The port the issuer says it listens on, in its log since it started."""
    found: list[int] = []

    def logged() -> bool:
        with procs.log_path(plane.dir, issuer.name).open("rb") as log:
            log.seek(issuer.log_offset)
            match = pattern.search(log.read().decode("utf-8", "replace"))
        if match:
            found.append(int(match.group(1)))
        return bool(found)

    wait_until_ready(plane.dir, logged, [issuer.name], what=what, timeout=timeout)
    return found[0]


def metrics_url(plane: ControlPlane, issuer: LocalIssuer, timeout: float = READY_TIMEOUT) -> str:
    """Where an issuer started with ``metrics_port >= 0`` serves /metrics over HTTPS."""
    port = _logged_port(plane, issuer, timeout, _METRICS_LISTENING, "serving /metrics")
    return f"https://127.0.0.1:{port}/metrics"


def stop(plane: ControlPlane, issuer: LocalIssuer | str = PROCESS) -> str:
    """Stop an issuer process started by :func:`start`; says what happened."""
    return controlplane.stop_process(plane.dir, issuer if isinstance(issuer, str) else issuer.name)
