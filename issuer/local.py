"""The issuer on a local control plane: for ``pkiwarden local up --with-issuer``, tests, benchmarks.

Gives it what a cluster would: the CRDs, a development CA Secret (created
only if missing), then ``pkiwarden issuer run`` as a process the control
plane records, so ``pkiwarden local down`` stops it.
"""

from __future__ import annotations

from collections.abc import Sequence

from issuer.act.bootstrap_ca import bootstrap_authority, bootstrap_ca
from issuer.settings import Settings
from pkiwarden import controlplane, local_addons
from pkiwarden.controlplane import ControlPlane
from shared.clock import utc_now
from shared.kube.client import Kube

PROCESS_NAME = "issuer"


def issuer_argv(settings: Settings, extra: Sequence[str] = ()) -> list[str]:
    """The command line that runs ``pkiwarden issuer run`` with ``settings``."""
    argv = controlplane.pkiwarden_argv(
        "issuer",
        "run",
        f"--namespace={settings.namespace}",
        f"--ca-secret={settings.ca_secret}",
        f"--workers={settings.workers}",
        f"--health-port={settings.health_port}",
        "--leader-elect" if settings.leader_elect else "--no-leader-elect",
        f"--authority={settings.authority}",
    )
    return [*argv, *extra]


def prepare(plane: ControlPlane, settings: Settings) -> None:
    """CRDs applied and Established; CA Secret and PkiAuthority present (created if missing)."""
    local_addons.apply_prerequisites(plane)
    kube = Kube.from_environment(str(plane.kubeconfig))
    bootstrap_ca(kube, settings.namespace, settings.ca_secret, utc_now())
    bootstrap_authority(kube, settings.authority, settings.ca_secret)


def start_local_issuer(
    plane: ControlPlane,
    settings: Settings | None = None,
    *,
    name: str = PROCESS_NAME,
    extra_args: Sequence[str] = (),
) -> int:
    """Prepare the control plane and start the issuer as a recorded process; returns its pid.

    The default health port is 0 (a free port), so several local issuers and
    the webhook never collide.
    """
    settings = settings or Settings(health_port=0)
    prepare(plane, settings)
    return plane.start_process(name, issuer_argv(settings, extra_args))
