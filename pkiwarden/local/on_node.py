"""pkiwarden's own Deployments running as Pods on the local node, from its image.

The image ``make image`` builds (``deploy/image/build.sh``, podman) is
saved and imported into the node's containerd, since no registry is
reachable. ``deploy/overlays/local`` changes what a one-node cluster must
(image name, pull policy, one webhook replica); a per-cluster overlay in
``DIR/deploy/`` on top of it tells the Pods where the API server is. RBAC,
the webhook's registration and its Service stay as shipped.

Why the Pods are told where the API server is: a Pod's network namespace
has a loopback of its own, so the ``kubernetes`` Service's ClusterIP (on
this machine's loopback, see :mod:`pkiwarden.local.components`) is out of
its reach, and nothing forwards Service traffic (no kube-proxy). The API
server, made for Pods, also listens on the node's bridge address; the
in-cluster configuration reads ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT``, as clusters without kube-proxy set them. The
token and CA are the kubelet-projected ones, as anywhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from pkiwarden.local import install
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane, ControlPlaneError
from pkiwarden.local.node import Node
from pkiwarden.local.prerequisites import DEPLOY

IMAGE_BUILD = REPO_ROOT / "deploy" / "image" / "build.sh"
LOCAL_OVERLAY = DEPLOY / "overlays" / "local"
# Containers to tell where the API server is, by workload.
API_CLIENTS = (
    ("Deployment", install.WEBHOOK_DEPLOYMENT, "webhook"),
    ("Deployment", install.ISSUER_DEPLOYMENT, "issuer"),
    ("Job", install.BOOTSTRAP_JOB, "bootstrap-ca"),
)
ROLLOUT_TIMEOUT = "180s"
BUILD_LOG_LINES = 30


def build_image() -> str:
    """Build pkiwarden's image (cached by podman's layers); its name as podman stores it.

    ``make image`` shows a build's progress; here it is kept quiet and shown
    only when the build fails.
    """
    if not IMAGE_BUILD.is_file():
        raise ControlPlaneError(f"cannot build pkiwarden's image: {IMAGE_BUILD} is missing")
    result = subprocess.run(
        [str(IMAGE_BUILD)], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-BUILD_LOG_LINES:])
        raise ControlPlaneError(
            f"building pkiwarden's image failed ({IMAGE_BUILD} exited {result.returncode}):\n{tail}"
        )
    return podman_name(lines[-1])


def podman_name(image: str) -> str:
    """``pkiwarden:0.2.0`` as podman names a local build: ``localhost/pkiwarden:0.2.0``."""
    first = image.split("/", 1)[0]
    has_domain = "/" in image and ("." in first or ":" in first or first == "localhost")
    return image if has_domain else f"localhost/{image}"


def import_image(plane: ControlPlane, node: Node, image: str) -> None:
    """Copy ``image`` from podman's storage into the node's containerd."""
    archive = plane.dir / "pkiwarden-image.tar"
    saved = subprocess.run(
        ["podman", "save", "--format", "docker-archive", "--output", str(archive), image],
        capture_output=True,
        text=True,
        check=False,
    )
    if saved.returncode != 0:
        raise ControlPlaneError(f"podman save {image} failed: {saved.stderr.strip()}")
    try:
        node.import_image(archive)
    finally:
        archive.unlink(missing_ok=True)


def cluster_overlay(plane: ControlPlane) -> dict[str, object]:
    """The per-cluster kustomization: deploy/overlays/local plus the API server's address."""
    host, port = plane.pod_api_address
    overlay_dir = plane.dir / "deploy"
    env = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(port)},
    ]
    patches = [
        {
            "target": {"kind": kind, "name": name},
            "patch": yaml.safe_dump(
                {
                    "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
                    "kind": kind,
                    "metadata": {"name": name, "namespace": install.SYSTEM_NAMESPACE},
                    "spec": {
                        "template": {"spec": {"containers": [{"name": container, "env": env}]}}
                    },
                }
            ),
        }
        for kind, name, container in API_CLIENTS
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(LOCAL_OVERLAY, overlay_dir)],
        "patches": patches,
    }


def write_overlay(plane: ControlPlane) -> Path:
    """Write :func:`cluster_overlay` to ``DIR/deploy/``; returns that directory."""
    overlay_dir = plane.dir / "deploy"
    overlay_dir.mkdir(exist_ok=True)
    header = (
        "# Written by pkiwarden local up: deploy/overlays/local, and where this\n"
        "# cluster's Pods reach the API server (the node's bridge address).\n"
    )
    body = yaml.safe_dump(cluster_overlay(plane), sort_keys=False)
    (overlay_dir / "kustomization.yaml").write_text(header + body)
    return overlay_dir


def install_on_node(
    plane: ControlPlane,
    node: Node,
    tenants: Iterable[str] = (),
    kubectl: install.Kubectl | None = None,
) -> None:
    """Import the image, apply deploy/ through the local overlay, wait for both Deployments."""
    import_image(plane, node, build_image())
    install.install(plane, tenants, kubectl, overlay=write_overlay(plane))
    wait_rolled_out(plane)


def wait_rolled_out(plane: ControlPlane) -> None:
    """Until the webhook's and the issuer's Pods are Ready (through their readiness probes)."""
    for deployment in (install.WEBHOOK_DEPLOYMENT, install.ISSUER_DEPLOYMENT):
        plane.kubectl(
            "rollout",
            "status",
            f"deployment/{deployment}",
            "-n",
            install.SYSTEM_NAMESPACE,
            f"--timeout={ROLLOUT_TIMEOUT}",
        )
