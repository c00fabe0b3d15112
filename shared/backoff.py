"""Exponential backoff with one set of numbers for every retry of a Pki.

The issuer's failed issuances (recorded in status, so they survive a restart)
and its work queue's retries of errors it could not even record use the same
schedule: 2 s after the first failure, doubling, capped at one hour.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``base * 2**failures`` seconds, capped: 2 s, 4 s, 8 s ... 1 h."""

    base: float = 2.0
    cap: float = 3600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures so far (0 for the first retry)."""
        return float(min(self.base * (2 ** min(max(failures, 0), 30)), self.cap))
