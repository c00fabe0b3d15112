"""Whether another process renews a Lease, judged by our own clock. Pure.

As the elector judges expiry (``issuer.runtime.leader``): by our monotonic
clock since we saw the record change, never by comparing the holder's
renewTime with our wall clock (clock skew between machines). A Lease read
once and not yet seen to change is not known to be renewed. How long one has
gone unwritten (a dead replica's, to delete) counts from our first read of
its current version: never more than the truth.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sighting:
    """What we know of when a Lease was last written, in our monotonic time."""

    version: str  # its resourceVersion at our latest read
    read_at: float  # our latest read
    changed_after: float | None  # it was written after this read of ours; None: not seen to
    first_read: float  # our first read of this version: it was last written before then


def sighted(previous: Sighting | None, version: str, now: float) -> Sighting:
    """The sighting after reading ``version`` at ``now``."""
    if previous is None:
        return Sighting(version, now, None, now)
    if version != previous.version:
        return Sighting(version, now, previous.read_at, now)
    return Sighting(version, now, previous.changed_after, previous.first_read)


def renewed(sighting: Sighting | None, now: float, duration: float) -> bool:
    """Written within the last ``duration`` seconds, as far as our reads can tell."""
    return (
        sighting is not None
        and sighting.changed_after is not None
        and now - sighting.changed_after <= duration
    )


def unwritten_for(sighting: Sighting, now: float) -> float:
    """At least how long the Lease has gone unwritten, as far as our reads can tell."""
    return now - sighting.first_read
