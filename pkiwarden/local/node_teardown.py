"""Leave nothing of the local node behind: processes, mounts, the bridge, cgroups, host files.

``pkiwarden local down`` calls :func:`teardown` before it stops the control
plane. What the node made is known from ``DIR/node.json`` (written by
:mod:`pkiwarden.local.node` before the first daemon starts), so a node whose
start failed half-way is cleaned just the same. In order:

1. the kubelet stops, so nothing restarts a container, and the kernel
   settings it changed at start-up get their old values back;
2. containerd kills and deletes every task it runs (the runc shims exit with
   their last task), then stops;
3. a sweep kills whatever is still left: any process in the node's cgroup
   (containers) and any runc shim serving this containerd;
4. every mount below the node's root (and the instance directory) is
   detached, deepest first (Secret volumes are tmpfs mounts, network
   namespaces are nsfs bind mounts, root filesystems are overlay mounts), so
   that removing the directories never reaches through a mount;
5. the bridge, the node's cgroups, libcni's cached results for the node's
   network, the kubelet's log links in /var/log/containers, and the
   directories among :data:`~pkiwarden.local.node_config.HOST_PATHS` that the
   node created, if they are empty.

A network namespace disappears with its last mount and process, and a Pod's
veth with its namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pkiwarden.local import node_config
from pkiwarden.local import processes as procs
from pkiwarden.local.node_config import NodeLayout

STATE_FILE = "node.json"
KUBELET = "kubelet"
CONTAINERD = "containerd"
APISERVER_RELAY = "apiserver-relay"
NODE_PROCESSES = (KUBELET, CONTAINERD, APISERVER_RELAY)
_MNT_DETACH = 2


@dataclass(frozen=True)
class NodeState:
    """What teardown must know about a node, saved before anything is started."""

    instance: str
    pod_subnet: str
    bin_dir: str
    # HOST_PATHS that existed before this node started: never removed.
    preexisting: tuple[str, ...]
    # KERNEL_TUNABLES as they were before the kubelet started: path -> value.
    tunables: dict[str, str]

    def layout(self, dir: Path) -> NodeLayout:
        """The node's paths inside instance directory ``dir``."""
        return NodeLayout(dir, self.instance, self.pod_subnet)


def save_state(dir: Path, state: NodeState) -> None:
    """Record the node in ``dir`` (before starting it, so teardown finds a half-started one)."""
    data = {
        "instance": state.instance,
        "pod_subnet": state.pod_subnet,
        "bin_dir": state.bin_dir,
        "preexisting": state.preexisting,
        "tunables": state.tunables,
    }
    (dir / STATE_FILE).write_text(json.dumps(data, indent=2) + "\n")


def load_state(dir: Path) -> NodeState | None:
    """The node recorded in ``dir``, or None if it has none."""
    try:
        data = json.loads((dir / STATE_FILE).read_text())
        return NodeState(
            data["instance"],
            data["pod_subnet"],
            data["bin_dir"],
            tuple(data["preexisting"]),
            dict(data["tunables"]),
        )
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def mounts_below(dir: Path, mountinfo: str) -> list[Path]:
    """Mount points at or below ``dir`` in ``/proc/self/mountinfo`` text, deepest first.

    Field 5 is the mount point, with spaces and other bytes octal-escaped.
    """
    found: list[Path] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = Path(fields[4].encode().decode("unicode_escape"))
        if point == dir or dir in point.parents:
            found.append(point)
    return sorted(set(found), key=lambda path: len(path.parts), reverse=True)


def shim_pids(socket: Path, proc: Path = Path("/proc")) -> list[int]:
    """Pids of runc shims started by the containerd listening on ``socket``."""
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(socket).encode() in argv:
            pids.append(int(entry.name))
    return pids


def cgroup_dirs(layout: NodeLayout, root: Path = node_config.CGROUP_ROOT) -> list[Path]:
    """The node's cgroup in every cgroup v1 hierarchy that has one."""
    if not root.is_dir():
        return []
    parent = layout.cgroup_parent.lstrip("/")
    return [
        hierarchy / parent for hierarchy in sorted(root.iterdir()) if (hierarchy / parent).is_dir()
    ]


def _walk_deepest_first(top: Path) -> Iterator[Path]:
    for current, subdirs, _files in os.walk(top, topdown=False):
        del subdirs
        yield Path(current)


def _cgroup_pids(layout: NodeLayout) -> set[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(layout):
        for group in _walk_deepest_first(top):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(pid) for pid in (group / "cgroup.procs").read_text().split())
    return pids


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _sweep(layout: NodeLayout, timeout: float = 10.0) -> int:
    """Kill containers and shims that outlived containerd; returns how many were found."""
    deadline = time.monotonic() + timeout
    first: set[int] | None = None
    while True:
        left = _cgroup_pids(layout) | set(shim_pids(layout.containerd_socket))
        first = left if first is None else first
        if not left or time.monotonic() > deadline:
            return len(first)
        _kill(left)
        time.sleep(0.1)


def _ctr(state: NodeState, layout: NodeLayout, *args: str) -> subprocess.CompletedProcess[str]:
    argv = node_config.ctr_argv(Path(state.bin_dir) / "ctr", layout, *args)
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def _delete_tasks(state: NodeState, layout: NodeLayout) -> int:
    """Kill and delete every task containerd runs; the shims exit after their last one."""
    listed = _ctr(state, layout, "tasks", "ls", "-q")
    if listed.returncode != 0:
        return 0
    tasks = listed.stdout.split()
    for task in tasks:
        _ctr(state, layout, "tasks", "kill", "--all", "--signal", "SIGKILL", task)
    for task in tasks:
        _ctr(state, layout, "tasks", "delete", "--force", task)
    return len(tasks)


def _unmount(paths: list[Path]) -> list[str]:
    libc = ctypes.CDLL(None, use_errno=True)
    failed = []
    for path in paths:
        if libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
            failed.append(f"{path}: {os.strerror(ctypes.get_errno())}")
    return failed


def _remove_bridge(name: str) -> bool:
    result = subprocess.run(
        ["ip", "link", "delete", name, "type", "bridge"], capture_output=True, check=False
    )
    return result.returncode == 0


def _remove_cgroups(layout: NodeLayout) -> list[str]:
    failed = []
    for top in cgroup_dirs(layout):
        for group in _walk_deepest_first(top):
            try:
                group.rmdir()
            except OSError as error:
                failed.append(f"{group}: {error.strerror}")
    return failed


def read_tunables() -> dict[str, str]:
    """The current values of the kernel settings a kubelet changes."""
    return {str(path): path.read_text().strip() for path in node_config.KERNEL_TUNABLES}


def _restore_tunables(saved: dict[str, str]) -> list[str]:
    restored = []
    for path, value in saved.items():
        current = Path(path).read_text().strip()
        if current != value:
            Path(path).write_text(value + "\n")
            restored.append(f"{path.removeprefix('/proc/sys/')} {current} -> {value}")
    return restored


def _remove_host_files(layout: NodeLayout, preexisting: tuple[str, ...]) -> None:
    results = node_config.CNI_RESULTS_DIR
    if results.is_dir():
        # NAME-SANDBOX-IFNAME: the sandboxes of our network, and their loopback's too.
        ours = results.glob(f"{layout.network}-*")
        sandboxes = {
            cached.name.removeprefix(f"{layout.network}-").split("-")[0] for cached in ours
        }
        for cached in results.iterdir():
            parts = cached.name.rsplit("-", 2)
            if len(parts) == 3 and parts[1] in sandboxes:
                cached.unlink(missing_ok=True)
    links = node_config.CONTAINER_LOG_LINKS
    if links.is_dir():
        for link in links.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and Path(os.readlink(link)).is_relative_to(layout.root):
                    link.unlink()
    for path in node_config.HOST_PATHS:
        if str(path) not in preexisting:
            with contextlib.suppress(OSError):  # not empty: someone else's files remain
                if path.is_socket():
                    path.unlink()
                else:
                    path.rmdir()


def teardown(dir: Path, report: Callable[[str], None]) -> None:
    """Stop and remove the node recorded in ``dir``, if any; says what it did."""
    state = load_state(dir)
    if state is None:
        return
    layout = state.layout(dir)
    report(procs.stop(dir, KUBELET))
    for line in _restore_tunables(state.tunables):
        report(f"restored kernel setting {line}")
    containerd = procs.read(dir, CONTAINERD)
    if containerd is not None and procs.is_running(containerd):
        deleted = _delete_tasks(state, layout)
        report(f"containerd: deleted {deleted} task(s)")
    report(procs.stop(dir, CONTAINERD))
    report(procs.stop(dir, APISERVER_RELAY))
    swept = _sweep(layout)
    if swept:
        report(f"killed {swept} container or shim process(es) left after containerd")
    for top in (layout.root, dir):
        for failure in _unmount(mounts_below(top, Path("/proc/self/mountinfo").read_text())):
            report(f"could not unmount {failure}")
    if _remove_bridge(layout.bridge):
        report(f"removed bridge {layout.bridge}")
    for failure in _remove_cgroups(layout):
        report(f"could not remove cgroup {failure}")
    _remove_host_files(layout, state.preexisting)
    if not mounts_below(layout.root, Path("/proc/self/mountinfo").read_text()):
        shutil.rmtree(layout.root, ignore_errors=True)
    else:
        report(f"left {layout.root}: something is still mounted below it")
    if layout.link.is_symlink():
        layout.link.unlink()
    (dir / STATE_FILE).unlink(missing_ok=True)
