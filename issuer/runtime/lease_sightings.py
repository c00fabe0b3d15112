"""Whether another process renews a Lease, judged by our own clock. Pure.

As the elector judges expiry (``issuer.runtime.leader``): by our monotonic
clock since we saw the record change, never by comparing the holder's
renewTime with our wall clock (clock skew between machines). A Lease read
once and not yet seen to change is not known to be renewed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sighting:
    """What we know of when a Lease was last written, in our monotonic time."""

    version: str  # its resourceVersion at our latest read
    read_at: float  # our latest read
    changed_after: float | None  # it was written after this read of ours; None: not seen to


def sighted(previous: Sighting | None, version: str, now: float) -> Sighting:
    """The sighting after reading ``version`` at ``now``."""
    if previous is None:
        return Sighting(version, now, None)
    if version != previous.version:
        return Sighting(version, now, previous.read_at)
    return Sighting(version, now, previous.changed_after)


def renewed(sighting: Sighting | None, now: float, duration: float) -> bool:
    """Written within the last ``duration`` seconds, as far as our reads can tell."""
    return (
        sighting is not None
        and sighting.changed_after is not None
        and now - sighting.changed_after <= duration
    )
