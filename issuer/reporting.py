"""Part 1's Reporter: outcomes as structured log lines.

Part 2 adds Events (on the Pki and on consuming Pods) and metrics behind the
same ``Reporter`` protocol; the controller does not change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from issuer.reasons import Reason, Reporter
from shared.logs import fields

log = logging.getLogger("issuer.report")


def _names(pki: dict[str, Any]) -> dict[str, Any]:
    metadata = pki.get("metadata") or {}
    return {"namespace": metadata.get("namespace"), "pki": metadata.get("name")}


class LoggingReporter:
    """Writes a Warning or Normal "event" line: the same words an Event would carry."""

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        log.warning(
            "event",
            extra=fields(type="Warning", reason=reason.value, message=message, **_names(pki)),
        )

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        log.info(
            "event",
            extra=fields(type="Normal", reason=reason.value, message=message, **_names(pki)),
        )


class FanOut:
    """Tells several reporters, so part 2 can add Events next to the log lines."""

    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self._reporters = tuple(reporters)

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        for reporter in self._reporters:
            reporter.failed(pki, reason, message)

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        for reporter in self._reporters:
            reporter.succeeded(pki, reason, message, again=again)
