"""The HTTP edge: body in, :func:`webhook.decision.decide` out, with logs and metrics.

It is thin on purpose. What it adds to the decision is what only the edge can
do: read at most ``max_body_bytes`` (counting bytes as they arrive; a
Content-Length header proves nothing), answer a body that is not a review
with 400 and a JSON reason, turn an unexpected failure of our own into a
denial the API server can show (never a 500 or a traceback), and refuse at
once, with a reason and a retry hint, a review that would wait too long.

``POST /validate`` is answered by a plain ASGI callable in front of the
FastAPI app: the review path needs none of what a route costs per request
(middleware layers, routing, dependency solving, a Request and a Response
object), and profiling put that at about a tenth of a review. The probes and
``/metrics`` stay ordinary FastAPI routes behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.logs import FIELDS_ATTRIBUTE
from shared.metrics_access import Access
from webhook.context import ContextSource
from webhook.decision import (
    Kind,
    Operation,
    carries_pods,
    decide,
    namespace_of,
    respond,
    validated_kind,
)
from webhook.metrics import CONTENT_TYPE, WebhookMetrics
from webhook.protocol import OPEN_CONNECTIONS, QUEUED_AHEAD
from webhook.registration import VALIDATE_PATH
from webhook.review import (
    API_VERSION,
    KIND,
    AdmissionRequest,
    AdmissionReviewRequest,
    AdmissionReviewResponse,
    InvalidReviewError,
    encode,
    parse_review,
)
from webhook.settings import MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_QUEUED_REVIEWS

log = logging.getLogger("pkiwarden.webhook")

# How long an overloaded webhook asks to be left alone; client-go clients
# (kubectl, controllers) wait this long and send the request again.
RETRY_AFTER_SECONDS = 1
_JSON_HEADERS = [(b"content-type", b"application/json")]


class BodyTooLargeError(Exception):
    """Raised while reading, as soon as the limit is passed: the rest is never buffered."""


class ClientGoneError(Exception):
    """The client disconnected before its body was read; there is no one to answer."""


def create_app(
    source: ContextSource,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_queued_reviews: int = MAX_QUEUED_REVIEWS,
    max_connections: int = MAX_CONNECTIONS,
    metrics: WebhookMetrics | None = None,
    waiting_workers: Callable[[], Sequence[str]] = tuple,
    metrics_access: Callable[[str | None], Access] | None = None,
) -> AdmissionEndpoint:
    """The webhook's ASGI app: ``POST /validate``, ``/healthz``, ``/readyz``, ``/metrics``.

    ``metrics_access`` checks a scrape's Authorization header (TokenReview and
    SubjectAccessReview); None leaves ``/metrics`` open (local development).
    The probes are never checked: the kubelet sends no token.

    ``waiting_workers`` names the sibling worker processes (sharing this
    port) whose caches have not synced yet: a probe reaches one worker at
    random, so each is ready only when all are.
    """
    app = FastAPI(
        title="pkiwarden admission webhook", docs_url=None, redoc_url=None, openapi_url=None
    )
    meter = metrics or WebhookMetrics(source.cache_status)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        status = source.cache_status()
        waiting = sorted(name for name, synced in status.items() if not synced)
        waiting += sorted(waiting_workers())
        if waiting:
            return _json(503, {"status": "not ready", "waitingFor": waiting})
        return _json(200, {"status": "ready"})

    @app.get("/metrics")
    def metrics_endpoint(request: Request) -> Response:
        if metrics_access is not None:
            access = metrics_access(request.headers.get("authorization"))
            if not access.allowed:
                return Response(access.message + "\n", status_code=access.status)
        return Response(content=meter.exposition(), media_type=CONTENT_TYPE)

    reviewer = Reviewer(source, meter, max_queued_reviews, max_connections)
    return AdmissionEndpoint(app, reviewer=reviewer, max_body_bytes=max_body_bytes)


class Reviewer:
    """One review: body bytes in, HTTP status and JSON body out, metered and logged."""

    def __init__(
        self,
        source: ContextSource,
        meter: WebhookMetrics,
        max_queued: int,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.source = source
        self.meter = meter
        self.max_queued = max_queued
        self.max_connections = max_connections
        self._requests: dict[tuple[str, str, bool], Any] = {}

    def review(
        self, body: bytes, queued_ahead: int, started: float, connections: int = 0
    ) -> tuple[int, bytes]:
        meter = self.meter
        try:
            review = parse_review(body)
        except InvalidReviewError as error:
            meter.invalid.inc()
            log.info("invalid admission request: %s", error)
            return 400, encode({"error": "InvalidAdmissionReview", "message": str(error)})
        load = overload(queued_ahead, connections, self.max_queued, self.max_connections)
        if load:
            meter.overloaded.inc()
            return 200, encode(overloaded(review["request"]["uid"], load))
        request = review["request"]
        kind = validated_kind(request)
        answer = self._answer(review, kind)
        self._record(request, kind, answer, time.perf_counter() - started)
        return 200, encode(answer)

    def _answer(self, review: AdmissionReviewRequest, kind: Kind | None) -> AdmissionReviewResponse:
        """The decision, or an explained denial if computing it failed."""
        request = review["request"]
        try:
            if kind is Kind.PKI_POLICY:
                return decide(review, None, self.source.policy_context())
            judged_in_namespace = kind is Kind.PKI or carries_pods(kind)
            context = (
                self.source.context_for(namespace_of(request)) if judged_in_namespace else None
            )
            return decide(review, context)
        except Exception:
            self.meter.internal_errors.inc()
            log.exception("validating request %s failed", request["uid"])
            return respond(
                request["uid"],
                allowed=False,
                code=500,
                reason="InternalError",
                message=(
                    "the pkiwarden webhook could not validate this object because of an internal"
                    f" error; its log has the details under request uid {request['uid']}"
                ),
            )

    def _record(
        self,
        request: AdmissionRequest,
        kind: Kind | None,
        answer: AdmissionReviewResponse,
        elapsed: float,
    ) -> None:
        response = answer["response"]
        kind_label = kind.value if kind is not None else "other"
        operation = request["operation"]
        operation_label = operation if operation in _OPERATION_LABELS else "other"
        allowed = response["allowed"]
        warned = len(response.get("warnings", ()))
        self._counter(kind_label, operation_label, allowed).inc()
        self.meter.duration.observe(elapsed)
        if warned:
            self.meter.warnings.inc(warned)
        # A denial or a warning is news for whoever runs the cluster; a plain
        # allow is in the API server's audit log already, and one line per
        # allowed review was the largest cost after the network at high rates.
        level = logging.INFO if warned or not allowed else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "admission decision",
            extra={
                FIELDS_ATTRIBUTE: {
                    "uid": request["uid"],
                    "kind": request["kind"]["kind"][:64],
                    "operation": operation[:16],
                    "namespace": request.get("namespace", "")[:253],
                    "name": request.get("name", "")[:253],
                    "allowed": allowed,
                    "dry_run": bool(request.get("dryRun")),
                    "warnings": warned,
                    "duration_ms": round(elapsed * 1000, 3),
                }
            },
        )

    def _counter(self, kind: str, operation: str, allowed: bool) -> Any:
        """The labelled child, looked up once per label set (the set is small and fixed)."""
        key = (kind, operation, allowed)
        child = self._requests.get(key)
        if child is None:
            child = self.meter.requests.labels(kind, operation, str(allowed).lower())
            self._requests[key] = child
        return child


_OPERATION_LABELS = frozenset({*Operation, "DELETE", "CONNECT"})


def overload(queued_ahead: int, connections: int, max_queued: int, max_connections: int) -> str:
    """What is over its bound, in words for the message; empty if nothing is."""
    if queued_ahead >= max_queued:
        return f"{queued_ahead} reviews are waiting in this replica"
    if connections > max_connections:
        return f"{connections} connections are open to this replica"
    return ""


def overloaded(uid: str, load: str) -> AdmissionReviewResponse:
    """A refusal the API server passes on as HTTP 429 with ``Retry-After``.

    With failurePolicy Fail, a timeout or an HTTP error would reach the user
    as "failed calling webhook" and nothing else. A denial with code 429 is
    shown as written, and client-go (kubectl, controllers) honours the retry
    hint by sending the request again after ``RETRY_AFTER_SECONDS``.
    """
    message = (
        f"the pkiwarden admission webhook is overloaded ({load});"
        " nothing about this object was checked: retry in a moment"
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "response": {
            "uid": uid,
            "allowed": False,
            "status": {
                "code": 429,
                "reason": "TooManyRequests",
                "message": message,
                "details": {"retryAfterSeconds": RETRY_AFTER_SECONDS},
            },
        },
    }


class AdmissionEndpoint:
    """``POST /validate`` answered here; every other request (and lifespan) goes to ``app``.

    Under uvicorn, :class:`webhook.protocol.AdmissionHttpProtocol` calls the
    review methods below straight from its parser; the ASGI entry point
    serves any other server, the test client, and the rare review the
    protocol passes on.
    """

    path = VALIDATE_PATH

    def __init__(self, app: ASGIApp, *, reviewer: Reviewer, max_body_bytes: int) -> None:
        self.app = app
        self.reviewer = reviewer
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != VALIDATE_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # The API server appends ?timeout=5s; there is nothing to do with it
        # beyond answering in time.
        started = self.begin()
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except BodyTooLargeError:
            await _send(send, 400, self.too_large())
            return
        except ClientGoneError:
            self.abandoned()
            return
        except BaseException:  # cancelled at shutdown: no longer in flight
            self.reviewer.meter.in_flight.dec()
            raise
        status, answer = self.finish(
            body, scope.get(QUEUED_AHEAD, 0), started, scope.get(OPEN_CONNECTIONS, 0)
        )
        await _send(send, status, answer)

    def begin(self) -> float:
        self.reviewer.meter.in_flight.inc()
        return time.perf_counter()

    def finish(
        self, body: bytes, queued_ahead: int, started: float, connections: int
    ) -> tuple[int, bytes]:
        try:
            return self.reviewer.review(body, queued_ahead, started, connections)
        finally:
            self.reviewer.meter.in_flight.dec()

    def too_large(self) -> bytes:
        meter = self.reviewer.meter
        meter.in_flight.dec()
        meter.invalid.inc()
        message = f"the body is larger than {self.max_body_bytes} bytes"
        log.info("invalid admission request: %s", message)
        return encode({"error": "InvalidAdmissionReview", "message": message})

    def abandoned(self) -> None:
        meter = self.reviewer.meter
        meter.in_flight.dec()
        meter.invalid.inc()
        log.info("invalid admission request: the client went away before the body")


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json(status: int, content: object) -> Response:
    return Response(content=encode(content), status_code=status, media_type="application/json")
