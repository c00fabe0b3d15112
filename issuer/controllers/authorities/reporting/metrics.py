"""Gauges for the CA: when it expires, which phase a rotation is in, what is left to do.

They sit on the issuer's own registry (passed in) and are set after each pass
of the authority controller, so a scrape shows what the PkiAuthority's status shows.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Gauge

from issuer.controllers.authorities.decisions.phases import Phase
from issuer.controllers.authorities.reporting.summary import Pass


class AuthorityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._expiry = Gauge(
            "pkiwarden_ca_expiration_timestamp_seconds",
            "When the active CA certificate expires (Unix time).",
            ["authority"],
            registry=registry,
        )
        self._phase = Gauge(
            "pkiwarden_ca_rotation_phase",
            "1 for the rotation phase the CA is in, 0 for the others.",
            ["authority", "phase"],
            registry=registry,
        )
        self._phase_start = Gauge(
            "pkiwarden_ca_rotation_phase_start_timestamp_seconds",
            "When the CA entered its current rotation phase (Unix time; 0 when not known)."
            " Kept in the CA Secret, so an issuer restart or a new leader does not reset it.",
            ["authority"],
            registry=registry,
        )
        self._pending = Gauge(
            "pkiwarden_ca_pending_reissue",
            "Pkis whose certificate is not yet signed by the active CA.",
            ["authority"],
            registry=registry,
        )
        self._blocked = Gauge(
            "pkiwarden_ca_blocked_reissue",
            "Pkis that cannot be re-issued; the previous CA stays trusted for them.",
            ["authority"],
            registry=registry,
        )

    def observe(self, authority: str, result: Pass) -> None:
        if result.active_not_after is not None:
            self._expiry.labels(authority).set(result.active_not_after.timestamp())
        for phase in Phase:
            self._phase.labels(authority, phase.value).set(int(phase is result.phase))
        start = result.phase_start.timestamp() if result.phase_start is not None else 0
        self._phase_start.labels(authority).set(start)
        self._pending.labels(authority).set(result.pending)
        self._blocked.labels(authority).set(result.blocked_total)

    def forget(self, authority: str) -> None:
        """A deleted PkiAuthority's series go with it: no alert about a CA that is gone."""
        for gauge in (self._expiry, self._phase_start, self._pending, self._blocked):
            with contextlib.suppress(KeyError):
                gauge.remove(authority)
        for phase in Phase:
            with contextlib.suppress(KeyError):
                self._phase.remove(authority, phase.value)
