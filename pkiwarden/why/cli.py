"""``pkiwarden why`` / ``kubectl pkiwarden why``: parse, connect as kubectl would, gather, print.

The kubeconfig is read the way kubectl reads it (``--kubeconfig``, else
``$KUBECONFIG``, else ``~/.kube/config``; the current context unless
``--context``; its namespace unless ``-n``), so ``kubectl pkiwarden why``
looks at the same cluster and namespace as the kubectl command before it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from pkiwarden.why.gather import UnreadableTargetError, gather
from pkiwarden.why.render import (
    Exit,
    headline,
    render_json,
    render_text,
    render_unreadable_json,
    render_unreadable_text,
)
from pkiwarden.why.targets import USAGE, Target, TargetError, parse_target
from shared.kube.client import Kube

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

DESCRIPTION = """\
Why is TARGET not working, and what do I change? Follows a Pod (or a workload's
pod template) to the Secrets it uses, the Pki that writes each, its last failure
and next retry, the PkiPolicy that decides, pkiwarden's Events, and the fix.
Exit 0: everything the target needs is Ready; 1: something is not; 2: the target
cannot be read (the message names the missing permission)."""


class ConnectError(Exception):
    """No usable kubeconfig or in-cluster credentials; the message says which."""


def connect(kubeconfig: str | None, context: str | None) -> tuple[Kube, str]:
    """A client and the namespace kubectl would use with the same flags and environment."""
    configuration = k8s_client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")):
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration
            )
            contexts, active = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=path
            )
            chosen = next((c for c in contexts if c.get("name") == context), active)
            namespace = str((chosen.get("context") or {}).get("namespace") or "default")
        else:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            namespace = IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    except (k8s_config.ConfigException, OSError, ValueError, KeyError) as error:
        raise ConnectError(f"no usable kubeconfig or in-cluster credentials: {error}") from None
    return Kube(configuration, pool_size=2), namespace


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "why",
        help="why a Pod, workload, Pki or Secret is not working, and the fix",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="TARGET", help=USAGE)
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="output format"
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    as_json = args.output == "json"
    target: Target | None = None
    try:
        target = parse_target(args.target, args.namespace or "")  # a typo fails before I/O
        kube, namespace = connect(args.kubeconfig, args.context)
        target = dataclasses.replace(target, namespace=args.namespace or namespace)
        facts = gather(kube, target)
    except (ConnectError, TargetError, UnreadableTargetError) as error:
        if as_json:
            document = render_unreadable_json(target, args.target, str(error))
            print(json.dumps(document, indent=2))
        else:
            print(render_unreadable_text(str(error)), end="", file=sys.stderr)
        return int(Exit.UNREADABLE)
    if as_json:
        print(json.dumps(render_json(facts), indent=2))
    else:
        print(render_text(facts), end="")
    return int(headline(facts).exit)
