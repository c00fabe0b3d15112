"""Onboarding a namespace starts the webhook's Secret cache for it at once.

The webhook lists Secret metadata per namespace, and only where a RoleBinding
grants it. A namespace asked about before it was onboarded got 403s, and its
cache backed off (up to 30 s); the RoleBinding appearing must end that wait,
or the warning about an existing foreign Secret is skipped meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import ControlPlane
from shared.kube.client import Kube
from shared.kube.view import ClusterView
from tests.e2e.helpers import delete_namespace

HOME = "cache-onboarding-system"
TENANT = "cache-onboarding-app"
IDENTITY = "secret-reader"
BACKOFF_REACHED = 9.0  # seconds of 403s: the cache's next retry is then about 8 s away
AT_ONCE = 3.0  # seconds: well inside that wait


@pytest.fixture
def identity(control_plane: ControlPlane, kube: Kube, tmp_path: Path) -> Iterator[Kube]:
    """A ServiceAccount that may watch RoleBindings everywhere and, so far, no Secrets."""
    for namespace in (HOME, TENANT):
        control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("create", "serviceaccount", IDENTITY, "-n", HOME)
    control_plane.kubectl(
        "create", "clusterrole", "cache-onboarding-watch",
        "--verb=list,watch", "--resource=rolebindings.rbac.authorization.k8s.io,"
        "pkis.pkiwarden.dev,pkipolicies.pkiwarden.dev,namespaces",
    )  # fmt: skip
    control_plane.kubectl(
        "create", "clusterrolebinding", "cache-onboarding-watch",
        "--clusterrole=cache-onboarding-watch", f"--serviceaccount={HOME}:{IDENTITY}",
    )  # fmt: skip
    control_plane.kubectl(
        "create", "clusterrole", "cache-onboarding-secrets", "--verb=list,watch",
        "--resource=secrets",
    )  # fmt: skip
    kubeconfig = controlplane.service_account_kubeconfig(
        control_plane, HOME, IDENTITY, tmp_path / "reader.kubeconfig"
    )
    try:
        yield Kube.from_environment(str(kubeconfig))
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            control_plane.kubectl("delete", kind, "cache-onboarding-watch", check=False)
        control_plane.kubectl("delete", "clusterrole", "cache-onboarding-secrets", check=False)
        for namespace in (TENANT, HOME):
            delete_namespace(control_plane, namespace)


def test_a_rolebinding_appearing_starts_the_secret_cache_at_once(
    control_plane: ControlPlane, identity: Kube
) -> None:
    view = ClusterView.start(identity, with_secrets=True)
    try:
        assert view.secrets is not None
        cache = view.secrets.ensure(TENANT)
        assert cache.denied.wait(30), "the namespace is not onboarded yet: 403"
        time.sleep(BACKOFF_REACHED)  # several 403s: the cache now waits seconds between tries
        assert not cache.synced.is_set()

        control_plane.kubectl(
            "create", "rolebinding", "pkiwarden-webhook-secrets", "-n", TENANT,
            "--clusterrole=cache-onboarding-secrets", f"--serviceaccount={HOME}:{IDENTITY}",
        )  # fmt: skip
        assert cache.wait_synced(AT_ONCE), "the RoleBinding must end the backoff at once"
        assert view.context_for(TENANT).secrets == {}
    finally:
        view.stop()
