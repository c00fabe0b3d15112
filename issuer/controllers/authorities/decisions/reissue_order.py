"""The order in which a new CA's re-issues go: the ones that matter most first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Pending:
    """A Pki whose certificate is not signed by the active CA."""

    key: str  # namespace/name
    not_after: datetime
    blocked: bool  # its last issuance failed


def reissue_order(pending: Iterable[Pending]) -> list[str]:
    """Soonest-expiring first (they matter most), blocked ones last, then by name."""
    return [p.key for p in sorted(pending, key=lambda p: (p.blocked, p.not_after, p.key))]
