"""What the local node's processes are started with: pure functions, no I/O.

One node runs next to the control plane: containerd (with runc and the CNI
plugins) and a kubelet. Every path a daemon would put in ``/var/lib``,
``/run`` or ``/etc`` is pointed into the node's own directory instead,
``/tmp/pkiwarden-node-<id>`` (linked from ``DIR/node``; short, so that the
sockets below it can be bound), so that ``pkiwarden local down`` can remove
it; what cannot be pointed elsewhere is listed in :data:`HOST_PATHS` and
cleaned by :mod:`pkiwarden.local.node_teardown`.

Network rules (see deploy/local/README.md): Pods get an address on a bridge
of their own /24. The bridge holds the subnet's first address, so the
machine (the kubelet's probes, the tests) reaches Pods through one route to
that bridge; the CNI plugin is told ``isGateway: false`` and ``ipMasq:
false``, so Pods get no default route, no masquerading is set up and
``net.ipv4.ip_forward`` is left alone: a Pod reaches other Pods and the
bridge's address, nothing else. The kubelet serves on loopback only; the API
server reaches it as ``localhost`` (the node's name and Hostname address),
never through the node IP it reports, which is the bridge's address.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pkiwarden.local.readiness import LOOPBACK

# The node's name is also the Hostname address the API server dials: it must
# resolve to loopback on any machine, which only "localhost" does.
NODE_NAME = "localhost"
NODE_USER = f"system:node:{NODE_NAME}"
NODE_GROUP = "system:nodes"
K8S_NAMESPACE = "k8s.io"
# Each node's Pods get a /24 of this range that no route of the machine overlaps.
POD_RANGE = ipaddress.ip_network("10.244.0.0/16")
# Paths on the machine that containerd, the kubelet or libcni write to whatever
# their configuration says. Teardown removes what the instance left there.
SHIM_SOCKET_DIR = Path("/run/containerd/s")
CNI_RESULTS_DIR = Path("/var/lib/cni/results")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
# The kubelet's device-plugin registration socket ignores --root-dir.
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
# Deepest first: teardown removes each one it created, if empty, in this order.
HOST_PATHS: tuple[Path, ...] = (
    SHIM_SOCKET_DIR,
    SHIM_SOCKET_DIR.parent / "fifo",
    SHIM_SOCKET_DIR.parent / "runc" / K8S_NAMESPACE,
    SHIM_SOCKET_DIR.parent / "runc",
    SHIM_SOCKET_DIR.parent,
    CNI_RESULTS_DIR,
    CNI_RESULTS_DIR.parent,
    CONTAINER_LOG_LINKS,
    DEVICE_PLUGIN_SOCKET,
    DEVICE_PLUGIN_SOCKET.parent,
    DEVICE_PLUGIN_SOCKET.parent.parent,
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The kernel settings a kubelet sets at start-up (panic on oops, overcommit,
# key quotas) unless protectKernelDefaults, which makes it refuse to start
# instead. Recorded before and restored by teardown.
KERNEL_TUNABLES: tuple[Path, ...] = tuple(
    Path("/proc/sys") / name
    for name in (
        "vm/overcommit_memory",
        "vm/panic_on_oom",
        "kernel/panic",
        "kernel/panic_on_oops",
        "kernel/keys/root_maxkeys",
        "kernel/keys/root_maxbytes",
    )
)
# Short, so that the sockets below a node's root stay within the 108-byte limit.
NODE_ROOTS = Path("/tmp")


@dataclass(frozen=True)
class NodeLayout:
    """Where one instance's node keeps everything, derived from the instance directory.

    ``instance`` is a short random id: it names the bridge, the CNI network and
    the cgroup so that instances side by side (the demo and a test run) never
    share one.
    """

    dir: Path
    instance: str
    pod_subnet: str

    @property
    def node_ip(self) -> str:
        """The Node's InternalIP: the bridge's address (the kubelet refuses loopback).

        Not the machine's interface address, so that nothing, not even a
        hostNetwork Pod's probe, ever dials that.
        """
        return bridge_ip(self.pod_subnet)

    @property
    def bridge_address(self) -> str:
        """The bridge's own address, first of the subnet, with its prefix length."""
        network = ipaddress.ip_network(self.pod_subnet)
        return f"{network[1]}/{network.prefixlen}"

    @property
    def root(self) -> Path:
        """Everything of the node lives below this; ``DIR/node`` links to it.

        Not inside the instance directory: the kubelet and containerd create
        Unix sockets below their directories, and a socket path longer than
        108 bytes cannot be bound (a test's temporary directory is longer).
        """
        return NODE_ROOTS / f"pkiwarden-node-{self.instance}"

    @property
    def link(self) -> Path:
        """``DIR/node``: where a user finds the node's files."""
        return self.dir / "node"

    @property
    def containerd_socket(self) -> Path:
        """containerd's gRPC socket (ttrpc gets the same path plus ``.ttrpc``)."""
        return self.root / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        """containerd's config.toml."""
        return self.root / "containerd.toml"

    @property
    def kubelet_config(self) -> Path:
        """The KubeletConfiguration file."""
        return self.root / "kubelet.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        """The node credential: ``system:node:localhost`` in ``system:nodes``."""
        return self.root / "kubelet.kubeconfig"

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's --root-dir: Pod volumes (Secrets' tmpfs) are mounted below it."""
        return self.root / "kubelet"

    @property
    def registry_hosts(self) -> Path:
        """containerd's registry configuration (``_default/hosts.toml`` only)."""
        return self.root / "registry"

    @property
    def cni_conf_dir(self) -> Path:
        """The CNI network configuration containerd reads."""
        return self.root / "cni" / "net.d"

    @property
    def bridge(self) -> str:
        """The bridge's interface name (at most 15 characters)."""
        return f"pkiw{self.instance}"

    @property
    def network(self) -> str:
        """The CNI network's name; libcni names its cached results after it."""
        return f"pkiwarden-{self.instance}"

    @property
    def cgroup_parent(self) -> str:
        """The kubelet's cgroupRoot: every container of this node is inside it."""
        return f"/pkiwarden-{self.instance}"


def bridge_ip(pod_subnet: str) -> str:
    """The bridge's address, the subnet's first: the Node's InternalIP; Pods dial it."""
    return str(ipaddress.ip_network(pod_subnet)[1])


def pod_subnet(routed: Iterable[str], rng: random.Random | None = None) -> str:
    """A /24 of :data:`POD_RANGE` that overlaps none of the ``routed`` networks.

    Random, so nodes side by side (the demo and a test run) get different
    subnets and their bridges' routes never collide.
    """
    taken = [ipaddress.ip_network(net, strict=False) for net in routed]
    free = [
        subnet
        for subnet in POD_RANGE.subnets(new_prefix=24)
        if not any(subnet.overlaps(net) for net in taken if net.version == 4)
    ]
    if not free:
        raise ValueError(f"every /24 of {POD_RANGE} is routed on this machine already")
    return str((rng or random.SystemRandom()).choice(free))


def _toml_value(value: object) -> str:
    """TOML for the scalars and string lists containerd's config uses (JSON strings are TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _toml(tables: dict[str, dict[str, object]], top: dict[str, object]) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for name, entries in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def containerd_config(layout: NodeLayout, bin_dir: Path, pause_image: str) -> str:
    """containerd's config.toml (version 4, containerd 2.4).

    - state and root in the instance; network namespaces under the state
      directory rather than /run/netns; runc's state too;
    - cgroupfs, not systemd (cgroups v1 here, and no systemd to delegate to);
    - ``restrict_oom_score_adj``: without CAP_SYS_RESOURCE a sandbox asking
      for a lower oom_score_adj than containerd's own fails in ``runc init``;
    - the sandbox image pinned to the one built and imported locally;
    - every registry pointed at a loopback port nothing listens on
      (:func:`registry_hosts_toml`), so pulling an image not on the node
      fails at once and no packet leaves the machine;
    - plugins that would write to /opt, /run/nri or other fixed places are off.
    """
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    runc = f"{cri_runtime}.containerd.runtimes.runc"
    tables: dict[str, dict[str, object]] = {
        "plugins.'io.containerd.server.v1.grpc'": {"address": str(layout.containerd_socket)},
        "plugins.'io.containerd.server.v1.ttrpc'": {"address": f"{layout.containerd_socket}.ttrpc"},
        cri_runtime: {
            "restrict_oom_score_adj": True,
            "netns_mounts_under_state_dir": True,
            "enable_selinux": False,
            "disable_apparmor": True,
            "cdi_spec_dirs": [],
        },
        f"{cri_runtime}.containerd": {"default_runtime_name": "runc"},
        runc: {"runtime_type": "io.containerd.runc.v2"},
        f"{runc}.options": {
            "BinaryName": str(bin_dir / "runc"),
            "Root": str(layout.root / "runc"),
            "SystemdCgroup": False,
        },
        f"{cri_runtime}.cni": {
            "bin_dirs": [str(bin_dir)],
            "conf_dir": str(layout.cni_conf_dir),
            "max_conf_num": 1,
        },
        "plugins.'io.containerd.cri.v1.images'": {"snapshotter": "overlayfs"},
        "plugins.'io.containerd.cri.v1.images'.pinned_images": {"sandbox": pause_image},
        "plugins.'io.containerd.cri.v1.images'.registry": {
            "config_path": str(layout.registry_hosts)
        },
        "plugins.'io.containerd.grpc.v1.cri'": {
            "stream_server_address": LOOPBACK,
            "stream_server_port": "0",
        },
        "plugins.'io.containerd.internal.v1.opt'": {"path": str(layout.root / "opt")},
    }
    top: dict[str, object] = {
        "version": 4,
        # Not the machine's /etc/containerd/conf.d (the default when empty).
        "imports": [str(layout.root / "containerd.d" / "*.toml")],
        "root": str(layout.root / "containerd"),
        "state": str(layout.root / "containerd-state"),
        "temp": str(layout.root / "tmp"),
        "disabled_plugins": [
            "io.containerd.nri.v1.nri",
            "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.tracing",
        ],
    }
    return _toml(tables, top)


# A loopback port nothing listens on (TCP port 1 is tcpmux, long unused).
NO_REGISTRY = "https://127.0.0.1:1"


def registry_hosts_toml() -> str:
    """``_default/hosts.toml``: the upstream of every registry containerd is asked for."""
    return (
        "# pkiwarden local node: Pods run images already on the node; every pull\n"
        "# goes to a loopback port nothing listens on, and fails at once.\n"
        f'server = "{NO_REGISTRY}"\n'
    )


def cni_config(layout: NodeLayout) -> dict[str, Any]:
    """A bridge network whose bridge has no address: Pods reach each other, nothing else.

    ``isGateway: false`` and ``ipMasq: false`` keep the machine's routes and
    packet filter untouched and leave ``ip_forward`` alone; host-local IPAM
    keeps its allocations in the instance directory.
    """
    return {
        "cniVersion": "1.0.0",
        "name": layout.network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.root / "cni" / "ipam"),
                    "ranges": [
                        [
                            {
                                "subnet": layout.pod_subnet,
                                "rangeStart": str(ipaddress.ip_network(layout.pod_subnet)[2]),
                            }
                        ]
                    ],
                },
            },
            {"type": "loopback"},
        ],
    }


@dataclass(frozen=True)
class KubeletFiles:
    """The kubelet's serving certificate and the CA it trusts for client certificates."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path


def kubelet_config(
    layout: NodeLayout, files: KubeletFiles, *, port: int, healthz_port: int
) -> dict[str, Any]:
    """The KubeletConfiguration: loopback only, authenticated, cgroupfs on cgroups v1.

    The machine's packet filter is left alone (``makeIPTablesUtilChains:
    false``): nothing on this node needs the kubelet's utility chains.

    Secrets and ConfigMaps are re-read from the API server's watch on every
    Pod sync, so ``syncFrequency`` bounds how long a renewed certificate takes
    to reach a running Pod's files (a minute by default; 5 s here).
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": LOOPBACK,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": LOOPBACK,
        "healthzPort": healthz_port,
        "tlsCertFile": str(files.serving_cert),
        "tlsPrivateKeyFile": str(files.serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(files.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_parent,
        "failCgroupV1": False,
        "failSwapOn": False,
        "podLogsDir": str(layout.root / "pod-logs"),
        "clusterDomain": "cluster.local",
        "syncFrequency": "5s",
        "fileCheckFrequency": "10s",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 30,
        # Otherwise the kubelet adds chains and a KUBE-FIREWALL rule to the
        # machine's packet filter, which outlive it.
        "makeIPTablesUtilChains": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def kubelet_argv(binary: Path, layout: NodeLayout, node_ip: str) -> list[str]:
    """The kubelet as ``system:node:localhost``, reporting ``node_ip`` as its InternalIP."""
    return [
        str(binary),
        f"--config={layout.kubelet_config}",
        f"--kubeconfig={layout.kubelet_kubeconfig}",
        f"--root-dir={layout.kubelet_root}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={node_ip}",
        "--v=1",
    ]


def containerd_argv(binary: Path, layout: NodeLayout) -> list[str]:
    """containerd with the instance's config."""
    return [str(binary), f"--config={layout.containerd_config}"]


def ctr_argv(binary: Path, layout: NodeLayout, *args: str) -> list[str]:
    """``ctr`` against the instance's containerd, in the namespace the CRI uses."""
    return [str(binary), f"--address={layout.containerd_socket}", "-n", K8S_NAMESPACE, *args]
