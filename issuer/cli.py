"""``pkiwarden issuer run`` and ``pkiwarden issuer bootstrap-ca``."""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from typing import Any

from issuer.controllers.authorities.effects.bootstrap_ca import (
    bootstrap_authority,
    bootstrap_ca,
    drop_binding,
)
from issuer.runtime.ready import QueueOrder
from issuer.runtime.settings import POD_BACKDATE_LIMIT, Settings
from shared import logs
from shared.backoff import Backoff
from shared.clock import utc_now
from shared.durations import DurationError, parse_duration
from shared.kube.client import ApiError, Kube

DEFAULTS = Settings()
DEFAULT_TTL = f"{DEFAULTS.event_ttl.total_seconds() / 3600:g}h"


def register(subparsers: Any) -> None:
    issuer = subparsers.add_parser(
        "issuer", help="issue TLS Secrets for accepted Pkis", description=__doc__
    )
    commands = issuer.add_subparsers(dest="issuer_command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="watch Pkis and keep their Secrets issued",
        description="Watch Pkis cluster-wide and keep each one's kubernetes.io/tls Secret"
        " issued and current, signed by the CA Secret in the issuer's namespace.",
    )
    _common(run)
    run.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.workers,
        help=f"Pkis reconciled in parallel (default {DEFAULTS.workers})",
    )
    run.add_argument(
        "--health-port",
        "--metrics-port",
        dest="health_port",
        type=int,
        default=DEFAULTS.health_port,
        help="port serving /healthz, /readyz and /metrics; 0 picks a free port, -1 disables"
        f" (default {DEFAULTS.health_port})",
    )
    run.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.leader_elect,
        help="lead through a coordination Lease so only one replica writes (default on)",
    )
    run.add_argument(
        "--sync-timeout",
        type=float,
        default=DEFAULTS.sync_timeout_seconds,
        help="seconds without a list page, while the first lists run, before giving up"
        " (default %(default)s; the lists themselves may take longer)",
    )
    run.add_argument(
        "--event-ttl",
        type=_duration,
        default=DEFAULT_TTL,
        help="how long the API server keeps Events (its --event-ttl); a failure's Events are"
        " written again before then (default %(default)s)",
    )
    run.add_argument(
        "--retry-base",
        type=_duration,
        default=f"{DEFAULTS.retry.base:g}s",
        help="wait after the first failed issuance, doubled at each further one"
        " (default %(default)s)",
    )
    run.add_argument(
        "--retry-cap",
        type=_duration,
        default=f"{DEFAULTS.retry.cap / 3600:g}h",
        help="longest wait between failed issuances (default %(default)s)",
    )
    run.add_argument(
        "--metrics-secure-port",
        dest="metrics_port",
        type=int,
        default=DEFAULTS.metrics_port,
        help="serve /metrics over HTTPS on this port (0 picks a free one) to bearer tokens"
        " allowed to get /metrics (ClusterRole pkiwarden-metrics-reader), and not on the"
        " health port; -1 keeps it on the plain health port (default %(default)s)",
    )
    run.add_argument(
        "--queue-order",
        type=QueueOrder,
        choices=list(QueueOrder),
        default=DEFAULTS.queue_order,
        help="fair: ready Pkis are taken round-robin across namespaces, so one namespace's"
        " burst delays no other; fifo: first come, first served, for comparison"
        " (default %(default)s)",
    )
    run.add_argument(
        "--shards",
        type=_positive,
        default=DEFAULTS.shards,
        help="split the namespaces into N shards, one Lease each: each replica caches and"
        " works only the shards it leads, takes over a dead replica's when its Lease"
        " expires, and hands one to a replica that joins later (needs --leader-elect;"
        " default %(default)s: one Lease, as before)",
    )
    run.add_argument(
        "--lease-duration",
        type=_duration,
        default=f"{DEFAULTS.lease_duration_seconds:g}s",
        help="how long a Lease holds without renewal before another replica takes it"
        " (default %(default)s)",
    )
    run.add_argument(
        "--pod-certificate-refresh",
        type=_fraction,
        default=DEFAULTS.pod_refresh_fraction,
        help="when the kubelet asks again for a Pod certificate, as a fraction of its"
        " lifetime; the API server's bounds (10m after notBefore, 10m before notAfter)"
        " apply, so 0 is as early as allowed (default 2/3)",
    )
    run.add_argument(
        "--pod-certificate-backdate",
        type=_backdate,
        default=f"{DEFAULTS.pod_backdate.total_seconds():g}s",
        help="how far a Pod certificate's notBefore goes back, for peers whose clock is"
        f" behind; under {POD_BACKDATE_LIMIT.total_seconds() / 60:g}m, the API server's"
        " limit (default %(default)s)",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=_run)

    bootstrap = commands.add_parser(
        "bootstrap-ca",
        help="create a self-signed development CA Secret if none exists",
        description="Create a self-signed root CA as a kubernetes.io/tls Secret in the"
        " issuer's namespace, unless a Secret of that name exists (it is never replaced),"
        " and a PkiAuthority naming it that lets pkiwarden rotate it. For development"
        " clusters; production CAs come from the platform team.",
    )
    _common(bootstrap)
    bootstrap.add_argument(
        "--authority-only",
        action="store_true",
        help="create only the PkiAuthority (spec.generate): the issuer then creates the CA"
        " Secret itself, so no other account needs to write one",
    )
    bootstrap.add_argument(
        "--drop-binding",
        metavar="NAME",
        help="afterwards delete the ClusterRoleBinding NAME (a Job's own grant), so no"
        " permission used only at bootstrap outlives it",
    )
    bootstrap.set_defaults(handler=_bootstrap)


def _positive(text: str) -> int:
    """A count of at least 1 for a flag."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a whole number') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'"{text}" must be 1 or more')
    return value


def _duration(text: str) -> timedelta:
    """A Go duration ("1h", "90s") for a flag; argparse turns the error into a usage message."""
    try:
        value = parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(f'"{text}" {error}') from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f'"{text}" must be longer than 0s')
    return value


def _fraction(text: str) -> float:
    """A fraction in [0, 1) for a flag."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a number') from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f'"{text}" must be at least 0 and less than 1')
    return value


def _backdate(text: str) -> timedelta:
    """A Pod certificate's backdate: the API server refuses a notBefore 5m or more away."""
    value = _duration(text)
    if value >= POD_BACKDATE_LIMIT:
        limit = f"{POD_BACKDATE_LIMIT.total_seconds() / 60:g}m"
        raise argparse.ArgumentTypeError(
            f'"{text}" must be less than {limit}: the API server refuses a notBefore'
            f" {limit} or more from its clock"
        )
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--namespace",
        default=DEFAULTS.namespace,
        help=f"the issuer's own namespace, home of the CA Secret (default {DEFAULTS.namespace})",
    )
    parser.add_argument(
        "--ca-secret",
        default=DEFAULTS.ca_secret,
        help="name of the CA's kubernetes.io/tls Secret, the PkiAuthority's spec.secretName"
        f" (default {DEFAULTS.ca_secret})",
    )
    parser.add_argument(
        "--authority",
        default=DEFAULTS.authority,
        help="the issuer's own PkiAuthority, whose CA is --ca-secret and which Pkis and"
        " policies naming no authority use; every other PkiAuthority is served too"
        f" (default {DEFAULTS.authority})",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        namespace=args.namespace,
        ca_secret=args.ca_secret,
        workers=args.workers,
        health_port=args.health_port,
        leader_elect=args.leader_elect,
        kubeconfig=args.kubeconfig,
        sync_timeout_seconds=args.sync_timeout,
        event_ttl=args.event_ttl,  # argparse applies ``type`` to the string defaults too
        retry=Backoff(args.retry_base.total_seconds(), args.retry_cap.total_seconds()),
        authority=args.authority,
        queue_order=args.queue_order,
        metrics_port=args.metrics_port,
        shards=args.shards,
        lease_duration_seconds=args.lease_duration.total_seconds(),
        pod_refresh_fraction=args.pod_certificate_refresh,
        pod_backdate=args.pod_certificate_backdate,
    )


def _run(args: argparse.Namespace) -> int:
    from issuer.run import run  # noqa: PLC0415 - `--help` need not import the controller

    logs.configure(getattr(logging, args.log_level.upper()))
    return run(settings_from(args))


def _bootstrap(args: argparse.Namespace) -> int:
    kube = Kube.from_environment(args.kubeconfig)
    where = f"{args.namespace}/{args.ca_secret}"
    if not args.authority_only:
        try:
            created = bootstrap_ca(kube, args.namespace, args.ca_secret, utc_now())
        except ApiError as error:
            print(f"pkiwarden issuer bootstrap-ca: cannot create CA Secret {where}: {error}")
            return 1
        print(
            f"created CA Secret {where}" if created else f"CA Secret {where} exists; left as it is"
        )
    try:
        made = bootstrap_authority(kube, args.authority, args.ca_secret)
    except ApiError as error:
        print(
            f"pkiwarden issuer bootstrap-ca: cannot create PkiAuthority {args.authority}: {error}"
        )
        return 1
    state = "created" if made else "exists; left as it is"
    print(f"PkiAuthority {args.authority} {state}")
    if args.drop_binding:
        try:
            dropped = drop_binding(kube, args.drop_binding)
        except ApiError as error:
            print(
                "pkiwarden issuer bootstrap-ca: cannot delete ClusterRoleBinding"
                f" {args.drop_binding}: {error}"
            )
            return 1
        state = "deleted" if dropped else "already gone"
        print(f"ClusterRoleBinding {args.drop_binding} {state}")
    return 0
