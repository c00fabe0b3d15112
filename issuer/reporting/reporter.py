"""The seam between reconciling and telling people, and two simple Reporters.

Reconcile decides *what happened*; a Reporter decides *who is told*: Events on
the Pki and on consuming Pods (``event_reporter``), log lines
(``LoggingReporter``), or several at once (``FanOut``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from issuer.reporting.reasons import Reason
from shared.logs import fields

log = logging.getLogger("issuer.report")


class Reporter(Protocol):
    """Tells people about a reconcile outcome. ``pki`` is the Pki object as a dict."""

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        """A Warning: on the Pki and on every Pod consuming its Secret."""

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        """A Normal Event on the Pki.

        ``again``: an earlier run of the issuer may already have said this
        (it died before recording that it had); update that Event, don't add one.
        """


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
    """Tells several reporters: Events next to the log lines."""

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
