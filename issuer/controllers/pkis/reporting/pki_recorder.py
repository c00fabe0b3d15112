"""The seam between reconciling and recording what happened, and two simple PkiRecorders.

Reconcile decides *what happened*; a PkiRecorder decides *who is told*: Events on
the Pki and on consuming Pods (``pki_event_recorder``), log lines
(``PkiLogRecorder``), or several at once (``FanOut``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from issuer.controllers.pkis.reporting.reasons import Reason
from shared.logs import fields

log = logging.getLogger("issuer.report")


class PkiRecorder(Protocol):
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

    def gone(self, namespace: str, name: str) -> None:
        """The Pki was deleted: forget what was said about it."""


def _names(pki: dict[str, Any]) -> dict[str, Any]:
    metadata = pki.get("metadata") or {}
    return {"namespace": metadata.get("namespace"), "pki": metadata.get("name")}


class PkiLogRecorder:
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

    def gone(self, namespace: str, name: str) -> None:
        return


class FanOut:
    """Tells several reporters: Events next to the log lines."""

    def __init__(self, reporters: Sequence[PkiRecorder]) -> None:
        self._reporters = tuple(reporters)

    def failed(self, pki: dict[str, Any], reason: Reason, message: str) -> None:
        for reporter in self._reporters:
            reporter.failed(pki, reason, message)

    def succeeded(
        self, pki: dict[str, Any], reason: Reason, message: str, *, again: bool = False
    ) -> None:
        for reporter in self._reporters:
            reporter.succeeded(pki, reason, message, again=again)

    def gone(self, namespace: str, name: str) -> None:
        for reporter in self._reporters:
            reporter.gone(namespace, name)
