"""``pkiwarden ca status|rotate [--authority NAME]``, and ``rotate --now``.

``rotate`` only asks: it stamps the PkiAuthority with a request (an
annotation holding the time), and the issuer acts on each request once and
records it in status. ``status`` lists every authority as ``kubectl get pkica``
does, or shows one with its trust set; an authority that is not Ready (its CA
cannot sign, its CA Secret is missing, nothing serves it) is said first, with
what to do, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from issuer.controllers.authorities.inputs.spec import ROTATE_ANNOTATION
from issuer.runtime.settings import Settings
from pkiwarden.ca.render import (
    no_such_authority,
    not_ready,
    render_overview,
    render_status,
    rotation_patch,
    rotation_refusal,
)
from shared.clock import utc_now
from shared.kube.client import (
    JSON,
    METADATA_ONLY_OBJECT,
    PKI_AUTHORITIES,
    SECRETS,
    ApiError,
    Kube,
)
from shared.schema import DEFAULT_AUTHORITY

EXIT_READY = 0
EXIT_NOT_READY = 1
EXIT_UNREADABLE = 2
ISSUER_NAMESPACE = Settings().namespace


def register(subparsers: Any) -> None:
    ca = subparsers.add_parser(
        "ca", help="show or rotate the CAs (the PkiAuthorities)", description=__doc__
    )
    commands = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="every PkiAuthority's readiness and phase, or one's trust set",
        description="Without --authority: one row per PkiAuthority. With it: that one's phase,"
        " active CA, pending Pkis, trust set and what blocks. Exit 0: all Ready; 1: one is not"
        " (said first); 2: cannot read.",
    )
    _kubeconfig(status)
    status.add_argument(
        "--authority", metavar="NAME", help="show this PkiAuthority only, with its trust set"
    )
    status.add_argument(
        "--namespace",
        metavar="NS",
        help="also look for each CA Secret in NS, the issuer's namespace (usually"
        f" {ISSUER_NAMESPACE}), as metadata only: a missing one is NOT READY even while no"
        " issuer runs to report it",
    )
    status.set_defaults(handler=_status)
    rotate = commands.add_parser(
        "rotate",
        help="start a CA rotation",
        description="Ask the issuer to rotate the CA: the next CA (spec.nextSecretName, or a"
        " new one for spec.generate) is trusted everywhere first, then signs, then the old one"
        " leaves the trust set.",
    )
    _kubeconfig(rotate)
    rotate.add_argument(
        "--authority",
        metavar="NAME",
        default=DEFAULT_AUTHORITY,
        help=f"the PkiAuthority to rotate (default {DEFAULT_AUTHORITY})",
    )
    rotate.add_argument(
        "--now",
        action="store_true",
        help="emergency (a compromised key): skip both waits and drop the old CA from trust at"
        " once; certificates it signed fail verification until re-issued",
    )
    rotate.set_defaults(handler=_rotate)


def _kubeconfig(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")


def _authority(kube: Kube, name: str, command: str) -> JSON | str:
    """The PkiAuthority ``name``, or what to print instead (it does not exist, or cannot
    be read)."""
    try:
        return kube.get(PKI_AUTHORITIES.path(name=name))
    except ApiError as error:
        if not error.not_found:
            return f"pkiwarden ca {command}: cannot read PkiAuthority {name}: {error}"
    try:
        listed = kube.get(PKI_AUTHORITIES.path())
    except ApiError:
        return f"pkiwarden ca {command}: there is no PkiAuthority {name!r}"
    names = [str((item.get("metadata") or {}).get("name", "")) for item in listed["items"]]
    return f"pkiwarden ca {command}: {no_such_authority(name, names)}"


def missing_ca_secrets(
    kube: Kube, authorities: list[JSON], namespace: str
) -> tuple[dict[str, str], str | None]:
    """Authority name -> ``namespace/name`` of each CA Secret that does not exist, and a
    note when they could not be looked for.

    Read as metadata only: the answer says whether the Secret is there, never what it
    holds, so no key leaves the API server. A status can be stale (no issuer running);
    a missing Secret is a fact now.
    """
    missing: dict[str, str] = {}
    for authority in authorities:
        secret = str((authority.get("spec") or {}).get("secretName") or "")
        if not secret:
            continue
        try:
            kube.get(SECRETS.path(namespace, secret), accept=METADATA_ONLY_OBJECT)
        except ApiError as error:
            if error.not_found:
                missing[str((authority.get("metadata") or {}).get("name"))] = (
                    f"{namespace}/{secret}"
                )
            elif error.status == 403:
                return missing, (
                    f"note: CA Secrets not looked for: it needs get secrets in namespace"
                    f" {namespace}; readiness is the issuer's last report"
                )
            else:
                raise
    return missing, None


def _status(args: argparse.Namespace) -> int:
    kube = Kube.from_environment(args.kubeconfig)
    if args.authority is not None:
        found = _authority(kube, args.authority, "status")
        if isinstance(found, str):
            print(found, file=sys.stderr)
            return EXIT_UNREADABLE
        authorities = [found]
    else:
        try:
            authorities = kube.get(PKI_AUTHORITIES.path())["items"]
        except ApiError as error:
            print(f"pkiwarden ca status: cannot list PkiAuthorities: {error}", file=sys.stderr)
            return EXIT_UNREADABLE
    missing: dict[str, str] = {}
    note = None
    if args.namespace:
        try:
            missing, note = missing_ca_secrets(kube, authorities, args.namespace)
        except ApiError as error:
            note = f"note: CA Secrets not looked for: {error}"
    if args.authority is not None:
        print(render_status(authorities[0], utc_now(), missing.get(args.authority)))
    else:
        print(render_overview(authorities, utc_now(), missing))
    if note:
        print(note, file=sys.stderr)
    # Scripts and CI read the exit status: 1 when one cannot sign, as `why` does.
    names = [str((a.get("metadata") or {}).get("name")) for a in authorities]
    if not authorities or any(
        not_ready(authority, missing.get(name))
        for authority, name in zip(authorities, names, strict=True)
    ):
        return EXIT_NOT_READY
    return EXIT_READY


def _rotate(args: argparse.Namespace) -> int:
    kube = Kube.from_environment(args.kubeconfig)
    found = _authority(kube, args.authority, "rotate")
    if isinstance(found, str):
        print(found, file=sys.stderr)
        return 1
    refusal = rotation_refusal(found)
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
