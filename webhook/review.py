"""The AdmissionReview v1 wire format, and turning a request body into one.

The shapes are ``TypedDict``s: the API server's JSON stays a dict (cheap, and
what validation reads), while mypy checks every field we touch. Parsing is
strict about what the decision relies on (``uid``, ``kind``, ``operation``)
and rejects anything else with a reason, which the HTTP edge answers with 400.

JSON goes through orjson both ways: decoding a review and encoding the answer
were a tenth of a review's cost with the standard library. Whatever orjson
refuses is decoded again by the standard library, so the reasons given and
the rare documents only it accepts (a lone surrogate escape) stay as they were.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal, NotRequired, TypedDict, cast

import orjson

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class AdmissionRequest(TypedDict):
    uid: str
    kind: GroupVersionKind
    operation: str  # CREATE, UPDATE, DELETE, CONNECT
    name: NotRequired[str]
    namespace: NotRequired[str]
    object: NotRequired[Any]
    oldObject: NotRequired[Any]
    dryRun: NotRequired[bool]


class AdmissionReviewRequest(TypedDict):
    apiVersion: str
    kind: str
    request: AdmissionRequest


class StatusDetails(TypedDict):
    retryAfterSeconds: int


class Status(TypedDict):
    code: int
    reason: str
    message: str
    details: NotRequired[StatusDetails]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]


class AdmissionReviewResponse(TypedDict):
    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


class InvalidReviewError(ValueError):
    """The body is not an AdmissionReview v1 request; the message says which part is wrong."""


def parse_review(body: bytes) -> AdmissionReviewRequest:
    """Decode and check a request body; raises :class:`InvalidReviewError`."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _decode_strictly(body)
    return _checked(document)


def _decode_strictly(body: bytes) -> Any:
    """The standard library's verdict, for the reason it gives (and what it accepts)."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as error:
        raise InvalidReviewError("the body is not UTF-8 text") from error
    except RecursionError as error:
        raise InvalidReviewError("the body is nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, or an integer too long to convert
        raise InvalidReviewError(f"the body is not valid JSON: {_first_line(error)}") from error


def _checked(document: Any) -> AdmissionReviewRequest:
    if not isinstance(document, dict):
        raise InvalidReviewError("the body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise InvalidReviewError(f"expected apiVersion {API_VERSION!r} and kind {KIND!r}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise InvalidReviewError("request: missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InvalidReviewError("request.uid: missing or not a non-empty string")
    kind = request.get("kind")
    if not isinstance(kind, dict) or not all(
        isinstance(kind.get(part), str) for part in ("group", "version", "kind")
    ):
        raise InvalidReviewError("request.kind: missing or not a {group, version, kind} object")
    if not isinstance(request.get("operation"), str):
        raise InvalidReviewError("request.operation: missing or not a string")
    for field in ("name", "namespace"):
        if field in request and not isinstance(request[field], str):
            raise InvalidReviewError(f"request.{field}: not a string")
    if "dryRun" in request and not isinstance(request["dryRun"], bool | None):
        raise InvalidReviewError("request.dryRun: not a boolean")
    return cast(AdmissionReviewRequest, document)


def encode(document: object) -> bytes:
    """Compact JSON; ASCII escapes when a string is not encodable UTF-8 (a lone surrogate
    in a uid is valid JSON and must come back as it was sent)."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
