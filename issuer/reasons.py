"""The fixed vocabulary of outcomes, and the seam between reconciling and reporting.

Reconcile decides *what happened*; a Reporter decides *who is told* (status,
Events on the Pki and on consuming Pods, metrics). Keeping the seam here lets
reporting grow without touching the reconcile logic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from shared.findings import Category


class Reason(StrEnum):
    """Event and condition reasons, short UpperCamelCase as Kubernetes expects."""

    NOT_ALLOWED = "NotAllowed"
    INVALID_SPEC = "InvalidSpec"
    SECRET_CONFLICT = "SecretConflict"
    CA_UNAVAILABLE = "CAUnavailable"
    ISSUANCE_FAILED = "IssuanceFailed"
    ISSUED = "Issued"
    RENEWED = "Renewed"

    @property
    def is_failure(self) -> bool:
        return self not in (Reason.ISSUED, Reason.RENEWED)


def reason_for(category: Category) -> Reason:
    """The Event reason for a validation finding that stops issuance."""
    return {
        Category.NOT_ALLOWED: Reason.NOT_ALLOWED,
        Category.SECRET_CONFLICT: Reason.SECRET_CONFLICT,
    }.get(category, Reason.INVALID_SPEC)


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
