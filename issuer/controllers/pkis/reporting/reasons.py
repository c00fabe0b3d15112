"""The reason codes of the issuer's Events and Ready condition: a fixed vocabulary."""

from __future__ import annotations

from enum import StrEnum

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
