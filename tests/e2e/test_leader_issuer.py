"""Two issuer processes share one Lease: one leads; kill -9 it and the other takes over."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from issuer.run import LEASE_NAME
from issuer.runtime.leader import LEASE_DURATION, LeaseRecord
from issuer.runtime.settings import Settings
from pkiwarden.local import issuer_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.kube.client import LEASES, PKI_POLICIES, ApiError, Kube
from tests.e2e.helpers import (
    create_pki,
    delete_namespace,
    eventually,
    policy_body,
    ready,
    scrape,
    value,
)

NAMESPACE = "leader-e2e"
ISSUER_NAMESPACE = "pkiwarden-e2e-leader"
RETRY = 2.0


def lease(kube: Kube) -> LeaseRecord | None:
    try:
        return LeaseRecord.of(kube.get(LEASES.path(ISSUER_NAMESPACE, LEASE_NAME)))
    except ApiError as error:
        if error.not_found:
            return None
        raise


def lease_when(
    kube: Kube, check: Callable[[LeaseRecord], bool]
) -> Callable[[], LeaseRecord | None]:
    """A probe for ``eventually``: the Lease once ``check`` holds for it."""

    def probe() -> LeaseRecord | None:
        record = lease(kube)
        return record if record is not None and check(record) else None

    return probe


def holder_pid(record: LeaseRecord) -> int:
    """Identities outside a Pod are ``host_pid_random``."""
    return int(record.holder.split("_")[-2])


def leading(issuer: LocalIssuer) -> float | None:
    return value(scrape(issuer), "leader_election_master_status", name=LEASE_NAME)


@pytest.fixture(scope="module")
def issuers(control_plane: ControlPlane, kube: Kube) -> Iterator[list[LocalIssuer]]:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    kube.create(PKI_POLICIES.path(), policy_body("e2e-leader", NAMESPACE, ["app1"]))
    settings = Settings(namespace=ISSUER_NAMESPACE, workers=2, health_port=0)
    started = [
        issuer_process.start(control_plane, settings, name=name, wait=False)
        for name in ("issuer-a", "issuer-b")
    ]
    running = [issuer_process.wait_ready(control_plane, issuer) for issuer in started]
    try:
        yield running
    finally:
        for issuer in running:
            issuer_process.stop(control_plane, issuer)
        control_plane.kubectl("delete", "pkipolicy", "e2e-leader", "--ignore-not-found")
        delete_namespace(control_plane, NAMESPACE)


def test_one_leads_and_the_other_takes_over_after_kill_9(
    kube: Kube, issuers: list[LocalIssuer]
) -> None:
    first = eventually(lease_when(kube, lambda r: bool(r.holder)), 30, "a Lease holder")
    by_pid = {issuer.pid: issuer for issuer in issuers}
    leader = by_pid[holder_pid(first)]
    (follower,) = [issuer for issuer in issuers if issuer is not leader]
    eventually(lambda: leading(leader) == 1, 10, "the leader to report leadership")
    assert leading(follower) == 0
    create_pki(kube, NAMESPACE, "before", serviceName="app1")
    eventually(lambda: ready(kube, NAMESPACE, "before"), 60, "Pki before Ready")

    os.kill(leader.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    create_pki(kube, NAMESPACE, "after", serviceName="app1")

    taken = eventually(
        lease_when(kube, lambda r: r.holder not in ("", first.holder)),
        LEASE_DURATION + 3 * RETRY,
        "the follower to take the Lease",
    )
    assert holder_pid(taken) == follower.pid
    assert taken.transitions == first.transitions + 1
    eventually(
        lambda: ready(kube, NAMESPACE, "after"),
        LEASE_DURATION + 3 * RETRY + 10 - (time.monotonic() - killed_at),
        "the pending Pki to become Ready under the new leader",
    )
    assert leading(follower) == 1


def test_sigterm_releases_the_lease(kube: Kube, issuers: list[LocalIssuer]) -> None:
    holder = eventually(lease_when(kube, lambda r: bool(r.holder)), 30, "a Lease holder")
    pid = holder_pid(holder)
    assert pid in {issuer.pid for issuer in issuers}
    os.kill(pid, signal.SIGTERM)
    released = eventually(
        lease_when(kube, lambda r: r.holder == ""), 20, "the Lease to be released"
    )
    assert released.duration_seconds == 1
