"""Overload and workers: a review that would wait too long gets a fast, explained refusal,
and a worker is ready only when all its siblings are."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.validation.pki import Context
from tests.unit.reviews import CONTEXT, review_body
from tests.unit.served import Reader, post, request, serving
from webhook.app import RETRY_AFTER_SECONDS, create_app, overload
from webhook.protocol import QUEUED_AHEAD
from webhook.workers import waiting


class Source:
    """A fixed context that counts how often it was asked, and can hold the event loop."""

    def __init__(self) -> None:
        self.asked = 0
        self.hold: threading.Event | None = None
        self.holding = threading.Event()

    def context_for(self, namespace: str) -> Context:
        self.asked += 1
        if self.hold is not None:
            hold, self.hold = self.hold, None
            self.holding.set()
            hold.wait(30)
        return CONTEXT

    def cache_status(self) -> Mapping[str, bool]:
        return {"pkis": True}


async def call(app: Any, body: bytes, queued_ahead: int) -> tuple[int, dict[str, Any]]:
    """One request through the ASGI interface, with the count the protocol stamps."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/validate",
        "raw_path": b"/validate",
        "query_string": b"timeout=5s",
        "headers": [(b"content-type", b"application/json")],
        QUEUED_AHEAD: queued_ahead,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_over_the_limit_is_refused_unchecked_with_429_and_a_retry_hint() -> None:
    source = Source()
    app = create_app(source, max_queued_reviews=3)
    status, answer = asyncio.run(call(app, json.dumps(review_body(uid="uid-9")).encode(), 3))
    assert status == 200  # anything else is a call failure, and the message would be lost
    response = answer["response"]
    assert response["uid"] == "uid-9"
    assert response["allowed"] is False
    assert response["status"]["code"] == 429
    assert response["status"]["reason"] == "TooManyRequests"
    assert response["status"]["details"] == {"retryAfterSeconds": RETRY_AFTER_SECONDS}
    message = response["status"]["message"]
    assert "overloaded" in message
    assert "retry" in message
    assert "3 reviews are waiting" in message
    assert source.asked == 0  # refused without looking at the object


def test_under_the_limit_is_decided_as_usual() -> None:
    source = Source()
    app = create_app(source, max_queued_reviews=3)
    status, answer = asyncio.run(
        call(app, json.dumps(review_body({"serviceName": "app2"}, uid="uid-1")).encode(), 2)
    )
    assert status == 200
    assert answer["response"]["status"]["code"] == 403
    assert source.asked == 1


def test_refusals_are_counted() -> None:
    app = create_app(Source(), max_queued_reviews=1)
    asyncio.run(call(app, json.dumps(review_body(uid="uid-1")).encode(), 5))
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert "pkiwarden_admission_overloaded_total 1.0" in text
    assert "pkiwarden_admission_requests_total{" not in text


def _post(port: int, uid: str) -> socket.socket:
    return post(port, review_body(uid=uid))


def _answer(sock: socket.socket, *, close: bool = True) -> dict[str, Any]:
    return _reply(sock, close=close)[1]


def _reply(sock: socket.socket, *, close: bool = True) -> tuple[bytes, dict[str, Any]]:
    head, body = Reader(sock).reply()
    if close:
        sock.close()
    return head, dict(json.loads(body))


@pytest.fixture
def served() -> Iterator[tuple[int, Source]]:
    """The app behind uvicorn with pkiwarden's protocol, on loopback, in a thread."""
    source = Source()
    with serving(create_app(source, max_queued_reviews=1, max_connections=2), 2) as port:
        yield port, source


def test_the_protocol_counts_the_reviews_ahead_and_the_excess_is_refused(
    served: tuple[int, Source],
) -> None:
    port, source = served
    second = _post(port, "uid-warm")  # an open connection, as the API server keeps them
    reader = Reader(second)
    assert json.loads(reader.reply()[1])["response"]["allowed"] is True
    # The first review holds the event loop (as a slow review would); three
    # more arrive meanwhile, pipelined, and are read together once it is released.
    source.hold = release = threading.Event()
    first = _post(port, "uid-0")
    assert source.holding.wait(10)
    bodies = [json.dumps(review_body(uid=f"uid-{n}")).encode() for n in (1, 2, 3)]
    second.sendall(b"".join(request(body) for body in bodies))
    release.set()
    assert _answer(first)["response"]["allowed"] is True
    answers = [json.loads(reader.reply()[1])["response"] for _ in range(3)]
    second.close()
    assert [a["uid"] for a in answers] == ["uid-1", "uid-2", "uid-3"]
    # The first of them had none ahead; the others 1 and 2, over the limit of 1.
    assert [a["allowed"] for a in answers] == [True, False, False]
    assert [a["status"]["code"] for a in answers[1:]] == [429, 429]
    assert "2 reviews are waiting" in answers[2]["status"]["message"]


def test_past_the_connection_bound_a_review_is_refused_and_its_connection_closed(
    served: tuple[int, Source],
) -> None:
    port, source = served
    kept = []
    for uid in ("uid-a", "uid-b"):  # two keep-alive connections, answered and left open
        kept.append(_post(port, uid))
        assert _answer(kept[-1], close=False)["response"]["allowed"] is True
    third = _post(port, "uid-c")
    head, answer = _reply(third, close=False)
    assert answer["response"]["status"]["code"] == 429
    assert "3 connections are open to this replica" in answer["response"]["status"]["message"]
    assert b"connection: close" in head.lower()
    assert third.recv(1) == b""  # closed by the server
    third.close()
    kept[0].close()
    kept[1].close()
    assert source.asked == 2


def test_overload_names_what_is_over_its_bound() -> None:
    assert overload(0, 10, max_queued=5, max_connections=10) == ""
    assert overload(5, 10, max_queued=5, max_connections=10) == (
        "5 reviews are waiting in this replica"
    )
    assert overload(1, 11, max_queued=5, max_connections=10) == (
        "11 connections are open to this replica"
    )


def test_a_worker_is_ready_only_when_every_worker_has_synced() -> None:
    flags = [1, 0, 1]  # worker 1 is still listing
    app = create_app(Source(), waiting_workers=lambda: waiting(flags, 0))
    with TestClient(app) as probe:
        reply = probe.get("/readyz")
        assert reply.status_code == 503
        assert reply.json()["waitingFor"] == ["worker 1"]
        flags[1] = 1
        assert probe.get("/readyz").status_code == 200


def test_a_worker_does_not_list_itself_as_waiting() -> None:
    assert waiting([0, 1, 0], own=0) == ["worker 2"]
    assert waiting([1, 1], own=1) == []
