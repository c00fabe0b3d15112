"""Reviews answered by the protocol itself: the same answers as through ASGI, on real sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.impact import PolicyContext
from shared.validation.pki import Context
from tests.unit.reviews import CONTEXT, review_body
from tests.unit.served import Reader, request, server_of, serving
from webhook.app import AdmissionEndpoint, create_app


class Source:
    def context_for(self, namespace: str) -> Context:
        return CONTEXT

    def policy_context(self) -> PolicyContext:
        return PolicyContext(policies=CONTEXT.policies)

    def cache_status(self) -> dict[str, bool]:
        return {"pkis": True}


@pytest.fixture
def app() -> AdmissionEndpoint:
    return create_app(Source(), max_body_bytes=4096)


@pytest.fixture
def connection(app: AdmissionEndpoint) -> Iterator[Reader]:
    with serving(app, 10) as port, socket.create_connection(("127.0.0.1", port), 10) as sock:
        yield Reader(sock)


def review(uid: str, spec: Any = None) -> bytes:
    return request(json.dumps(review_body(spec, uid=uid)).encode(), path="/validate?timeout=5s")


def scraped(app: AdmissionEndpoint, name: str) -> float:
    with TestClient(app) as client:
        text = client.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_the_same_answer_as_through_asgi(app: AdmissionEndpoint, connection: Reader) -> None:
    denied = review_body({"serviceName": "app2"}, uid="uid-d")
    connection.sock.sendall(request(json.dumps(denied).encode()))
    head, body = connection.reply()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-type: application/json" in head
    with TestClient(app) as client:
        assert json.loads(body) == client.post("/validate", json=denied).json()


def test_reviews_and_other_requests_share_a_kept_alive_connection(
    app: AdmissionEndpoint, connection: Reader
) -> None:
    connection.sock.sendall(review("uid-1"))
    assert connection.answer()["response"] == {"uid": "uid-1", "allowed": True}
    connection.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert connection.answer() == {"status": "ok"}
    connection.sock.sendall(review("uid-2"))
    assert connection.answer()["response"]["uid"] == "uid-2"
    assert scraped(app, "pkiwarden_admission_requests_total{") == 2


def test_pipelined_reviews_are_answered_in_order(connection: Reader) -> None:
    connection.sock.sendall(b"".join(review(f"uid-{n}") for n in range(5)))
    assert [connection.answer()["response"]["uid"] for _ in range(5)] == [
        f"uid-{n}" for n in range(5)
    ]


def test_a_body_in_pieces_and_chunked_is_one_review(connection: Reader) -> None:
    body = json.dumps(review_body(uid="uid-c")).encode()
    head = b"POST /validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    connection.sock.sendall(head)
    for start in range(0, len(body), 50):
        piece = body[start : start + 50]
        connection.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    connection.sock.sendall(b"0\r\n\r\n")
    assert connection.answer()["response"] == {"uid": "uid-c", "allowed": True}


def test_expect_continue_is_answered_through_asgi(connection: Reader) -> None:
    body = json.dumps(review_body(uid="uid-e")).encode()
    head = (
        f"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    connection.sock.sendall(head)
    while b"\r\n\r\n" not in connection.buffer:
        connection.buffer += connection.sock.recv(65536)
    assert connection.buffer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    connection.buffer = connection.buffer[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    connection.sock.sendall(body)
    assert connection.answer()["response"] == {"uid": "uid-e", "allowed": True}


def test_not_a_review_is_400_and_the_connection_stays_usable(connection: Reader) -> None:
    connection.sock.sendall(request(b"{not json"))
    head, body = connection.reply()
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert json.loads(body)["error"] == "InvalidAdmissionReview"
    connection.sock.sendall(review("uid-after"))
    assert connection.answer()["response"]["uid"] == "uid-after"


def test_past_the_body_limit_is_400_and_the_connection_closed_unread(
    app: AdmissionEndpoint, connection: Reader
) -> None:
    padded = json.dumps(review_body({"serviceName": "app1", "pad": "x" * 10_000})).encode()
    connection.sock.sendall(request(padded) + review("uid-never"))
    head, body = connection.reply()
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in head
    assert "larger than 4096 bytes" in json.loads(body)["message"]
    assert connection.closed()  # the review behind it is never read
    assert scraped(app, "pkiwarden_admission_invalid_requests_total") == 1
    assert scraped(app, "pkiwarden_admission_in_flight_requests") == 0


def test_a_client_gone_mid_body_leaves_nothing_in_flight(app: AdmissionEndpoint) -> None:
    with serving(app, 10) as port:
        sock = socket.create_connection(("127.0.0.1", port), 10)
        sock.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{")
        sock.close()
        with socket.create_connection(("127.0.0.1", port), 10) as probe:
            probe.sendall(review("uid-later"))  # answered after the first was dropped
            assert Reader(probe).answer()["response"]["uid"] == "uid-later"
    assert scraped(app, "pkiwarden_admission_in_flight_requests") == 0
    assert scraped(app, "pkiwarden_admission_invalid_requests_total") == 1


def test_http_1_0_gets_its_answer_and_a_close(connection: Reader) -> None:
    body = json.dumps(review_body(uid="uid-10")).encode()
    head = f"POST /validate HTTP/1.0\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    connection.sock.sendall(head + body)
    reply_head, reply_body = connection.reply()
    assert b"connection: close" in reply_head
    assert json.loads(reply_body)["response"]["uid"] == "uid-10"
    assert connection.closed()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_shutdown_lets_the_review_being_read_finish(app: AdmissionEndpoint) -> None:
    body = json.dumps(review_body(uid="uid-late")).encode()
    half = len(body) // 2
    with server_of(app, 10) as (port, server):
        idle = socket.create_connection(("127.0.0.1", port), 10)
        busy = Reader(socket.create_connection(("127.0.0.1", port), 10))
        busy.sock.sendall(request(body)[: -len(body) + half])
        idle.sendall(review("uid-first"))
        assert Reader(idle).answer()["response"]["uid"] == "uid-first"
        server.should_exit = True
        # uvicorn closes its listener just before it asks each connection to shut down.
        deadline = time.monotonic() + 10
        while not _refused(port):
            assert time.monotonic() < deadline, "the server never began its shutdown"
            time.sleep(0.05)
        assert idle.recv(1) == b"", "an idle connection is closed at once"
        busy.sock.sendall(body[half:])
        head, answer = busy.reply()
        assert b"connection: close" in head
        assert json.loads(answer)["response"] == {"uid": "uid-late", "allowed": True}
        assert busy.closed()
        idle.close()
        busy.sock.close()
