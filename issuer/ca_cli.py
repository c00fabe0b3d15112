"""``pkiwarden ca status`` and ``pkiwarden ca rotate [--now]``.

``rotate`` only asks: it stamps the PkiAuthority with a request (an
annotation holding the time), and the issuer acts on each request once and
records it in status. ``status`` prints what ``kubectl get pkica`` shows, then
the trust set; when the CA cannot sign it says so first, with what to do, and
exits 1.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from issuer.controllers.authorities.inputs.spec import ROTATE_ANNOTATION, ROTATE_NOW_ANNOTATION
from shared.clock import rfc3339_micro, utc_now
from shared.kube.client import PKI_AUTHORITIES, ApiError, Kube
from shared.schema import DEFAULT_AUTHORITY


def register(subparsers: Any) -> None:
    ca = subparsers.add_parser(
        "ca", help="show or rotate the CA (the PkiAuthority)", description=__doc__
    )
    commands = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status", help="phase, active CA, pending Pkis and the trust set of a PkiAuthority"
    )
    _common(status)
    status.set_defaults(handler=_status)
    rotate = commands.add_parser(
        "rotate",
        help="start a CA rotation",
        description="Ask the issuer to rotate the CA: the next CA (spec.nextSecretName, or a"
        " new one for spec.generate) is trusted everywhere first, then signs, then the old one"
        " leaves the trust set.",
    )
    _common(rotate)
    rotate.add_argument(
        "--now",
        action="store_true",
        help="emergency (a compromised key): skip both waits and drop the old CA from trust at"
        " once; certificates it signed fail verification until re-issued",
    )
    rotate.set_defaults(handler=_rotate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--authority",
        default=DEFAULT_AUTHORITY,
        help=f"name of the PkiAuthority (default {DEFAULT_AUTHORITY})",
    )


def _age(created: str, now: datetime) -> str:
    try:
        seconds = int(
            (now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
        )
    except ValueError:
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def unavailable(authority: dict[str, Any]) -> str | None:
    """Why the CA cannot sign (its Ready condition is False), or None when it can."""
    status = authority.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "not ready")
    return None


def render_status(authority: dict[str, Any], now: datetime) -> str:
    """The text of ``pkiwarden ca status``: the verdict when the CA cannot sign, the kubectl
    columns, the trust set, what blocks."""
    metadata = authority.get("metadata") or {}
    status = authority.get("status") or {}
    problem = unavailable(authority)
    verdict = (
        [f"NOT READY: PkiAuthority {metadata.get('name')} cannot sign: {problem}", ""]
        if problem
        else []
    )
    rows = [
        ["NAME", "PHASE", "ACTIVE CA EXPIRES", "PENDING", "AGE"],
        [
            str(metadata.get("name")),
            str(status.get("phase", "")),
            str(status.get("activeNotAfter", "")),
            str(status.get("pendingPkis", "")),
            _age(str(metadata.get("creationTimestamp", "")), now),
        ],
    ]
    lines = verdict + _table(rows)
    trusted = status.get("trusted") or []
    lines += ["", "Trust set (ConfigMap pkiwarden-ca.crt, key ca.crt):"]
    table = [["ROLE", "SERIAL", "NOT AFTER", "SUBJECT"]]
    table += [
        [
            str(t.get("role")),
            str(t.get("serialNumber")),
            str(t.get("notAfter")),
            str(t.get("subject")),
        ]
        for t in trusted
    ]
    lines += ["  " + line for line in _table(table)]
    for condition in status.get("conditions") or []:
        if problem and condition.get("type") == "Ready":
            continue  # said first, as the verdict
        lines.append(
            f"{condition.get('type')}: {condition.get('status')} ({condition.get('reason')})"
            f" {condition.get('message', '')}"
        )
    blocked = status.get("blockedPkis") or []
    if blocked:
        lines.append("Blocked (the previous CA stays trusted for them): " + ", ".join(blocked))
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _status(args: argparse.Namespace) -> int:
    kube = Kube.from_environment(args.kubeconfig)
    try:
        authority = kube.get(PKI_AUTHORITIES.path(name=args.authority))
    except ApiError as error:
        print(f"pkiwarden ca status: cannot read PkiAuthority {args.authority}: {error}")
        return 2
    print(render_status(authority, utc_now()))
    # Scripts and CI read the exit status: 1 when the CA cannot sign, as `why` does.
    return 1 if unavailable(authority) else 0


def rotation_patch(now: datetime, emergency: bool) -> dict[str, Any]:
    request = rfc3339_micro(now)
    annotations = {ROTATE_ANNOTATION: request, ROTATE_NOW_ANNOTATION: "true" if emergency else None}
    return {"metadata": {"annotations": annotations}}


def rotation_refusal(authority: dict[str, Any]) -> str | None:
    """Why a rotation cannot be asked for now, or None.

    With no CA to rotate (its Secret missing or unreadable) a request would
    wait, and act on whatever CA appears later: an emergency would replace a
    CA just restored from a backup. So it is refused, with the way out.
    """
    status = authority.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "Ready"
            and condition.get("status") == "False"
            and condition.get("reason") == "CAUnavailable"
        ):
            return (
                f"{condition.get('message') or 'the CA is unavailable'}; there is no CA to"
                " rotate, so nothing was requested: restore the CA Secret (or create a new CA"
                " there), then run this again if it still needs rotating"
            )
    return None


def _rotate(args: argparse.Namespace) -> int:
    kube = Kube.from_environment(args.kubeconfig)
    try:
        refusal = rotation_refusal(kube.get(PKI_AUTHORITIES.path(name=args.authority)))
    except ApiError as error:
        print(f"pkiwarden ca rotate: cannot read PkiAuthority {args.authority}: {error}")
        return 1
    if refusal is not None:
        print(f"pkiwarden ca rotate: PkiAuthority {args.authority}: {refusal}", file=sys.stderr)
        return 1
    patch = rotation_patch(utc_now(), args.now)
    try:
        kube.patch(PKI_AUTHORITIES.path(name=args.authority), patch, "merge")
    except ApiError as error:
        print(f"pkiwarden ca rotate: cannot ask PkiAuthority {args.authority} to rotate: {error}")
        return 1
    request = patch["metadata"]["annotations"][ROTATE_ANNOTATION]
    kind = "emergency rotation" if args.now else "rotation"
    print(f"{kind} requested ({request}); watch it with `kubectl get pkica {args.authority} -w`")
    return 0
