"""What ``pkiwarden ca`` prints and asks for, decided from PkiAuthority objects; no I/O.

``status`` of every authority is the overview a platform team checks first (and
a script reads by its exit status); ``status --authority NAME`` adds one
authority's trust set, conditions and blocked Pkis. Both say first, as a
headline, which authority cannot sign and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from issuer.controllers.authorities.inputs.spec import ROTATE_ANNOTATION, ROTATE_NOW_ANNOTATION
from issuer.runtime.ca_history import CAHistory, absent_ca_message, ca_history
from shared.clock import rfc3339_micro
from shared.suggest import did_you_mean
from shared.validation.common import listing, quoted

_COLUMNS = ["NAME", "READY", "PHASE", "ACTIVE CA EXPIRES", "PENDING", "AGE"]
NOT_SERVED = (
    "it has no status: no issuer has taken it up yet (is the issuer running, and does it "
    "serve this authority?)"
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


def _name(authority: Mapping[str, Any]) -> str:
    return str((authority.get("metadata") or {}).get("name", ""))


def _ready_condition(authority: Mapping[str, Any]) -> Mapping[str, Any] | None:
    status = authority.get("status") or {}
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def unavailable(authority: Mapping[str, Any]) -> str | None:
    """Why the CA cannot sign (its Ready condition is False), or None when it can."""
    condition = _ready_condition(authority)
    if condition is not None and condition.get("status") == "False":
        return str(condition.get("message") or condition.get("reason") or "not ready")
    return None


def not_ready(authority: Mapping[str, Any], missing_secret: str | None = None) -> str | None:
    """Why the authority is not Ready, or None when it is: the CA cannot sign, its CA Secret
    (``missing_secret``, ``namespace/name``) is gone, or no issuer has reported on it at
    all (a new authority nothing serves looks empty, not fine)."""
    problem = unavailable(authority)
    if problem is not None:
        return problem
    if missing_secret is not None:
        history = ca_history(authority)
        if history is not CAHistory.ESTABLISHED:  # a fresh install: nothing to restore
            namespace, _, secret = missing_secret.rpartition("/")
            return absent_ca_message(history, _name(authority), namespace, secret)
        return (
            f'its CA Secret "{missing_secret}" does not exist, so nothing can be signed; '
            "restore it from a backup, or create it (type kubernetes.io/tls)"
        )
    condition = _ready_condition(authority)
    if condition is None:
        return NOT_SERVED
    if condition.get("status") != "True":
        return str(condition.get("message") or condition.get("reason") or "not ready yet")
    return None


def _headline(authority: Mapping[str, Any], missing_secret: str | None) -> list[str]:
    problem = not_ready(authority, missing_secret)
    if problem is None:
        return []
    signs = unavailable(authority) is None and missing_secret is None
    what = "is not Ready" if signs else "cannot sign"
    return [f"NOT READY: PkiAuthority {_name(authority)} {what}: {problem}"]


def _row(authority: Mapping[str, Any], now: datetime) -> list[str]:
    status = authority.get("status") or {}
    condition = _ready_condition(authority) or {}
    return [
        _name(authority),
        str(condition.get("status", "")),
        str(status.get("phase", "")),
        str(status.get("activeNotAfter", "")),
        str(status.get("pendingPkis", "")),
        _age(str((authority.get("metadata") or {}).get("creationTimestamp", "")), now),
    ]


def render_overview(
    authorities: Sequence[Mapping[str, Any]],
    now: datetime,
    missing_secrets: Mapping[str, str] | None = None,
) -> str:
    """The text of ``pkiwarden ca status``: a headline per authority that is not Ready,
    then one row per authority, in name order. ``missing_secrets``: authority name ->
    ``namespace/name`` of its CA Secret, for those found missing."""
    missing = missing_secrets or {}
    if not authorities:
        return (
            "NOT READY: no PkiAuthority exists, so no Pki can be issued; create one "
            "(kind PkiAuthority, spec.secretName, and spec.generate for a CA pkiwarden makes)"
        )
    ordered = sorted(authorities, key=_name)
    headlines = [
        line
        for authority in ordered
        for line in _headline(authority, missing.get(_name(authority)))
    ]
    rows = _table([_COLUMNS, *(_row(authority, now) for authority in ordered)])
    return "\n".join([*headlines, *([""] if headlines else []), *rows])


def render_status(
    authority: Mapping[str, Any], now: datetime, missing_secret: str | None = None
) -> str:
    """The text of ``pkiwarden ca status --authority NAME``: the headline when it is not
    Ready, the kubectl columns, the trust set, the conditions, what blocks."""
    name = _name(authority)
    status = authority.get("status") or {}
    headline = _headline(authority, missing_secret)
    lines = [*headline, *([""] if headline else []), *_table([_COLUMNS, _row(authority, now)])]
    trusted = status.get("trusted") or []
    lines += ["", f"Trust set (ConfigMap pkiwarden-ca.crt, keys {name}.crt and ca.crt):"]
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
    problem = unavailable(authority)
    for condition in status.get("conditions") or []:
        if problem and condition.get("type") == "Ready":
            continue  # said first, as the headline
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


def no_such_authority(name: str, existing: Iterable[str]) -> str:
    """A name that is no PkiAuthority: the ones there are, and the likely one."""
    names = sorted(existing)
    return f"there is no PkiAuthority {quoted(name)} (there are: {listing(names)})" + did_you_mean(
        name, names
    )


def rotation_patch(now: datetime, emergency: bool) -> dict[str, Any]:
    request = rfc3339_micro(now)
    annotations = {ROTATE_ANNOTATION: request, ROTATE_NOW_ANNOTATION: "true" if emergency else None}
    return {"metadata": {"annotations": annotations}}


def rotation_refusal(authority: Mapping[str, Any]) -> str | None:
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
