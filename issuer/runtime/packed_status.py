"""A cached Pki's status, packed, with the two fields read every second kept at hand.

The issuer caches every Pki, and a Pki's status is most of its memory: two
conditions, a message, a serial and timestamps, 1.1 of the 2.0 KB a Ready
Pki took as dicts. The authority controller's pass reads every cached Pki
once a second, but of its status only ``secretName`` and
``failedIssuanceAttempts``; a reconcile reads all of it, once. So the cache
keeps the status as a :class:`PackedStatus`: a read-only mapping that holds
those two fields and the rest as deflated JSON (``shared.kube.packing``),
decoded when another field is read (10 to 20 µs). Whoever reads many fields
takes :func:`whole_status` once; the Pki controller's reconcile reads Pkis
through :func:`with_whole_status`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shared.kube.packing import DeflatedJSON

JSON = dict[str, Any]

_TIME = "2026-01-01T00:00:00Z"
_SERIAL = "0000000000000000000000000000000000000000"


def _condition(kind: str, status: str, reason: str, message: str) -> JSON:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _TIME,
        "observedGeneration": 1,
    }


# Typical statuses, as the Pki controller writes them: what a packed one is deflated against.
_STATUSES = DeflatedJSON(
    {
        "observedGeneration": 1,
        "conditions": [
            _condition("Ready", "False", "NotAllowed", "is not allowed in namespace"),
            _condition(
                "Issuing",
                "True",
                "New",
                "a new certificate is needed but issuance failed (NotAllowed);"
                f" next attempt at {_TIME}",
            ),
        ],
        "failedIssuanceAttempts": 1,
        "lastFailureTime": _TIME,
        "nextRetryTime": _TIME,
    },
    {
        "observedGeneration": 1,
        "conditions": [
            _condition(
                "Ready",
                "True",
                "Issued",
                f"certificate {_SERIAL} issued into Secret web-tls, valid until {_TIME}",
            ),
            _condition(
                "Issuing", "False", "UpToDate", "the Secret holds a certificate matching the spec"
            ),
        ],
        "secretName": "web-tls",
        "serialNumber": _SERIAL,
        "notBefore": _TIME,
        "notAfter": _TIME,
        "renewalTime": _TIME,
        "failedIssuanceAttempts": 0,
    },
)
_AT_HAND = ("secretName", "failedIssuanceAttempts")
_ABSENT = object()


class PackedStatus(Mapping[str, Any]):
    """A status as the Pki cache keeps it; equal to the status it was made from."""

    __slots__ = ("_length", "_packed", "failed_attempts", "secret_name")

    def __init__(self, packed: bytes, status: Mapping[str, Any]) -> None:
        self._packed = packed
        self._length = len(status)
        self.secret_name = status.get("secretName", _ABSENT)
        self.failed_attempts = status.get("failedIssuanceAttempts", _ABSENT)

    def whole(self) -> JSON:
        """The status decoded, a fresh dict."""
        return _STATUSES.unpack(self._packed)

    def __getitem__(self, key: str) -> Any:
        if key == "secretName":
            value = self.secret_name
        elif key == "failedIssuanceAttempts":
            value = self.failed_attempts
        else:
            return self.whole()[key]
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.whole())

    def __len__(self) -> int:  # ``status or {}`` asks this: no decoding
        return self._length

    def __repr__(self) -> str:
        return f"PackedStatus({self.whole()!r})"


def pack_status(pki: JSON) -> JSON:
    """``pki`` with its status packed; as it is when the status cannot be (not a dict,
    or not JSON text exactly)."""
    status = pki.get("status")
    if not isinstance(status, dict):
        return pki
    packed = _STATUSES.pack(status)
    if packed is None:
        return pki
    return {**pki, "status": PackedStatus(packed, status)}


def whole_status(status: Any) -> Any:
    """A status as a plain dict if it is packed, else as it is."""
    return status.whole() if isinstance(status, PackedStatus) else status


def with_whole_status(pki: JSON | None) -> JSON | None:
    """``pki`` with a plain status, for code that reads many of its fields."""
    if pki is None or not isinstance(pki.get("status"), PackedStatus):
        return pki
    return {**pki, "status": whole_status(pki["status"])}
