"""What the webhook and the issuer expect to find on a control plane before they start.

The CRDs of ``deploy/crds`` (Established, since both processes list Pkis at
start-up) and the ``pkiwarden-system`` namespace of ``deploy/system``.
"""

from __future__ import annotations

import time

from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane

DEPLOY = REPO_ROOT / "deploy"
CRDS = (
    "customresourcedefinition/pkis.pkiwarden.dev",
    "customresourcedefinition/pkipolicies.pkiwarden.dev",
    "customresourcedefinition/pkiauthorities.pkiwarden.dev",
)


def apply_prerequisites(cp: ControlPlane) -> None:
    """The CRDs and the pkiwarden-system namespace, which both processes expect."""
    cp.kubectl("apply", "--server-side", "-f", str(DEPLOY / "crds"))
    cp.kubectl("apply", "-f", str(DEPLOY / "system"))
    wait_established(cp)


def wait_established(cp: ControlPlane, timeout: float = 30.0) -> None:
    """Wait until pkiwarden's CRDs are served.

    Right after creation a CRD has no conditions yet and ``kubectl wait``
    errors out instead of waiting; so poll until it answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        waited = cp.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=10s",
            *CRDS,
            check=time.monotonic() > deadline,
        )
        if waited.returncode == 0:
            return
        time.sleep(0.2)
