"""``pkiwarden local up|down``: the command-line face of :mod:`pkiwarden.local.controlplane`.

Only argument handling and printing live here; everything a test or the demo
also needs is in the modules of :mod:`pkiwarden.local`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from pkiwarden.local import (
    controlplane,
    install,
    issuer_process,
    node,
    node_config,
    on_node,
    webhook_process,
)
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane, ControlPlaneError
from pkiwarden.local.readiness import NotReadyError
from pkiwarden.why.plugin import path_line


def helpers_to_run(with_webhook: bool, with_issuer: bool) -> tuple[str, ...]:
    """The Deployments' processes ``local up`` runs for its flags, in the order they start.

    Installing deploy/ registers the webhook for Pkis and PkiAuthorities, so
    the issuer never runs without it: the CA Job's PkiAuthority, and every
    Pki, would be refused by the API server (failing closed on a webhook
    nobody serves).
    """
    return (("webhook",) if with_webhook or with_issuer else ()) + (
        ("issuer",) if with_issuer else ()
    )


def _dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=controlplane.default_dir(),
        help="instance directory: key material, etcd data, logs, kubeconfig (default: %(default)s)",
    )


def register(subparsers: Any) -> None:
    """Add the ``local`` command group to the pkiwarden CLI."""
    local = subparsers.add_parser(
        "local",
        help="run a real local control plane for development",
        description="A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler"
        " on loopback and a node (containerd, runc, CNI bridge, kubelet), built from pinned"
        " Go modules.",
    )
    actions = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    start = actions.add_parser("up", help="start (or reuse) a control plane and print KUBECONFIG")
    _dir_argument(start)
    start.add_argument(
        "--no-node",
        action="store_true",
        help="control plane only: no containerd and kubelet, so Pods stay Pending",
    )
    start.add_argument(
        "--with-webhook",
        action="store_true",
        help="apply deploy/ and run pkiwarden as Pods on the node (with --no-node: run the"
        " webhook Deployment's process on its Service's address)",
    )
    start.add_argument(
        "--with-issuer",
        action="store_true",
        help="apply deploy/ and run pkiwarden as Pods on the node (with --no-node: run the"
        " issuer Deployment's process, and the webhook's, since deploy/ registers it)",
    )
    start.set_defaults(handler=run_up)
    stop = actions.add_parser("down", help="stop the processes of a control plane, remove its data")
    _dir_argument(stop)
    stop.set_defaults(handler=run_down)


def _start_pods(plane: ControlPlane) -> None:
    """Install deploy/ through the local overlay: pkiwarden's Deployments run on the node."""
    started = node.running(plane)
    if started is None:
        raise ControlPlaneError(
            f"the control plane in {plane.dir} runs pkiwarden as Pods, and its node is not"
            " running: run `pkiwarden local up` without --no-node"
        )
    installed = plane.kubectl(
        "get", "deployment", install.ISSUER_DEPLOYMENT, "-n", install.SYSTEM_NAMESPACE, check=False
    )
    if installed.returncode == 0:
        on_node.wait_rolled_out(plane)
        print("pkiwarden already running as Pods", file=sys.stderr)
        return
    on_node.install_on_node(plane, started)
    print(
        f"pkiwarden running as Pods (kubectl get pods -n {install.SYSTEM_NAMESPACE})",
        file=sys.stderr,
    )


def _start_helpers(plane: ControlPlane, args: argparse.Namespace) -> None:
    """Install deploy/ as shipped, then run the requested Deployments' processes."""
    if plane.for_pods:
        if args.with_webhook or args.with_issuer:
            _start_pods(plane)
        return
    wanted = []
    for name in helpers_to_run(args.with_webhook, args.with_issuer):
        record = procs.read(plane.dir, name)
        if record is not None and procs.is_running(record):
            print(f"{name} already running (pid {record.pid})", file=sys.stderr)
            continue
        wanted.append(name)
    if not wanted:
        return
    install.install(plane)
    identities = install.identities(plane)
    starters = {
        "webhook": lambda: webhook_process.start_deployed(plane, identities.webhook).pid,
        "issuer": lambda: issuer_process.start_deployed(plane, identities).pid,
    }
    for name in wanted:
        pid = starters[name]()
        log = procs.log_path(plane.dir, name)
        print(f"{name} ready (pid {pid}, log {log})", file=sys.stderr)


def _start_node(plane: ControlPlane) -> None:
    """Start the node (containerd and kubelet) unless it runs already."""
    if node.running(plane) is not None:
        print(f"node {node_config.NODE_NAME} already running", file=sys.stderr)
        return
    started = node.up(plane)
    print(
        f"node {started.name} ready (containerd and kubelet, logs in {plane.dir / 'logs'})",
        file=sys.stderr,
    )


def run_up(args: argparse.Namespace) -> int:
    """Handler of ``pkiwarden local up``."""
    already = controlplane.running(args.dir)
    try:
        subnet = None if args.no_node else node.free_pod_subnet()
        plane = already or controlplane.up(args.dir, pod_subnet=subnet)
    except (ControlPlaneError, NotReadyError) as error:
        print(f"pkiwarden local up: {error}", file=sys.stderr)
        return 1
    if already is not None:
        print(f"control plane already running in {plane.dir} at {plane.server}", file=sys.stderr)
    else:
        print(
            f"control plane ready at {plane.server} (logs in {plane.dir / 'logs'})", file=sys.stderr
        )
    try:
        if not args.no_node:
            _start_node(plane)
        _start_helpers(plane, args)
    except (ControlPlaneError, NotReadyError, subprocess.CalledProcessError) as error:
        print(f"pkiwarden local up: {error}", file=sys.stderr)
        return 1
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(path_line(plane.bin_dir))
    return 0


def run_down(args: argparse.Namespace) -> int:
    """Handler of ``pkiwarden local down``."""
    try:
        controlplane.down(args.dir, report=lambda line: print(line, file=sys.stderr))
    except ControlPlaneError as error:
        print(f"pkiwarden local down: {error}", file=sys.stderr)
        return 1
    return 0
