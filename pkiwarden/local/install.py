"""Install pkiwarden on a control plane the way a cluster admin would, minus the containers.

``kubectl apply -k deploy/overlays/dev`` as shipped (the base plus the Job
that bootstraps a development CA), application namespaces onboarded with
``deploy/tenants/``; the commands are :func:`install_commands`, which the
demo shows and the README lists. What the containers would run is then read
back from the applied objects (:func:`container_args`, :func:`service_address`)
and run as local processes under tokens of the objects' own ServiceAccounts
(TokenRequest), so a verb missing from ``deploy/rbac`` fails here exactly as
it would in a Pod. :mod:`pkiwarden.local.webhook_process` and
:mod:`pkiwarden.local.issuer_process` start them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane, service_account_kubeconfig
from pkiwarden.local.prerequisites import DEPLOY, wait_established

SYSTEM_NAMESPACE = "pkiwarden-system"
WEBHOOK_ACCOUNT = "pkiwarden-webhook"
ISSUER_ACCOUNT = "pkiwarden-issuer"
BOOTSTRAP_ACCOUNT = "pkiwarden-bootstrap-ca"
WEBHOOK_DEPLOYMENT = "pkiwarden-webhook"
WEBHOOK_SERVICE = "pkiwarden-webhook"
ISSUER_DEPLOYMENT = "pkiwarden-issuer"
BOOTSTRAP_JOB = "pkiwarden-bootstrap-ca"
OVERLAY = DEPLOY / "overlays" / "dev"
TENANT = DEPLOY / "tenants"
# Long enough for a demo left running to poke around in; a Pod's projected
# token is refreshed by the kubelet instead.
TOKEN_SECONDS = 24 * 3600

Kubectl = Callable[..., object]


@dataclass(frozen=True)
class Identities:
    """Kubeconfigs holding each process's ServiceAccount token."""

    webhook: Path
    issuer: Path
    bootstrap: Path


def install_commands(
    tenants: Iterable[str] = (), root: Path | None = None, overlay: Path = OVERLAY
) -> list[list[str]]:
    """The kubectl commands (arguments after ``kubectl``) that install pkiwarden.

    Paths are relative to the repository, as a user there types them, or
    under ``root``; an ``overlay`` outside the repository is named as it is.
    """

    def path(folder: Path) -> str:
        if not folder.is_relative_to(REPO_ROOT):
            return str(folder)
        relative = folder.relative_to(REPO_ROOT)
        return str(root / relative if root else relative)

    commands = [["apply", "-k", path(overlay)]]
    for namespace in tenants:
        commands.append(["create", "namespace", namespace, "--save-config"])
        commands.append(["apply", "-n", namespace, "-f", path(TENANT)])
    return commands


def install(
    cp: ControlPlane,
    tenants: Iterable[str] = (),
    kubectl: Kubectl | None = None,
    overlay: Path = OVERLAY,
) -> None:
    """Run :func:`install_commands` as admin; returns once the CRDs are served.

    ``kubectl`` (for example one that shows each command, run in the
    repository) replaces the plain one. A tenant namespace that exists
    already is kept.
    """
    run = kubectl or cp.kubectl
    root = None if kubectl else REPO_ROOT
    for command in install_commands(tenants, root=root, overlay=overlay):
        if command[:2] == ["create", "namespace"] and _exists(cp, "namespace", command[2]):
            continue
        run(*command)
    wait_established(cp)


def onboard(cp: ControlPlane, namespace: str) -> None:
    """Create the namespace if needed and grant pkiwarden its Secrets (deploy/tenants/)."""
    if not _exists(cp, "namespace", namespace):
        cp.kubectl("create", "namespace", namespace)
    cp.kubectl("apply", "-n", namespace, "-f", str(TENANT))


def identities(cp: ControlPlane) -> Identities:
    """Token kubeconfigs of the ServiceAccounts the webhook, issuer and CA Job run as."""

    def token(account: str, file: str) -> Path:
        return service_account_kubeconfig(
            cp, SYSTEM_NAMESPACE, account, cp.dir / file, expiration_seconds=TOKEN_SECONDS
        )

    return Identities(
        webhook=token(WEBHOOK_ACCOUNT, "webhook.kubeconfig"),
        issuer=token(ISSUER_ACCOUNT, "issuer.kubeconfig"),
        bootstrap=token(BOOTSTRAP_ACCOUNT, "bootstrap-ca.kubeconfig"),
    )


def _exists(cp: ControlPlane, kind: str, name: str, namespace: str | None = None) -> bool:
    scope = ["-n", namespace] if namespace else []
    return cp.kubectl("get", kind, name, *scope, "-o", "name", check=False).returncode == 0


def _get(cp: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cp.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    )
    return found


def container_args(cp: ControlPlane, kind: str, name: str) -> list[str]:
    """The ``args`` of the first container of a Deployment or Job in pkiwarden-system."""
    template = _get(cp, kind, name, SYSTEM_NAMESPACE)["spec"]["template"]
    return [str(arg) for arg in template["spec"]["containers"][0].get("args") or []]


def service_address(cp: ControlPlane, name: str = WEBHOOK_SERVICE) -> tuple[str, int]:
    """The ClusterIP and (first) port of a Service in pkiwarden-system."""
    spec = _get(cp, "service", name, SYSTEM_NAMESPACE)["spec"]
    return str(spec["clusterIP"]), int(spec["ports"][0]["port"])


def with_flags(args: Sequence[str], **flags: str) -> list[str]:
    """``args`` with each ``--flag=value`` replaced (underscores in names become dashes).

    What a Pod's environment gives the container (its own network address,
    a mounted directory, its token) has to be spelled out for a local process.
    """
    wanted = {f"--{key.replace('_', '-')}": value for key, value in flags.items()}
    kept = [arg for arg in args if arg.split("=", 1)[0] not in wanted]
    return kept + [f"{flag}={value}" for flag, value in wanted.items()]
