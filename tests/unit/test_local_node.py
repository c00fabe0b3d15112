"""What the local node's daemons are started with, and what its teardown finds to undo."""

from __future__ import annotations

import ipaddress
import random
import tomllib
from pathlib import Path

import pytest

from pkiwarden.local import node_config, node_teardown
from pkiwarden.local.node_config import KubeletFiles, NodeLayout

LAYOUT = NodeLayout(Path("/inst"), "a1b2c3", "10.244.7.0/24")


def test_pod_subnets_avoid_every_routed_network_and_differ_between_nodes() -> None:
    routed = ["10.244.0.0/20", "192.0.2.0/24", "fd00::/64"]
    picks = {node_config.pod_subnet(routed, random.Random(seed)) for seed in range(40)}
    assert len(picks) > 30
    for pick in picks:
        subnet = ipaddress.ip_network(pick)
        assert subnet.prefixlen == 24
        assert subnet.subnet_of(node_config.POD_RANGE)
        assert not subnet.overlaps(ipaddress.ip_network("10.244.0.0/20"))


def test_no_pod_subnet_is_offered_when_the_whole_range_is_routed() -> None:
    with pytest.raises(ValueError, match="routed on this machine"):
        node_config.pod_subnet(["10.0.0.0/8"])


def test_the_node_root_is_short_enough_for_every_socket_below_it() -> None:
    # The longest socket: the kubelet's pod-resources socket while it is created.
    longest = LAYOUT.root / "kubelet" / "pod-resources" / "kubelet.sock.2243811280"
    assert len(str(longest)) < 108
    assert LAYOUT.link == Path("/inst/node")


def test_the_bridge_holds_the_first_address_and_pods_get_the_rest_without_a_gateway() -> None:
    assert LAYOUT.bridge_address == "10.244.7.1/24"
    assert LAYOUT.node_ip == "10.244.7.1"
    assert len(LAYOUT.bridge) <= 15
    bridge, loopback = node_config.cni_config(LAYOUT)["plugins"]
    assert bridge["bridge"] == LAYOUT.bridge
    assert bridge["isGateway"] is False
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.7.0/24", "rangeStart": "10.244.7.2"}]]
    assert "routes" not in bridge["ipam"]  # no default route in any Pod
    assert bridge["ipam"]["dataDir"].startswith(f"{LAYOUT.root}/")
    assert loopback == {"type": "loopback"}


def test_containerd_keeps_its_state_in_the_instance_and_tolerates_the_oom_restriction() -> None:
    config = tomllib.loads(node_config.containerd_config(LAYOUT, Path("/bin"), "pause:1"))
    assert config["version"] == 4
    assert config["imports"] == [f"{LAYOUT.root}/containerd.d/*.toml"]
    assert config["root"].startswith(f"{LAYOUT.root}/")
    assert config["state"].startswith(f"{LAYOUT.root}/")
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["netns_mounts_under_state_dir"] is True
    runc = runtime["containerd"]["runtimes"]["runc"]["options"]
    assert runc == {
        "BinaryName": "/bin/runc",
        "Root": f"{LAYOUT.root}/runc",
        "SystemdCgroup": False,
    }
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"] == {
        "sandbox": "pause:1"
    }
    assert "io.containerd.nri.v1.nri" in config["disabled_plugins"]
    registry = config["plugins"]["io.containerd.cri.v1.images"]["registry"]
    assert registry == {"config_path": f"{LAYOUT.root}/registry"}
    assert tomllib.loads(node_config.registry_hosts_toml()) == {"server": "https://127.0.0.1:1"}
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_address"] == "127.0.0.1"


def test_the_kubelet_serves_on_loopback_only_and_authenticates_every_caller() -> None:
    files = KubeletFiles(Path("/ca.crt"), Path("/k.crt"), Path("/k.key"))
    config = node_config.kubelet_config(LAYOUT, files, port=10250, healthz_port=10248)
    assert config["address"] == config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["cgroupRoot"] == "/pkiwarden-a1b2c3"
    assert config["makeIPTablesUtilChains"] is False
    assert config["podLogsDir"].startswith(f"{LAYOUT.root}/")
    argv = node_config.kubelet_argv(Path("kubelet"), LAYOUT, "192.0.2.2")
    assert "--hostname-override=localhost" in argv
    assert f"--root-dir={LAYOUT.root}/kubelet" in argv


MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
90 22 0:50 / /inst/node/kubelet/pods/u/volumes/kubernetes.io~secret/tls rw - tmpfs tmpfs rw
91 22 0:4 net:[4026532] /inst/node/containerd-state/netns/cni-1 rw - nsfs nsfs rw
92 22 0:51 / /inst/node/containerd-state/task/k8s.io/abc/rootfs rw - overlay overlay rw
93 22 0:52 / /inst\\040two/x rw - tmpfs tmpfs rw
94 22 0:53 / /instance-other rw - tmpfs tmpfs rw
"""


def test_teardown_unmounts_everything_below_the_instance_deepest_first_and_nothing_else() -> None:
    found = node_teardown.mounts_below(Path("/inst"), MOUNTINFO)
    assert set(found) == {
        Path("/inst/node/kubelet/pods/u/volumes/kubernetes.io~secret/tls"),
        Path("/inst/node/containerd-state/netns/cni-1"),
        Path("/inst/node/containerd-state/task/k8s.io/abc/rootfs"),
    }
    assert found[0] == Path("/inst/node/kubelet/pods/u/volumes/kubernetes.io~secret/tls")
    assert node_teardown.mounts_below(Path("/inst two"), MOUNTINFO) == [Path("/inst two/x")]


def test_teardown_finds_only_the_shims_of_its_own_containerd(tmp_path: Path) -> None:
    socket = "/inst/node/containerd.sock"
    for pid, argv in {
        "10": ["/c/containerd-shim-runc-v2", "-namespace", "k8s.io", "-address", socket],
        "11": ["/c/containerd-shim-runc-v2", "-namespace", "k8s.io", "-address", "/other.sock"],
        "12": ["/usr/bin/sleep", socket],
    }.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (tmp_path / "self").mkdir()
    assert node_teardown.shim_pids(Path(socket), tmp_path) == [10]
