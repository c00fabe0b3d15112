"""A CA rotation's progress over every shard: each shard's report, and their sum. Pure.

With ``--shards`` above 1, each replica caches only the shards it leads,
so no one replica can count a rotation's progress. Each reports, per shard
it leads and per authority, the CA its shard's leaves should be signed by
(the signer's key id), the trust set its Secrets' ``ca.crt`` should hold (a
digest), how many valid leaves are still signed by another CA, how many
Secrets did not yet hold the trust set, and the first blocked Pkis. Shard
0's holder sums the reports of every shard (:func:`tally`) and moves the
rotation on only when every shard has reported on the current signer and
trust set from a Lease that is held and renewed: a shard it knows nothing
about may still hold leaves of the CA about to leave the trust set, so it
means *wait*, and the status says which shard and why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BLOCKED_REPORTED = 20  # per shard and authority: the status shows no more than 20


@dataclass(frozen=True)
class Progress:
    """One shard's standing for one authority."""

    ca: str  # the signer's key id (hex) the shard counted against
    trust: str  # digest of the trust set the shard's Secrets were brought to
    pending: int = 0  # valid leaves signed by another CA
    stale: int = 0  # Secrets whose ca.crt was not the trust set when counted
    blocked: int = 0  # of the pending, those whose re-issue keeps failing
    blocked_pkis: tuple[str, ...] = ()  # the first of them, namespace/name


@dataclass(frozen=True)
class Tally:
    """Every shard's reports for one authority, summed."""

    pending: int
    blocked: int
    blocked_pkis: tuple[str, ...]
    trust_current: bool  # every shard's Secrets hold the trust set
    unknown: tuple[str, ...] = field(default=())  # why a shard's count is not known, per shard


@dataclass(frozen=True)
class LeaseView:
    """What :func:`tally` reads of a shard's Lease."""

    shard: int
    holder: str
    renewed: bool
    report: str | None


@dataclass(frozen=True)
class Counted:
    """One surveyed Pki: where it is, and what its leaf and Secret say."""

    namespace: str
    pending: bool = False
    stale: bool = False
    blocked_pki: str = ""  # namespace/name when pending and its re-issue keeps failing


def trust_digest(bundle_b64: str) -> str:
    """Short and stable: equal digests mean the same ``ca.crt``."""
    return hashlib.sha256(bundle_b64.encode()).hexdigest()[:16]


def shard_reports(
    counted: Iterable[Counted],
    shards: Iterable[int],
    shard_of: Callable[[str], int],
    *,
    ca: str,
    trust: str,
) -> dict[int, Progress]:
    """One authority's progress in each of ``shards`` (every one, even with no Pkis).

    A Pki of a shard not among ``shards`` (one not yet open) is left out.
    """
    wanted = set(shards)
    pending: Counter[int] = Counter()
    stale: Counter[int] = Counter()
    blocked: dict[int, list[str]] = {shard: [] for shard in wanted}
    for entry in counted:
        shard = shard_of(entry.namespace)
        if shard not in wanted:
            continue
        pending[shard] += entry.pending
        stale[shard] += entry.stale
        if entry.blocked_pki:
            blocked[shard].append(entry.blocked_pki)
    return {
        shard: Progress(
            ca,
            trust,
            pending=pending[shard],
            stale=stale[shard],
            blocked=len(blocked[shard]),
            blocked_pkis=tuple(sorted(blocked[shard])[:BLOCKED_REPORTED]),
        )
        for shard in sorted(wanted)
    }


def encode(reports: Mapping[str, Progress]) -> str:
    """A shard's reports by authority, as its Lease annotation holds them."""
    return json.dumps(
        {
            authority: {
                "ca": p.ca,
                "trust": p.trust,
                "pending": p.pending,
                "stale": p.stale,
                "blocked": p.blocked,
                "blockedPkis": list(p.blocked_pkis),
            }
            for authority, p in sorted(reports.items())
        },
        separators=(",", ":"),
    )


def decode(text: str | None) -> dict[str, Progress] | None:
    """The reports in an annotation; None if there is none or it is not one of ours."""
    if not text:
        return None
    try:
        raw = json.loads(text)
        return {str(name): _progress(entry) for name, entry in raw.items()}
    except (ValueError, TypeError, AttributeError, KeyError):
        return None


def _progress(entry: Mapping[str, Any]) -> Progress:
    return Progress(
        ca=str(entry["ca"]),
        trust=str(entry["trust"]),
        pending=int(entry.get("pending", 0)),
        stale=int(entry.get("stale", 0)),
        blocked=int(entry.get("blocked", 0)),
        blocked_pkis=tuple(str(key) for key in entry.get("blockedPkis") or ()),
    )


def tally(authority: str, ca: str, trust: str, leases: Sequence[LeaseView]) -> Tally:
    """Sum ``authority``'s reports over every shard; a shard not known says why in ``unknown``.

    A shard is known when its Lease is held and renewed and its report counts
    against ``ca`` and ``trust`` (a report about the previous signer or trust
    set comes from a replica that has not seen the change yet).
    """
    pending = blocked = 0
    blocked_pkis: list[str] = []
    trust_current = True
    unknown: list[str] = []
    count = len(leases)
    for lease in leases:
        where = f"shard {lease.shard} of {count}"
        reports = decode(lease.report)
        progress = None if reports is None else reports.get(authority)
        if not lease.holder:
            unknown.append(f"{where}: no issuer replica holds its Lease")
        elif not lease.renewed:
            unknown.append(f"{where}: its Lease is not being renewed (holder {lease.holder})")
        elif progress is None:
            unknown.append(f"{where}: its replica has not reported on this authority yet")
        elif progress.ca != ca:
            unknown.append(f"{where}: its replica has not counted against the new signing CA yet")
        else:
            pending += progress.pending
            blocked += progress.blocked
            blocked_pkis.extend(progress.blocked_pkis)
            trust_current = trust_current and progress.trust == trust and progress.stale == 0
            continue
        trust_current = False
    return Tally(pending, blocked, tuple(sorted(blocked_pkis)), trust_current, tuple(unknown))
