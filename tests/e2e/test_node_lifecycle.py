"""`pkiwarden local up` starts a real node that keeps its traffic to itself; `down` leaves nothing.

Its own instance through the CLI, as a user runs it: a Pod on the node's
bridge network runs; ``ip_forward`` and the packet filter are what they were,
and the machine's routes too but for the one to the bridge; the Pod has an
address on the bridge's subnet and no route off it, none via the machine's
interfaces. After ``down`` no process, mount, bridge, network namespace,
cgroup or file of the node is left on the machine, and the kernel settings
the kubelet changes at start-up are back to what they were.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

from pkiwarden.local import controlplane, node, node_config, node_teardown
from pkiwarden.local.controlplane import ControlPlane
from tests.e2e.helpers import eventually, live_processes

# Where a node could leave something behind on the machine.
WATCHED_DIRS = (Path("/run"), Path("/var/lib"), Path("/etc"), Path("/opt"), Path("/var/log"))


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _host() -> dict[str, object]:
    """What the node must leave as it found it."""
    return {
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        "routes": _ip("-4", "route", "show", "table", "all"),
        "links": sorted(link["ifname"] for link in json.loads(_ip("-j", "link", "show"))),
        "entries": {str(d): sorted(os.listdir(d)) for d in WATCHED_DIRS if d.is_dir()},
        "host_paths": [str(p) for p in node_config.HOST_PATHS if p.exists()],
        "packet_filter": _packet_filter(),
        "kernel": node_teardown.read_tunables(),
        "cgroups": sorted(
            str(group.relative_to(node_config.CGROUP_ROOT))
            for group in node_config.CGROUP_ROOT.glob("*/*")
            if group.is_dir()
        ),
    }


def _packet_filter() -> dict[str, object]:
    """The machine's nftables tables, and any chain or rule naming Kubernetes or CNI."""
    ruleset = subprocess.run(
        ["nft", "-s", "list", "ruleset"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return {
        "tables": sorted(line for line in ruleset if line.startswith("table ")),
        "ours": [line for line in ruleset if re.search(r"KUBE|CNI|pkiw", line)],
    }


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        controlplane.pkiwarden_argv("local", *args),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _routes(pid: int) -> list[tuple[str, str, str]]:
    """(interface, destination, gateway) of each IPv4 route in the network namespace of ``pid``."""
    rows = Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]
    return [(row.split()[0], row.split()[1], row.split()[2]) for row in rows]


def _hex_address(text: str) -> str:
    """/proc/net/route's little-endian hex address as dotted quad."""
    return str(ipaddress.IPv4Address(bytes.fromhex(text)[::-1]))


def _listening_on(port: int) -> set[str]:
    """The local addresses of every listening TCP socket (IPv4 and IPv6) on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def _sleeper(plane: ControlPlane) -> dict[str, object]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": "default"},
        "spec": {
            "containers": [
                {"name": "sleeper", "image": node.pause_image(), "imagePullPolicy": "Never"}
            ],
            "automountServiceAccountToken": False,
        },
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def running() -> dict[str, object] | None:
        got = json.loads(plane.kubectl("get", "pod", "sleeper", "-o", "json").stdout)
        return got if got["status"].get("phase") == "Running" else None

    return eventually(running, 90, "Pod sleeper to run on the node")


def test_up_starts_a_node_that_keeps_to_itself_and_down_leaves_nothing(tmp_path: Path) -> None:
    before = _host()
    dir = tmp_path / "instance"
    started = _cli("up", "--dir", str(dir))
    try:
        assert started.returncode == 0, started.stderr
        assert "node localhost ready" in started.stderr
        plane = controlplane.running(dir)
        assert plane is not None
        state = node_teardown.load_state(dir)
        assert state is not None
        layout = state.layout(dir)
        # The Node reports the bridge's address, never the machine's interface
        # address, and is reached by the API server as "localhost".
        got = json.loads(plane.kubectl("get", "node", "localhost", "-o", "json").stdout)
        addresses = {a["type"]: a["address"] for a in got["status"]["addresses"]}
        assert addresses == {"InternalIP": layout.node_ip, "Hostname": "localhost"}
        # The kubelet is a node, limited as one: no system:masters, the Node
        # authorizer decides what it reads.
        node_config_path = layout.kubelet_kubeconfig
        who = json.loads(
            plane.kubectl("auth", "whoami", "-o", "json", kubeconfig=node_config_path).stdout
        )["status"]["userInfo"]
        assert who["username"] == "system:node:localhost"
        assert "system:nodes" in who["groups"] and "system:masters" not in who["groups"]
        for verb in (("list", "secrets", "-A"), ("delete", "nodes")):
            answer = plane.kubectl("auth", "can-i", *verb, kubeconfig=node_config_path, check=False)
            assert answer.stdout.strip().startswith("no"), verb
        # The API server listens on loopback alone; Pods reach it through the
        # node's relay on the bridge's address.
        bridge_ip, api_port = plane.pod_api_address
        assert _listening_on(api_port) == {"127.0.0.1", bridge_ip}
        pod = _sleeper(plane)
        pod_ip = ipaddress.ip_address(pod["status"]["podIP"])  # type: ignore[index]
        subnet = ipaddress.ip_network(layout.pod_subnet)
        assert pod_ip in subnet
        tasks = node.Node(node_config.NODE_NAME, layout, Path(state.bin_dir)).ctr("tasks", "ls")
        pids = [int(row.split()[1]) for row in tasks.stdout.splitlines()[1:]]
        assert pids, tasks.stdout
        for pid in pids:
            routes = _routes(pid)
            # Only the bridge's subnet, on the Pod's own interface: no default route,
            # no gateway, nothing towards the machine's interfaces.
            assert [(iface, _hex_address(dest)) for iface, dest, _gw in routes] == [
                ("eth0", str(subnet.network_address))
            ]
            assert all(_hex_address(gw) == "0.0.0.0" for _iface, _dest, gw in routes)
        during = _host()
        assert during["ip_forward"] == before["ip_forward"]
        assert during["packet_filter"] == before["packet_filter"]
        added_routes = set(str(during["routes"]).splitlines()) - set(
            str(before["routes"]).splitlines()
        )
        assert {line.split()[0] for line in added_routes} == {str(subnet), "local", "broadcast"}
        assert all(f"dev {layout.bridge}" in line for line in added_routes)
        assert set(str(before["routes"]).splitlines()) <= set(str(during["routes"]).splitlines())
        added = set(during["links"]) - set(before["links"])  # type: ignore[call-overload]
        assert layout.bridge in added
        assert all(name == layout.bridge or name.startswith("veth") for name in added)
    finally:
        stopped = _cli("down", "--dir", str(dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not dir.exists()
    leftovers = [cmd for _pid, _stat, cmd in live_processes() if str(dir).encode() in cmd]
    assert not leftovers
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(dir) not in mountinfo
    assert not list(node_config.CGROUP_ROOT.glob(f"*{layout.cgroup_parent}"))
    assert _host() == before
