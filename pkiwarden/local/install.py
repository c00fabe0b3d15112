"""Install pkiwarden on a control plane the way a cluster admin would, minus the containers.

The CRDs, the ``pkiwarden-system`` namespace and the RBAC of ``deploy/``,
applied as they are; application namespaces onboarded with
``deploy/tenants/``; then the webhook and the issuer run as local processes
under tokens of their own ServiceAccounts (TokenRequest), so a verb missing
from ``deploy/rbac`` fails here exactly as it would in a Pod. The demo and the
RBAC end-to-end tests share this code; :mod:`pkiwarden.local.webhook_process`
and :mod:`pkiwarden.local.issuer_process` start the processes under the
identities returned here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pkiwarden.local.controlplane import ControlPlane, service_account_kubeconfig
from pkiwarden.local.prerequisites import DEPLOY, apply_prerequisites

SYSTEM_NAMESPACE = "pkiwarden-system"
WEBHOOK_ACCOUNT = "pkiwarden-webhook"
ISSUER_ACCOUNT = "pkiwarden-issuer"
# Long enough for a demo left running to poke around in; a Pod's projected
# token is refreshed by the kubelet instead.
TOKEN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Identities:
    """Kubeconfigs holding each process's ServiceAccount token."""

    webhook: Path
    issuer: Path


def install(cp: ControlPlane, tenants: Iterable[str] = ()) -> Identities:
    """CRDs, namespace and RBAC from deploy/, tenants onboarded; returns the two identities."""
    apply_prerequisites(cp)
    cp.kubectl("apply", "-f", str(DEPLOY / "rbac"))
    for namespace in tenants:
        onboard(cp, namespace)
    return Identities(
        webhook=service_account_kubeconfig(
            cp,
            SYSTEM_NAMESPACE,
            WEBHOOK_ACCOUNT,
            cp.dir / "webhook.kubeconfig",
            expiration_seconds=TOKEN_SECONDS,
        ),
        issuer=service_account_kubeconfig(
            cp,
            SYSTEM_NAMESPACE,
            ISSUER_ACCOUNT,
            cp.dir / "issuer.kubeconfig",
            expiration_seconds=TOKEN_SECONDS,
        ),
    )


def onboard(cp: ControlPlane, namespace: str) -> None:
    """Create the namespace if needed and grant pkiwarden its Secrets (deploy/tenants/)."""
    manifest = cp.kubectl("create", "namespace", namespace, "--dry-run=client", "-o", "yaml")
    cp.kubectl("apply", "-f", "-", input=manifest.stdout)
    cp.kubectl("apply", "-n", namespace, "-f", str(DEPLOY / "tenants"))
