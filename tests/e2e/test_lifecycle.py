"""Uninstall and reinstall lose nothing: every issued Secret stays, byte for byte.

pkiwarden is installed from ``deploy/`` as shipped (the processes run under
their ServiceAccounts' tokens, as in :mod:`tests.e2e.test_deployed`), Pkis are
issued, then pkiwarden is uninstalled the README's way and, on the same
cluster, the naive way (``kubectl delete -k``, which deletes the CRDs while
the issuer still runs, and the namespace with the CA in it). After each
reinstall with the same Pkis, every Secret has the same uid and data: no
re-issue, no window where a Pod cannot mount it. The controller-manager runs,
so the garbage collector would have deleted any Secret still owned by a Pki
uid that no longer exists. Runs on a control plane of its own: the
registration is cluster-wide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkiwarden.local import controlplane, install, issuer_process, webhook_process
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from shared.kube.client import PKI_POLICIES, PKIS, SECRETS, ApiError, Kube
from tests.e2e.helpers import create_pki, eventually, exists, policy_body, ready

NAMESPACE = "lifecycle-app"
POLICY = "lifecycle"
SERVICE = "web"
PKIS_ISSUED = ("one", "two", "three")
READY_TIMEOUT = 90
# The garbage collector notices a kind that came back within its 30 s
# discovery resync; a Secret it would delete is gone well within this.
COLLECTOR_SETTLES = 40
# The README's uninstall, in its order: admission first, then the issuer, then
# the CRDs (their Pkis go, their Secrets stay), then the grants. The namespace
# pkiwarden-system stays: it holds the CA.
README_UNINSTALL = (
    "kubectl delete -k deploy/webhook",
    "kubectl delete -k deploy/issuer",
    "kubectl delete -k deploy/crds",
    "kubectl delete -k deploy/rbac",
    "kubectl delete -f deploy/overlays/dev/bootstrap-ca.yaml --ignore-not-found",
)
NAIVE_UNINSTALL = "kubectl delete -k deploy/overlays/dev"

Snapshot = dict[str, tuple[str, dict[str, str]]]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    directory: Path = tmp_path_factory.mktemp("lifecycle") / "plane"
    try:
        yield controlplane.up(directory, die_with_caller=True)
    finally:
        controlplane.down(directory)


def start(plane: ControlPlane) -> None:
    """The README's install, then both processes under their ServiceAccounts."""
    install.install(plane, tenants=(NAMESPACE,))
    identities = install.identities(plane)
    webhook_process.start_deployed(plane, identities.webhook)
    issuer_process.start_deployed(plane, identities)


def stop(plane: ControlPlane) -> None:
    """What deleting the Deployments does to their Pods."""
    issuer_process.stop(plane)
    webhook_process.stop(plane)


def apply_pkis(plane: ControlPlane, kube: Kube) -> None:
    """The same policy and Pkis, as a GitOps tool re-applies them after a reinstall."""
    try:
        kube.create(PKI_POLICIES.path(), policy_body(POLICY, NAMESPACE, [SERVICE]))
    except ApiError as error:
        if not error.conflict:
            raise

    def created(name: str) -> bool:
        try:
            create_pki(kube, NAMESPACE, name, serviceName=SERVICE)
        except ApiError as error:
            if error.status == 403 and "is not selected by any PkiPolicy" in error.message:
                return False  # the webhook has not seen the policy yet
            if not error.conflict:
                raise
        return True

    for name in PKIS_ISSUED:
        eventually(lambda name=name: created(name), 30, f"Pki {name} admitted")
    for name in PKIS_ISSUED:
        eventually(lambda name=name: ready(kube, NAMESPACE, name), READY_TIMEOUT, f"Pki {name}")


def snapshot(kube: Kube) -> Snapshot:
    found: Snapshot = {}
    for name in PKIS_ISSUED:
        secret = kube.get(SECRETS.path(NAMESPACE, f"{name}-tls"))
        found[name] = (secret["metadata"]["uid"], secret["data"])
    return found


def serials(kube: Kube) -> dict[str, str]:
    return {
        name: kube.get(PKIS.path(NAMESPACE, name))["status"]["serialNumber"] for name in PKIS_ISSUED
    }


def run(plane: ControlPlane, command: str, *, already_gone: tuple[str, ...] = ()) -> None:
    """A README command line, run in the repository as the cluster admin.

    ``already_gone``: objects whose NotFound is expected (kubectl deletes the
    rest and exits 1).
    """
    argv = [str(REPO_ROOT / arg) if arg.startswith("deploy/") else arg for arg in command.split()]
    assert argv[0] == "kubectl"
    result = plane.kubectl(*argv[1:], check=False)
    errors = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not any(f"{gone} not found" in line for gone in already_gone)
    ]
    assert errors == [] and (result.returncode == 0 or already_gone), f"{command}: {result.stderr}"


def assert_kept(kube: Kube, before: Snapshot, issued: dict[str, str]) -> None:
    """Same uid and bytes now and after the collector has had its chance; same serials."""
    assert snapshot(kube) == before
    assert serials(kube) == issued, "a Pki was re-issued"
    deadline = time.monotonic() + COLLECTOR_SETTLES
    while time.monotonic() < deadline:
        assert snapshot(kube) == before, "a Secret was deleted or rewritten after the reinstall"
        time.sleep(2)


@pytest.fixture(scope="module")
def installed(plane: ControlPlane) -> tuple[Kube, Snapshot, dict[str, str]]:
    start(plane)
    kube = Kube.from_environment(str(plane.kubeconfig))
    apply_pkis(plane, kube)
    return kube, snapshot(kube), serials(kube)


def test_the_readme_lists_the_uninstall_this_test_runs() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for command in (*README_UNINSTALL, NAIVE_UNINSTALL):
        assert command in readme, command


def test_issued_secrets_are_found_by_their_labels_not_owned(
    installed: tuple[Kube, Snapshot, dict[str, str]],
) -> None:
    kube = installed[0]
    for name in PKIS_ISSUED:
        metadata = kube.get(SECRETS.path(NAMESPACE, f"{name}-tls"))["metadata"]
        assert "ownerReferences" not in metadata
        assert metadata["labels"]["pkiwarden.dev/pki"] == name


def test_the_readme_uninstall_and_a_reinstall_keep_every_secret(
    plane: ControlPlane, installed: tuple[Kube, Snapshot, dict[str, str]]
) -> None:
    kube, before, issued = installed
    for command in README_UNINSTALL:
        run(plane, command)
        if command.endswith("deploy/issuer"):
            stop(plane)
    assert plane.kubectl("get", "crd", "pkis.pkiwarden.dev", check=False).returncode != 0
    assert snapshot(kube) == before, "the uninstall deleted a Secret"
    start(plane)
    apply_pkis(plane, kube)
    assert_kept(kube, before, issued)


def test_the_naive_uninstall_and_a_reinstall_keep_every_secret(
    plane: ControlPlane, installed: tuple[Kube, Snapshot, dict[str, str]]
) -> None:
    """``kubectl delete -k`` deletes the CRDs while the issuer still runs.

    Every Pki is then deleted under a running issuer, which must tell that
    from a user deleting one. The namespace goes too, with the CA Secret: a
    platform team that brings its own CA supplies it again (here: the same
    one, saved first), or every certificate is re-issued by a new CA.
    """
    kube, before, issued = installed
    ca = kube.get(SECRETS.path(install.SYSTEM_NAMESPACE, "pkiwarden-ca"))
    # The bootstrap Job deleted its own ClusterRoleBinding: kubectl says so, deletes the rest.
    run(
        plane,
        NAIVE_UNINSTALL,
        already_gone=('clusterrolebindings.rbac.authorization.k8s.io "pkiwarden-bootstrap-ca"',),
    )
    plane.kubectl("wait", "--for=delete", f"namespace/{install.SYSTEM_NAMESPACE}", "--timeout=180s")
    stop(plane)
    assert snapshot(kube) == before, "the uninstall deleted a Secret"
    supplied = supplied_again(ca)
    install.install(plane, tenants=(NAMESPACE,))
    kube.create(SECRETS.path(install.SYSTEM_NAMESPACE), supplied)
    identities = install.identities(plane)
    webhook_process.start_deployed(plane, identities.webhook)
    issuer_process.start_deployed(plane, identities)
    apply_pkis(plane, kube)
    assert_kept(kube, before, issued)


def test_deleting_one_pki_still_deletes_its_own_secret(
    installed: tuple[Kube, Snapshot, dict[str, str]],
) -> None:
    kube = installed[0]
    assert exists(kube, SECRETS.path(NAMESPACE, "three-tls"))
    kube.delete(PKIS.path(NAMESPACE, "three"))
    eventually(
        lambda: not exists(kube, SECRETS.path(NAMESPACE, "three-tls")),
        READY_TIMEOUT,
        "the issuer to delete the deleted Pki's Secret",
    )
    assert exists(kube, SECRETS.path(NAMESPACE, "one-tls"))


def supplied_again(secret: dict[str, Any]) -> dict[str, Any]:
    """The CA Secret as its owner would create it again: the same content, a new object."""
    metadata = secret["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret["type"],
        "metadata": {
            "name": metadata["name"],
            "labels": metadata.get("labels") or {},
            "annotations": metadata.get("annotations") or {},
        },
        "data": secret["data"],
    }
