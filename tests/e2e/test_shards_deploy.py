"""deploy/sharding under the issuer's own token: three replicas take the three shards and issue.

pkiwarden is installed as a cluster admin would (the dev overlay plus the
sharding component, the namespaces onboarded with deploy/tenants); then the
webhook and three issuer replicas run as local processes with their
Deployments' arguments (``--shards=3`` among them) under their
ServiceAccounts' tokens, so the RBAC they meet is exactly what deploy/
grants. A Lease verb missing there shows here: a shard nobody holds, a
Lease nobody renews, a Pki never Ready, or a 403 in a replica's log. On a
control plane of its own: the webhook's registration is cluster-wide.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from issuer.run import LEASE_NAME
from issuer.runtime.leader import LeaseRecord
from issuer.runtime.members import member_prefix
from issuer.runtime.shards import lease_name, shard_of
from pkiwarden.local import controlplane, install, issuer_process, webhook_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.prerequisites import DEPLOY
from shared.kube.client import LEASES, PKI_POLICIES, ApiError, Kube
from tests.e2e.helpers import create_pki, eventually, policy_body, ready

SHARDS = 3  # deploy/sharding's count
SYSTEM = install.SYSTEM_NAMESPACE
ISSUER = f"system:serviceaccount:{SYSTEM}:{install.ISSUER_ACCOUNT}"
POLICY = "e2e-sharded"
SERVICE = "web"
# How an API server's refusal reads in a log: "403 Forbidden: ... is forbidden: User ...".
REFUSED = re.compile(r"403 Forbidden|\bforbidden\b", re.IGNORECASE)


def one_namespace_per_shard(prefix: str, shards: int) -> list[str]:
    """The first ``prefix-N`` names that land in each shard, in shard order (the hash is stable)."""
    by_shard: dict[int, str] = {}
    for name in (f"{prefix}-{number}" for number in itertools.count()):
        by_shard.setdefault(shard_of(name, shards), name)
        if len(by_shard) == shards:
            break
    return [by_shard[shard] for shard in range(shards)]


NAMESPACES = one_namespace_per_shard("sharded", SHARDS)


@dataclass(frozen=True)
class Sharded:
    plane: ControlPlane
    kube: Kube  # the admin's
    replicas: list[LocalIssuer]


def sharded_overlay(folder: Path) -> Path:
    """A kustomization of the dev overlay with deploy/sharding, as a user would write it."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / "overlays" / "dev", folder)],
        "components": [os.path.relpath(DEPLOY / "sharding", folder)],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    directory = tmp_path_factory.mktemp("sharded")
    try:
        plane = controlplane.up(directory / "plane", die_with_caller=True)
        overlay = directory / "overlay"
        overlay.mkdir()
        install.install(plane, NAMESPACES, overlay=sharded_overlay(overlay))
        identities = install.identities(plane)
        webhook_process.start_deployed(plane, identities.webhook)
        issuer_process.run_bootstrap_job(plane, identities)
        started = [
            issuer_process.start_deployed(
                plane, identities, name=f"issuer-{letter}", bootstrap=False, wait=False
            )
            for letter in "abc"
        ]
        replicas = [issuer_process.wait_ready(plane, issuer) for issuer in started]
        kube = Kube.from_environment(str(plane.kubeconfig))
        policy = policy_body(POLICY, NAMESPACES[0], [SERVICE])
        policy["spec"]["namespaces"] = NAMESPACES
        kube.create(PKI_POLICIES.path(), policy)
        yield Sharded(plane, kube, replicas)
    finally:
        controlplane.down(directory / "plane")


def leases(kube: Kube) -> dict[str, LeaseRecord]:
    """Lease name -> its record, for every Lease in pkiwarden-system."""
    items = kube.get(LEASES.path(SYSTEM)).get("items") or []
    return {str(item["metadata"]["name"]): LeaseRecord.of(item) for item in items}


def logs(sharded: Sharded) -> str:
    return "\n".join(
        f"--- {issuer.name}\n{procs.tail(procs.log_path(sharded.plane.dir, issuer.name))}"
        for issuer in sharded.replicas
    )


def test_the_issuer_deployment_runs_the_components_shard_count(sharded: Sharded) -> None:
    args = install.container_args(sharded.plane, "deployment", install.ISSUER_DEPLOYMENT)
    assert f"--shards={SHARDS}" in args
    shape = sharded.plane.kubectl(
        "get", "deployment", install.ISSUER_DEPLOYMENT, "-n", SYSTEM,
        "-o", "jsonpath={.spec.replicas} {.spec.strategy.type}",
    ).stdout  # fmt: skip
    assert shape == f"{SHARDS} Recreate"
    assert all(issuer.settings.shards == SHARDS for issuer in sharded.replicas)


def test_each_replica_holds_and_renews_a_shard_and_its_membership(sharded: Sharded) -> None:
    shard_leases = [lease_name(LEASE_NAME, shard, SHARDS) for shard in range(SHARDS)]
    members = member_prefix(LEASE_NAME, SHARDS)

    def spread() -> dict[str, LeaseRecord] | None:
        found = leases(sharded.kube)
        held = {found[name].holder for name in shard_leases if name in found}
        member_holders = {r.holder for n, r in found.items() if n.startswith(members)}
        every = len(held - {""}) == SHARDS and len(member_holders - {""}) == len(sharded.replicas)
        return found if every else None

    def explain() -> str:
        return f"Leases: {leases(sharded.kube)}\n{logs(sharded)}"

    first = eventually(
        spread, 60, "each replica to lead a shard and hold its membership", 0.5, explain
    )

    # update: each of those Leases is written again by its holder (a renewal).
    def renewed() -> bool:
        now = leases(sharded.kube)
        return all(
            now[name].holder == record.holder and now[name].renew_time != record.renew_time
            for name, record in first.items()
            if name in shard_leases or name.startswith(members)
        )

    eventually(renewed, 30, "every shard and membership Lease renewed by its holder", 0.5, explain)


def admitted(kube: Kube, namespace: str) -> dict[str, Any] | None:
    """Pki ``web`` created, or None while the webhook's cache lacks the new policy."""
    try:
        return create_pki(kube, namespace, "web", serviceName=SERVICE)
    except ApiError as error:
        if "not selected by any PkiPolicy" not in error.message:
            raise
        return None


def test_pkis_of_every_shard_become_ready(sharded: Sharded) -> None:
    for namespace in NAMESPACES:
        eventually(lambda ns=namespace: admitted(sharded.kube, ns), 30, f"{namespace}/web admitted")
    for namespace in NAMESPACES:
        eventually(
            lambda ns=namespace: ready(sharded.kube, ns, "web"),
            60,
            f"{namespace}/web Ready",
            explain=lambda: logs(sharded),
        )


def test_no_replica_was_refused_anything(sharded: Sharded) -> None:
    """Last: every replica has campaigned, renewed, counted members and issued by now."""
    for issuer in sharded.replicas:
        with procs.log_path(sharded.plane.dir, issuer.name).open("rb") as log:
            log.seek(issuer.log_offset)
            lines = log.read().decode("utf-8", "replace").splitlines()
        refused = [line for line in lines if REFUSED.search(line)]
        assert refused == [], f"{issuer.name}:\n" + "\n".join(refused[:5])


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        # delete: the others remove a dead replica's membership Lease.
        ("delete", "leases/pkiwarden-issuer-member-3-0123456789ab", SYSTEM, True),
        ("list", "leases", SYSTEM, True),
        # Its own namespace only, and still no watch or patch.
        ("update", "leases/anything", "default", False),
        ("watch", "leases", SYSTEM, False),
        ("patch", "leases/pkiwarden-issuer-shard-0-of-3", SYSTEM, False),
    ],
)
def test_the_grant_is_the_issuers_namespace_leases_only(
    sharded: Sharded, verb: str, resource: str, namespace: str, allowed: bool
) -> None:
    result = sharded.plane.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={ISSUER}", check=False
    )
    assert result.stdout.strip() == ("yes" if allowed else "no"), json.dumps(
        [verb, resource, namespace, result.stdout, result.stderr]
    )
