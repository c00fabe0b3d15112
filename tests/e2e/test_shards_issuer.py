"""Three issuer replicas, three shards: kill one, its shard moves, nothing is issued twice or lost;
a replica joining later is handed a shard; a CA rotation waits for every shard; the dead
replica's membership Lease is deleted, and a renewal racing the deletion wins.

Each replica starts with ``--shards 3`` and a 6 s Lease (client-go's
proportions: renewal within 4 s, a try every 0.8 s), so the failover is
measured in seconds. Three namespaces are chosen so that each shard has one.
The tests run in order on the same replicas: after the first, two replicas
lead the three shards, which the second rebalances over three again, on which
the third rotates a CA of its own (not the session's default one); by the
fourth, the killed replica's membership Lease is due for deletion.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Iterator

import pytest
from cryptography import x509

from issuer.controllers.authorities.effects.bootstrap_ca import bootstrap_authority, bootstrap_ca
from issuer.run import LEASE_NAME
from issuer.runtime import issuance
from issuer.runtime.leader import LeaseRecord
from issuer.runtime.members import DELETE_AFTER, delete_lease, member_lease_name, member_prefix
from issuer.runtime.settings import Settings
from issuer.runtime.shard_election import RETRY_FRACTION
from issuer.runtime.shards import lease_name, patience, shard_of
from pkiwarden.ca.render import rotation_patch
from pkiwarden.local import issuer_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.clock import utc_now
from shared.kube.client import (
    CONFIG_MAPS,
    LEASES,
    PKI_AUTHORITIES,
    PKI_POLICIES,
    PKIS,
    SECRETS,
    ApiError,
    Kube,
)
from tests.e2e.helpers import create_pki, delete_namespace, events_on, eventually, ready

ISSUER_NAMESPACE = "pkiwarden-e2e-shards"
SHARDS = 3
LEASE_SECONDS = 6.0
RETRY = LEASE_SECONDS * RETRY_FRACTION
POLICY = "e2e-shards"
ROTATED = "e2e-shards"  # an authority of this module's own, rotated by the last test
ROTATED_SECRET = "e2e-shards-ca"


def one_namespace_per_shard() -> list[str]:
    """The first ``shards-e2e-N`` names that land in shards 0, 1 and 2 (the hash is stable)."""
    chosen: dict[int, str] = {}
    number = 0
    while len(chosen) < SHARDS:
        chosen.setdefault(shard_of(f"shards-e2e-{number}", SHARDS), f"shards-e2e-{number}")
        number += 1
    return [chosen[shard] for shard in range(SHARDS)]


NAMESPACES = one_namespace_per_shard()


def holders(kube: Kube) -> dict[int, LeaseRecord]:
    """Shard -> its Lease, for the shards whose Lease exists and is held."""
    found = {}
    for shard in range(SHARDS):
        try:
            lease = kube.get(LEASES.path(ISSUER_NAMESPACE, lease_name(LEASE_NAME, shard, SHARDS)))
        except ApiError as error:
            if error.not_found:
                continue
            raise
        record = LeaseRecord.of(lease)
        if record.holder:
            found[shard] = record
    return found


def logs(plane: ControlPlane, replicas: list[LocalIssuer]) -> str:
    """The end of each replica's log, for a failure's message."""
    return "\n".join(
        f"--- {issuer.name}\n{procs.tail(procs.log_path(plane.dir, issuer.name))}"
        for issuer in replicas
    )


def holder_pid(record: LeaseRecord) -> int:
    """Identities outside a Pod are ``host_pid_random``."""
    return int(record.holder.split("_")[-2])


def replica_settings() -> Settings:
    """Every replica's; health port 0: each picks a free one."""
    return Settings(
        namespace=ISSUER_NAMESPACE,
        workers=2,
        health_port=0,
        shards=SHARDS,
        lease_duration_seconds=LEASE_SECONDS,
    )


@pytest.fixture(scope="module")
def replicas(control_plane: ControlPlane, kube: Kube) -> Iterator[list[LocalIssuer]]:
    for namespace in NAMESPACES:
        control_plane.kubectl("create", "namespace", namespace)
    kube.create(
        PKI_POLICIES.path(),
        {
            "apiVersion": "pkiwarden.dev/v1alpha1",
            "kind": "PkiPolicy",
            "metadata": {"name": POLICY},
            "spec": {
                "namespaces": NAMESPACES,
                "allowedServiceNames": ["app1"],
                "allowedAuthorities": ["default", ROTATED],
            },
        },
    )
    bootstrap_ca(kube, ISSUER_NAMESPACE, ROTATED_SECRET, utc_now())
    bootstrap_authority(kube, ROTATED, ROTATED_SECRET)
    # Slow re-issues (1/s over the three replicas) and short waits: a shard that is
    # late is seen late, and the whole rotation still takes seconds.
    kube.patch(
        PKI_AUTHORITIES.path(name=ROTATED),
        {"spec": {"rotation": {"trustPropagation": "1s", "reissueRate": 1}}},
        "merge",
    )
    started = [
        issuer_process.start(
            control_plane, replica_settings(), name=f"issuer-shard-{letter}", wait=False
        )
        for letter in "abc"
    ]
    running = [issuer_process.wait_ready(control_plane, issuer) for issuer in started]
    try:
        yield running
    finally:
        for issuer in running:
            issuer_process.stop(control_plane, issuer)
        control_plane.kubectl("delete", "pkipolicy", POLICY, "--ignore-not-found")
        control_plane.kubectl("delete", "pkica", ROTATED, "--ignore-not-found")
        for namespace in NAMESPACES:
            delete_namespace(control_plane, namespace)


def issued_serials(kube: Kube, namespace: str) -> dict[str, str]:
    """Pki name -> the serial its status reports."""
    pkis = kube.get(PKIS.path(namespace)).get("items") or []
    return {
        pki["metadata"]["name"]: str((pki.get("status") or {}).get("serialNumber")) for pki in pkis
    }


def test_a_dead_replicas_shard_moves_and_nothing_is_issued_twice_or_lost(
    control_plane: ControlPlane, kube: Kube, replicas: list[LocalIssuer]
) -> None:
    def spread_over_all() -> dict[int, LeaseRecord] | None:
        held = holders(kube)
        return held if len({record.holder for record in held.values()}) == SHARDS else None

    try:
        spread = eventually(spread_over_all, 30, "each of the 3 replicas to lead a shard")
    except pytest.fail.Exception as error:
        pytest.fail(f"{error}; Leases: {holders(kube)}; logs:\n{logs(control_plane, replicas)}")
    for namespace in NAMESPACES:
        create_pki(kube, namespace, "before", serviceName="app1")
    for namespace in NAMESPACES:
        eventually(lambda ns=namespace: ready(kube, ns, "before"), 60, f"{namespace}/before Ready")
    before = {namespace: issued_serials(kube, namespace) for namespace in NAMESPACES}

    victim_shard = 1
    victim = spread[victim_shard]
    os.kill(holder_pid(victim), signal.SIGKILL)
    killed_at = time.monotonic()
    moved_namespace = NAMESPACES[victim_shard]
    create_pki(kube, moved_namespace, "after", serviceName="app1")

    expired_patience = patience(1, free=False, retry_period=RETRY, lease_duration=LEASE_SECONDS)
    survivors = {record.holder for shard, record in spread.items() if shard != victim_shard}

    def moved() -> dict[int, LeaseRecord] | None:
        held = holders(kube)
        record = held.get(victim_shard)
        return held if record is not None and record.holder in survivors else None

    taken = eventually(
        moved,
        LEASE_SECONDS + expired_patience + 10 * RETRY,
        "a surviving replica to take the dead replica's shard",
    )
    moved_after = time.monotonic() - killed_at
    # Within the Lease's duration since the victim's last renewal, plus the patience
    # of a replica that already leads one shard and a try or two.
    assert moved_after <= LEASE_SECONDS + expired_patience + 3 * RETRY, moved_after
    for shard in range(SHARDS):  # a failover moves that one shard, nothing else
        if shard != victim_shard:
            assert taken[shard].holder == spread[shard].holder
    assert taken[victim_shard].transitions == victim.transitions + 1

    eventually(lambda: ready(kube, moved_namespace, "after"), 30, "the new Pki Ready")
    after = {namespace: issued_serials(kube, namespace) for namespace in NAMESPACES}
    for namespace in NAMESPACES:  # the new holder found the shard's certificates in place
        assert after[namespace]["before"] == before[namespace]["before"]
    for namespace in NAMESPACES:
        for name in after[namespace]:
            pki = kube.get(PKIS.path(namespace, name))
            issued = events_on(kube, pki, "Issued")
            assert [event.get("count", 1) for event in issued] == [1], (namespace, name)
            assert events_on(kube, pki, "Renewed") == []


def member_leases(kube: Kube) -> set[str]:
    """The names of the membership Leases in the issuers' namespace."""
    prefix = member_prefix(LEASE_NAME, SHARDS)
    leases = kube.get(LEASES.path(ISSUER_NAMESPACE)).get("items") or []
    return {
        str(lease["metadata"]["name"])
        for lease in leases
        if str(lease["metadata"]["name"]).startswith(prefix)
    }


def issued_count(kube: Kube, namespace: str, name: str) -> int:
    """How many times the Pki was issued, by its aggregated ``Issued`` Events."""
    pki = kube.get(PKIS.path(namespace, name))
    return sum(int(event.get("count", 1)) for event in events_on(kube, pki, "Issued"))


def test_a_replica_joining_later_is_handed_a_shard_and_nothing_is_issued_twice(
    control_plane: ControlPlane, kube: Kube, replicas: list[LocalIssuer]
) -> None:
    before = holders(kube)
    live = {record.holder for record in before.values()}
    assert len(before) == SHARDS and len(live) == 2, before  # after the failover above
    joined = issuer_process.start(control_plane, replica_settings(), name="issuer-shard-d")
    replicas.append(joined)  # stopped with the others

    def one_each() -> dict[int, LeaseRecord] | None:
        held = holders(kube)
        holders_now = {record.holder for record in held.values()}
        return held if len(held) == SHARDS and len(holders_now) == SHARDS else None

    # The newcomer is counted once its membership Lease is seen renewed; the replica
    # leading two hands one back at its next look (every Lease duration).
    try:
        after = eventually(one_each, 5 * LEASE_SECONDS, "the new replica to lead a shard")
    except pytest.fail.Exception as error:
        pytest.fail(f"{error}; Leases: {holders(kube)}; logs:\n{logs(control_plane, replicas)}")
    (moved,) = [shard for shard in range(SHARDS) if after[shard].holder not in live]
    assert after[moved].holder != before[moved].holder  # the newcomer: the fourth is dead
    for shard in range(SHARDS):  # nothing else moved
        if shard != moved:
            assert after[shard].holder == before[shard].holder

    namespace = NAMESPACES[moved]
    create_pki(kube, namespace, "joined", serviceName="app1")
    eventually(lambda: ready(kube, namespace, "joined"), 30, "a Pki of the handed-over shard")
    for ns in NAMESPACES:
        for name in issued_serials(kube, ns):
            assert issued_count(kube, ns, name) == 1, (ns, name)
            assert events_on(kube, kube.get(PKIS.path(ns, name)), "Renewed") == []


def certificates(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def secret_pem(kube: Kube, namespace: str, name: str, key: str) -> bytes:
    data = kube.get(SECRETS.path(namespace, name)).get("data") or {}
    return base64.b64decode(data.get(key, ""))


def signer_key_id(leaf_pem: bytes) -> bytes | None:
    leaf = certificates(leaf_pem)[0]
    return leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


ROTATED_PKIS = ("rot-a", "rot-b")
# Not in shard 0: its replica, which decides the rotation, has nothing of its own to
# re-issue, so a count of its own shards alone would end the rotation at once.
ROTATED_NAMESPACES = NAMESPACES[1:]


def test_a_ca_rotation_drops_the_old_ca_only_after_every_shard_reissued(
    control_plane: ControlPlane, kube: Kube, replicas: list[LocalIssuer]
) -> None:
    assert len({record.holder for record in holders(kube).values()}) == SHARDS
    for namespace in ROTATED_NAMESPACES:
        for name in ROTATED_PKIS:
            create_pki(kube, namespace, name, serviceName="app1", authority=ROTATED)
    for namespace in ROTATED_NAMESPACES:
        for name in ROTATED_PKIS:
            eventually(lambda ns=namespace, n=name: ready(kube, ns, n), 60, f"{namespace}/{name}")
    old = certificates(secret_pem(kube, ISSUER_NAMESPACE, ROTATED_SECRET, "tls.crt"))[0]
    old_id = issuance.subject_key_id(old)

    kube.patch(PKI_AUTHORITIES.path(name=ROTATED), rotation_patch(utc_now(), False), "merge")

    def old_ca_dropped() -> bool:
        for namespace in NAMESPACES:
            trust = kube.get(CONFIG_MAPS.path(namespace, "pkiwarden-ca.crt")).get("data") or {}
            if old in certificates(str(trust.get(f"{ROTATED}.crt", "")).encode()):
                return False
        return True

    def explain() -> str:
        status = kube.get(PKI_AUTHORITIES.path(name=ROTATED)).get("status") or {}
        return f"status: {status}; logs:\n{logs(control_plane, replicas)}"

    eventually(old_ca_dropped, 120, "the old CA to leave the trust ConfigMaps", explain=explain)
    # At that moment every shard's leaves are already signed by the new CA.
    old_leaves = [
        f"{namespace}/{name}"
        for namespace in ROTATED_NAMESPACES
        for name in ROTATED_PKIS
        if signer_key_id(secret_pem(kube, namespace, f"{name}-tls", "tls.crt")) == old_id
    ]
    assert old_leaves == [], explain()
    status = kube.get(PKI_AUTHORITIES.path(name=ROTATED)).get("status") or {}
    assert status.get("pendingPkis") == 0, status
    for namespace in ROTATED_NAMESPACES:  # once at creation, once for the new CA
        for name in ROTATED_PKIS:
            assert issued_count(kube, namespace, name) == 2, (namespace, name)


def test_a_dead_replicas_membership_lease_is_deleted_and_the_live_ones_stay(
    kube: Kube, replicas: list[LocalIssuer]
) -> None:
    """The replica killed in the first test left its membership Lease behind; shard 0's
    holder deletes it once unwritten for DELETE_AFTER Lease durations. Last but one, so
    that wait runs under the tests before it."""
    held = holders(kube)
    assert len({record.holder for record in held.values()}) == SHARDS, held
    live = {member_lease_name(LEASE_NAME, SHARDS, record.holder) for record in held.values()}

    def only_live_members() -> set[str] | None:
        names = member_leases(kube)
        return names if names == live else None

    eventually(
        only_live_members,
        (DELETE_AFTER + 2) * LEASE_SECONDS,
        "the dead replica's membership Lease to be deleted",
        explain=lambda: f"member Leases {member_leases(kube)}, live {live}",
    )


def test_a_dead_members_lease_renewed_after_it_was_judged_is_not_deleted(
    kube: Kube, replicas: list[LocalIssuer]
) -> None:
    """The deletion is conditional on the version judged: a renewal that races it wins."""
    name = "e2e-shards-precondition"  # not a member's name: the replicas leave it alone
    created = kube.create(
        LEASES.path(ISSUER_NAMESPACE),
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": "paused", "leaseDurationSeconds": 6},
        },
    )
    judged = created["metadata"]["resourceVersion"]
    renewal = {**created, "spec": {**created["spec"], "leaseTransitions": 1}}
    renewed = kube.replace(LEASES.path(ISSUER_NAMESPACE, name), renewal)
    assert not delete_lease(kube, ISSUER_NAMESPACE, name, judged)
    assert kube.get(LEASES.path(ISSUER_NAMESPACE, name))["spec"]["holderIdentity"] == "paused"
    assert delete_lease(kube, ISSUER_NAMESPACE, name, renewed["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as gone:
        kube.get(LEASES.path(ISSUER_NAMESPACE, name))
    assert gone.value.not_found
