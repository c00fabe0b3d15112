"""The HTTP edge: body in, :func:`webhook.decision.decide` out, with logs and metrics.

It is thin on purpose. What it adds to the decision is what only the edge can
do: read at most ``max_body_bytes`` (counting bytes as they arrive; a
Content-Length header proves nothing), answer a body that is not a review
with 400 and a JSON reason, and turn an unexpected failure of our own into a
denial the API server can show, never a 500 or a traceback.
"""

from __future__ import annotations

import json
import logging
import time

from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from shared.logs import FIELDS_ATTRIBUTE
from webhook.context import ContextSource
from webhook.decision import Kind, Operation, decide, namespace_of, respond, validated_kind
from webhook.metrics import CONTENT_TYPE, WebhookMetrics
from webhook.review import (
    AdmissionRequest,
    AdmissionReviewRequest,
    AdmissionReviewResponse,
    InvalidReviewError,
    parse_review,
)
from webhook.settings import MAX_BODY_BYTES

log = logging.getLogger("pkiwarden.webhook")


class BodyTooLargeError(InvalidReviewError):
    """Raised while reading, as soon as the limit is passed: the rest is never buffered."""


def create_app(
    source: ContextSource,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    metrics: WebhookMetrics | None = None,
) -> FastAPI:
    """The webhook's ASGI app: ``POST /validate``, ``/healthz``, ``/readyz``, ``/metrics``."""
    app = FastAPI(
        title="pkiwarden admission webhook", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.metrics = meter = metrics or WebhookMetrics(source.cache_status)

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        # The API server appends ?timeout=10s; there is nothing to do with it
        # beyond answering in time, which we do in microseconds.
        meter.in_flight.inc()
        started = time.perf_counter()
        try:
            try:
                body = await _read_body(request, max_body_bytes)
                review = parse_review(body)
            except (InvalidReviewError, ClientDisconnect) as error:
                meter.invalid.inc()
                reason = str(error) or "the client went away before the body was read"
                log.info("invalid admission request: %s", reason)
                return _json(400, {"error": "InvalidAdmissionReview", "message": reason})
            answer = _answer(review, source, meter)
            elapsed = time.perf_counter() - started
            _record(review["request"], answer, elapsed, meter)
            return _json(200, answer)
        finally:
            meter.in_flight.dec()

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        status = source.cache_status()
        waiting = sorted(name for name, synced in status.items() if not synced)
        if waiting:
            return _json(503, {"status": "not ready", "waitingFor": waiting})
        return _json(200, {"status": "ready"})

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(content=meter.exposition(), media_type=CONTENT_TYPE)

    return app


def _answer(
    review: AdmissionReviewRequest, source: ContextSource, meter: WebhookMetrics
) -> AdmissionReviewResponse:
    """The decision, or an explained denial if computing it failed."""
    request = review["request"]
    try:
        kind = validated_kind(request)
        if kind is Kind.PKI_POLICY:
            return decide(review, None, source.policy_context())
        context = source.context_for(namespace_of(request)) if kind is Kind.PKI else None
        return decide(review, context)
    except Exception:
        meter.internal_errors.inc()
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


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _record(
    request: AdmissionRequest,
    answer: AdmissionReviewResponse,
    elapsed: float,
    meter: WebhookMetrics,
) -> None:
    response = answer["response"]
    kind = validated_kind(request)
    kind_label = kind.value if kind is not None else "other"
    operation = request["operation"]
    operation_label = operation if operation in {*Operation, "DELETE", "CONNECT"} else "other"
    allowed = response["allowed"]
    warned = len(response.get("warnings", []))
    meter.requests.labels(kind_label, operation_label, str(allowed).lower()).inc()
    meter.duration.observe(elapsed)
    if warned:
        meter.warnings.inc(warned)
    log.info(
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


def _json(status: int, content: object) -> Response:
    # ASCII escapes: a uid may hold a lone surrogate (valid JSON, not encodable UTF-8).
    body = json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()
    return Response(content=body, status_code=status, media_type="application/json")
