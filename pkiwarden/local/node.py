"""A real node next to the local control plane: containerd, runc, the CNI plugins and a kubelet.

Built by ``deploy/local/build-node.sh`` (binaries) and
``deploy/local/build-images.sh`` (the pause image and the images the tests
and the demo run) into the same cache as the control plane. :func:`up`
starts containerd, imports the images (no registry is reachable: Pods run
images already on the node, and every pull goes to a closed loopback port),
then the kubelet
with a node credential (``system:node:localhost`` in ``system:nodes``,
limited by the Node authorizer and NodeRestriction), and waits until the
Node is Ready. :mod:`pkiwarden.local.node_teardown` undoes all of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from pkiwarden.local import node_config
from pkiwarden.local import processes as procs
from pkiwarden.local.certs import (
    KUBELET_CLIENT_USER,
    Issued,
    new_client_cert,
    new_kubelet_serving_cert,
    write_pem_pair,
)
from pkiwarden.local.components import client_certificate_credentials, kubeconfig_document
from pkiwarden.local.controlplane import REPO_ROOT, ControlPlane, ControlPlaneError
from pkiwarden.local.node_config import NODE_NAME, NodeLayout
from pkiwarden.local.node_teardown import (
    APISERVER_RELAY,
    CONTAINERD,
    KUBELET,
    NodeState,
    load_state,
    read_tunables,
    save_state,
    teardown,
)
from pkiwarden.local.readiness import LOOPBACK, NotReadyError, free_ports, wait_until_ready

BUILD_NODE = REPO_ROOT / "deploy" / "local" / "build-node.sh"
BUILD_IMAGES = REPO_ROOT / "deploy" / "local" / "build-images.sh"
VERSIONS = REPO_ROOT / "deploy" / "local" / "versions.env"
READY_TIMEOUT = 120.0
# The kubelet makes its root directory a shared mount (a bind mount onto
# itself) while its pod-resources server may already be renaming a socket
# there; caught in between, the rename fails across the new mount (EXDEV) and
# the kubelet exits. Seen once in several dozen starts here; a service
# manager would restart it, and so does this, once.
KUBELET_STARTS = 2
# The images build-images.sh makes besides the pause image, by the name Pods use.
LOCAL_REGISTRY = "pkiwarden.local"


def image_name(name: str) -> str:
    """The reference a Pod uses for image ``deploy/local/images/NAME``."""
    return f"{LOCAL_REGISTRY}/{name}:dev"


@dataclass(frozen=True)
class Node:
    """A running node: its name, where its files are, and the binaries it runs."""

    name: str
    layout: NodeLayout
    bin_dir: Path

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this node's containerd (CRI namespace); raises on failure."""
        argv = node_config.ctr_argv(self.bin_dir / "ctr", self.layout, *args)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr}")
        return result

    def import_image(self, archive: Path) -> None:
        """Import an OCI or docker archive, so Pods can run it without a pull."""
        self.ctr("images", "import", str(archive))


def _run_build(script: Path) -> Path:
    """Run a build script (a no-op once cached); its last line of output is the directory."""
    if not script.is_file():
        raise ControlPlaneError(
            f"cannot build the node: {script} is missing (pkiwarden is not running from a"
            " source checkout); use --no-node"
        )
    result = subprocess.run(
        [str(script)], stdout=subprocess.PIPE, text=True, check=False, stdin=subprocess.DEVNULL
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ControlPlaneError(
            f"building the node failed ({script} exited {result.returncode}); its output above"
            " says why. Go, a C compiler, pkg-config and libseccomp's headers are needed"
        )
    return Path(lines[-1])


def build() -> tuple[Path, Path]:
    """Build (or find cached) the node's binaries and images; returns both directories."""
    return _run_build(BUILD_NODE), _run_build(BUILD_IMAGES)


def pause_image() -> str:
    """The sandbox image containerd is told to use, as pinned in versions.env."""
    for line in VERSIONS.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PAUSE_IMAGE":
            return value.strip()
    raise ControlPlaneError(f"{VERSIONS} pins no PAUSE_IMAGE")


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _routed() -> list[str]:
    """Destinations of the machine's IPv4 routes, in every table."""
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]")
    return [r["dst"] for r in routes if r.get("dst") not in (None, "default")]


def free_pod_subnet() -> str:
    """A Pod subnet no route of this machine overlaps (for a node, or a control plane for one)."""
    return node_config.pod_subnet(_routed())


def _make_bridge(layout: NodeLayout) -> None:
    """The Pods' bridge with the subnet's first address: the machine's one route to its Pods.

    Made here rather than by the CNI plugin, which would either leave it
    without an address (nothing could reach a Pod, not even the kubelet's
    probes) or, as a gateway, turn on ip_forward.
    """
    _ip("link", "add", layout.bridge, "type", "bridge")
    _ip("addr", "add", layout.bridge_address, "dev", layout.bridge)
    _ip("link", "set", layout.bridge, "up")


def _make_cgroups(layout: NodeLayout) -> None:
    """Create the node's cgroup in every cgroup v1 hierarchy (the kubelet requires it to exist).

    A new cpuset cgroup starts with no CPUs and no memory nodes; it gets its
    parent's, or no task could join it.
    """
    parent = layout.cgroup_parent.lstrip("/")
    root = node_config.CGROUP_ROOT
    for hierarchy in sorted(root.iterdir()) if root.is_dir() else []:
        if hierarchy.name == "unified" or not (hierarchy / "cgroup.procs").exists():
            continue
        group = hierarchy / parent
        group.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists():
                (group / name).write_text((hierarchy / name).read_text())


def _write_files(plane: ControlPlane, layout: NodeLayout, bin_dir: Path) -> tuple[int, int]:
    """Certificates, kubeconfig, CNI, containerd and kubelet configuration; returns the ports."""
    pki = layout.root / "pki"
    ca = Issued(
        key_pem=(plane.dir / "pki" / "ca.key").read_bytes(), cert_pem=plane.ca_cert.read_bytes()
    )
    now = dt.datetime.now(dt.UTC)
    serving_cert, serving_key = write_pem_pair(pki, "kubelet", new_kubelet_serving_cert(ca, now))
    client_cert, client_key = write_pem_pair(
        pki, "node", new_client_cert(ca, node_config.NODE_USER, [node_config.NODE_GROUP], now)
    )
    document = kubeconfig_document(
        plane.server,
        ca.cert_pem,
        node_config.NODE_USER,
        client_certificate_credentials(client_cert, client_key),
    )
    layout.kubelet_kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False))
    layout.kubelet_kubeconfig.chmod(0o600)
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (layout.cni_conf_dir / "10-pkiwarden.conflist").write_text(
        json.dumps(node_config.cni_config(layout), indent=2) + "\n"
    )
    (layout.registry_hosts / "_default").mkdir(parents=True, exist_ok=True)
    (layout.registry_hosts / "_default" / "hosts.toml").write_text(
        node_config.registry_hosts_toml()
    )
    layout.containerd_config.write_text(
        node_config.containerd_config(layout, bin_dir, pause_image())
    )
    port, healthz_port = free_ports(2)
    files = node_config.KubeletFiles(plane.ca_cert, serving_cert, serving_key)
    config = node_config.kubelet_config(layout, files, port=port, healthz_port=healthz_port)
    layout.kubelet_config.write_text(yaml.safe_dump(config, sort_keys=False))
    return port, healthz_port


def _allow_api_server_into_kubelet(plane: ControlPlane) -> None:
    """Logs, exec and port-forward: the API server's kubelet client gets the kubelet API."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "pkiwarden-local:kube-apiserver-kubelet-client"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_CLIENT_USER}
        ],
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(binding))


def _node_ready(plane: ControlPlane) -> bool:
    result = plane.kubectl(
        "get",
        "node",
        NODE_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        check=False,
    )
    return result.stdout.strip() == "True"


def _containerd_serving(node: Node) -> bool:
    argv = node_config.ctr_argv(node.bin_dir / "ctr", node.layout, "version")
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def running(plane: ControlPlane) -> Node | None:
    """The node of ``plane``'s instance if its kubelet and containerd run."""
    state = load_state(plane.dir)
    if state is None:
        return None
    for name in (CONTAINERD, KUBELET):
        record = procs.read(plane.dir, name)
        if record is None or not procs.is_running(record):
            return None
    return Node(NODE_NAME, state.layout(plane.dir), Path(state.bin_dir))


def down(plane: ControlPlane, report: Callable[[str], None] = lambda _line: None) -> None:
    """Stop and remove the node, keep the control plane; the Node object goes too.

    Without it, the scheduler would keep binding Pods to a node that no longer runs them.
    """
    teardown(plane.dir, report)
    plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false")


def up(plane: ControlPlane, *, die_with_caller: bool = False) -> Node:
    """Start the node of ``plane``'s instance (or return the running one) and wait until Ready.

    A node that failed to start is torn down before this returns (its logs
    stay in ``DIR/logs``), as is what is left of one that stopped half-way.
    """
    existing = running(plane)
    if existing is not None:
        return existing
    if os.geteuid() != 0:
        raise ControlPlaneError(
            "the node needs root (containerd, runc, mounts, cgroups, a bridge);"
            " run as root, or use --no-node for the control plane alone"
        )
    teardown(plane.dir, report=lambda _line: None)
    bin_dir, images = build()
    layout = NodeLayout(plane.dir, secrets.token_hex(3), plane.pod_subnet or free_pod_subnet())
    preexisting = tuple(str(path) for path in node_config.HOST_PATHS if path.exists())
    # Recorded first: whatever happens next, teardown knows what to look for.
    state = NodeState(
        layout.instance, layout.pod_subnet, str(bin_dir), preexisting, read_tunables()
    )
    save_state(plane.dir, state)
    try:
        return _start(plane, layout, bin_dir, images, die_with_caller)
    except BaseException:
        teardown(plane.dir, report=lambda _line: None)
        raise


def _start_apiserver_relay(plane: ControlPlane, die_with_caller: bool) -> None:
    """Pods reach the API server at the bridge's address; it listens on loopback alone."""
    host, port = plane.pod_api_address
    argv = [sys.executable, "-m", "pkiwarden.local.relay", host, str(port), LOOPBACK, str(port)]
    procs.start(plane.dir, APISERVER_RELAY, argv, die_with_parent=die_with_caller)


def _apiserver_relayed(plane: ControlPlane) -> bool:
    try:
        with socket.create_connection(plane.pod_api_address, timeout=1.0):
            return True
    except OSError:
        return False


def _start(
    plane: ControlPlane, layout: NodeLayout, bin_dir: Path, images: Path, die_with_caller: bool
) -> Node:
    layout.root.mkdir(mode=0o700, parents=True)
    layout.link.symlink_to(layout.root)
    node = Node(NODE_NAME, layout, bin_dir)
    deadline = time.monotonic() + READY_TIMEOUT

    def wait(check: Callable[[], bool], watched: list[str], what: str) -> None:
        remaining = max(deadline - time.monotonic(), 0.0)
        wait_until_ready(plane.dir, check, watched, what=what, timeout=remaining)

    _write_files(plane, layout, bin_dir)
    _make_cgroups(layout)
    _make_bridge(layout)
    if plane.for_pods:
        _start_apiserver_relay(plane, die_with_caller)
        wait(lambda: _apiserver_relayed(plane), [APISERVER_RELAY], "relaying to the API server")
    # containerd finds runc and the shim on PATH.
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    procs.start(
        plane.dir,
        CONTAINERD,
        node_config.containerd_argv(bin_dir / "containerd", layout),
        env,
        die_with_parent=die_with_caller,
    )
    wait(lambda: _containerd_serving(node), [CONTAINERD], "serving")
    for archive in sorted(images.glob("*.tar")):
        node.import_image(archive)
    _allow_api_server_into_kubelet(plane)
    for attempt in range(KUBELET_STARTS):
        procs.start(
            plane.dir,
            KUBELET,
            node_config.kubelet_argv(bin_dir / "kubelet", layout, layout.node_ip),
            env,
            die_with_parent=die_with_caller,
        )
        try:
            wait(lambda: _node_ready(plane), [CONTAINERD, KUBELET], "Ready")
            return node
        except NotReadyError:
            record = procs.read(plane.dir, KUBELET)
            if attempt + 1 == KUBELET_STARTS or (record is not None and procs.is_running(record)):
                raise
    raise AssertionError("unreachable: the last start returns or raises")
