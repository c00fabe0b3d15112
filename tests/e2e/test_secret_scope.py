"""Secret caches follow the grant: one watch per namespace, or one for the cluster when allowed.

Under a real ServiceAccount token: granted per namespace (as deploy/tenants/
does), each namespace asked about gets its own cache and a namespace without
the grant never syncs; granted cluster-wide, a single cache serves them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import ControlPlane
from shared.kube.client import SECRETS, Kube
from shared.kube.namespaced import PerNamespaceCaches
from tests.e2e.helpers import delete_namespace

GRANTED = "scope-granted"
OTHER = "scope-other"
HOME = "scope-home"
ROLE = "scope-secret-reader"


@pytest.fixture(scope="module")
def reader(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A ServiceAccount allowed to list and watch Secrets in GRANTED only, as a client."""
    for namespace in (GRANTED, OTHER, HOME):
        control_plane.kubectl("create", "namespace", namespace)
    for namespace in (GRANTED, OTHER):
        control_plane.kubectl(
            "create", "secret", "generic", "app", "--from-literal=k=v", "-n", namespace
        )
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", HOME)
    control_plane.kubectl("create", "clusterrole", ROLE, "--verb=list,watch", "--resource=secrets")
    control_plane.kubectl(
        "create", "rolebinding", "reader", f"--clusterrole={ROLE}",
        f"--serviceaccount={HOME}:reader", "-n", GRANTED,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("scope") / "reader.kubeconfig"
    kubeconfig = controlplane.service_account_kubeconfig(control_plane, HOME, "reader", path)
    try:
        yield Kube.from_environment(str(kubeconfig))
    finally:
        control_plane.kubectl("delete", "clusterrolebinding", "reader-everywhere", check=False)
        control_plane.kubectl("delete", "clusterrole", ROLE, check=False)
        for namespace in (GRANTED, OTHER, HOME):
            delete_namespace(control_plane, namespace)


def names(caches: PerNamespaceCaches, namespace: str) -> list[str]:
    cache = caches.synced_cache(namespace, 30)
    if cache is None:
        return []
    return sorted(str(s["metadata"]["name"]) for s in cache.list(namespace))


def test_granted_per_namespace_one_watch_per_namespace(reader: Kube) -> None:
    caches = PerNamespaceCaches(reader, SECRETS, metadata_only=True, keep_metadata=("labels",))
    try:
        assert caches.cluster_cache() is None
        assert names(caches, GRANTED) == ["app"]
        assert caches.synced_cache(OTHER, 2) is None  # denied: unknown, never synced
        assert caches.watches == 2
    finally:
        caches.stop()


def test_granted_cluster_wide_one_watch_for_all(control_plane: ControlPlane, reader: Kube) -> None:
    control_plane.kubectl(
        "create", "clusterrolebinding", "reader-everywhere", f"--clusterrole={ROLE}",
        f"--serviceaccount={HOME}:reader",
    )  # fmt: skip
    caches = PerNamespaceCaches(reader, SECRETS, metadata_only=True, keep_metadata=("labels",))
    try:
        assert caches.cluster_cache() is not None
        assert names(caches, GRANTED) == ["app"]
        assert names(caches, OTHER) == ["app"]
        assert caches.watches == 1
        kept = caches.get(OTHER, "app")
        assert kept is not None and set(kept["metadata"]) <= {
            "name", "namespace", "resourceVersion", "labels",
        }  # fmt: skip
    finally:
        caches.stop()
        control_plane.kubectl("delete", "clusterrolebinding", "reader-everywhere")
