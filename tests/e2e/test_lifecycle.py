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

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkiwarden.local import controlplane, install, issuer_process, webhook_process
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane
from pkiwarden.local.prerequisites import wait_established
from shared.kube.client import PKI_POLICIES, PKIS, SECRETS, ApiError, Kube
from tests.e2e.helpers import create_pki, eventually, exists, policy_body, ready

NAMESPACE = "lifecycle-app"
POLICY = "lifecycle"
SERVICE = "web"
PKIS_ISSUED = ("one", "two", "three")
READY_TIMEOUT = 90
# The garbage collector deletes only what has an ownerReference, which
# assert_kept checks is on no Secret; this long, the reinstalled issuer has
# reconciled every Pki a few times over and would have rewritten a Secret.
SETTLES = 10
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
UPGRADE_FIRST = "kubectl delete job -n pkiwarden-system pkiwarden-bootstrap-ca --ignore-not-found"

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
    """Same uid and bytes now and a while after; same serials; nothing to collect."""
    assert snapshot(kube) == before
    assert serials(kube) == issued, "a Pki was re-issued"
    for name in PKIS_ISSUED:
        metadata = kube.get(SECRETS.path(NAMESPACE, f"{name}-tls"))["metadata"]
        assert "ownerReferences" not in metadata, "the garbage collector could delete it"
    deadline = time.monotonic() + SETTLES
    while time.monotonic() < deadline:
        assert snapshot(kube) == before, "a Secret was deleted or rewritten after the reinstall"
        time.sleep(2)


def previous_release() -> str:
    """The commit whose deploy/ this one upgrades from.

    PKIWARDEN_UPGRADE_FROM if set; else the parent of the newest commit that
    changed deploy/, so the two deploy/ trees differ.
    """
    chosen = os.environ.get("PKIWARDEN_UPGRADE_FROM")
    if chosen:
        return chosen
    changed = subprocess.run(
        ["git", "log", "-1", "--format=%H", "--", "deploy"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return f"{changed}~1"


def previous_deploy(into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", previous_release(), "deploy"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "deploy"


def owned_as_before(kube: Kube) -> None:
    """What earlier releases wrote: each issued Secret owned by its Pki's uid."""
    for name in PKIS_ISSUED:
        uid = kube.get(PKIS.path(NAMESPACE, name))["metadata"]["uid"]
        owner = {
            "apiVersion": "pkiwarden.dev/v1alpha1", "kind": "Pki", "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": False,
        }  # fmt: skip
        kube.patch(
            SECRETS.path(NAMESPACE, f"{name}-tls"), {"metadata": {"ownerReferences": [owner]}}
        )


class Admissions:
    """Server-side dry-run creates at about ``rate`` per second; counts the refused ones."""

    def __init__(self, kube: Kube, rate: float = 20.0) -> None:
        self.kube, self.rate = kube, rate
        self.sent = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = {
            "apiVersion": "pkiwarden.dev/v1alpha1",
            "kind": "Pki",
            "metadata": {"name": "load", "namespace": NAMESPACE},
            "spec": {"serviceName": SERVICE},
        }
        while not self._stop.wait(1 / self.rate):
            self.sent += 1
            try:
                self.kube.create(PKIS.path(NAMESPACE), body, params={"dryRun": "All"})
            except ApiError as error:
                self.failed.append(str(error))

    def __enter__(self) -> Admissions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def installed(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Kube, Snapshot, dict[str, str]]:
    """pkiwarden as the previous deploy/ installed it, upgraded with this one.

    The processes run this tree's code under the previous manifests (RBAC,
    arguments, the bootstrap Job), the Secrets carry the ownerReference that
    earlier releases wrote, then the README's upgrade runs under 20
    admissions/s and the issuer restarts with the new arguments.
    """
    old = previous_deploy(tmp_path_factory.mktemp("previous"))
    kube = Kube.from_environment(str(plane.kubeconfig))
    plane.kubectl("apply", "-k", str(old / "overlays" / "dev"))
    wait_established(plane)
    plane.kubectl("create", "namespace", NAMESPACE)
    plane.kubectl("apply", "-n", NAMESPACE, "-f", str(old / "tenants"))
    identities = install.identities(plane)
    webhook_process.start_deployed(plane, identities.webhook)
    issuer_process.start_deployed(plane, identities)
    apply_pkis(plane, kube)
    owned_as_before(kube)
    before, issued = snapshot(kube), serials(kube)
    with Admissions(kube) as load:
        run(plane, UPGRADE_FIRST)
        install.install(plane, tenants=(NAMESPACE,))
        issuer_process.stop(plane)
        issuer_process.start_deployed(plane, install.identities(plane))
        time.sleep(5)
    assert load.sent >= 40 and load.failed == [], load.failed
    eventually(
        lambda: all(
            "ownerReferences" not in kube.get(SECRETS.path(NAMESPACE, f"{n}-tls"))["metadata"]
            for n in PKIS_ISSUED
        ),
        READY_TIMEOUT,
        "the issuer to remove the earlier release's ownerReferences",
    )
    assert {n: data for n, (_, data) in snapshot(kube).items()} == {
        n: data for n, (_, data) in before.items()
    }, "the upgrade re-issued a certificate"
    assert serials(kube) == issued
    return kube, snapshot(kube), issued


def test_the_upgrade_revoked_what_earlier_releases_granted(
    plane: ControlPlane, installed: tuple[Kube, Snapshot, dict[str, str]]
) -> None:
    for account, verb, resource, namespace in (
        ("pkiwarden-webhook", "list", "secrets", NAMESPACE),
        ("pkiwarden-bootstrap-ca", "create", "secrets", install.SYSTEM_NAMESPACE),
    ):
        answer = plane.kubectl(
            "auth", "can-i", verb, resource, "-n", namespace,
            f"--as=system:serviceaccount:{install.SYSTEM_NAMESPACE}:{account}", check=False,
        )  # fmt: skip
        assert answer.stdout.strip() == "no", (account, verb, resource)


def test_the_readme_lists_the_uninstall_this_test_runs() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for command in (*README_UNINSTALL, NAIVE_UNINSTALL, UPGRADE_FIRST):
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
