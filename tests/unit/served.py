"""The webhook app behind uvicorn with pkiwarden's protocol, on loopback, and raw HTTP to it.

Raw sockets rather than an HTTP client: the tests need to see and shape the
bytes (pipelining, a body past the limit, ``Expect``, connection close).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from webhook.app import AdmissionEndpoint
from webhook.protocol import AdmissionHttpProtocol


@contextmanager
def serving(app: AdmissionEndpoint, max_connections: int) -> Iterator[int]:
    """Serve ``app`` in a thread until the block ends; yields the port."""
    with server_of(app, max_connections) as (port, _):
        yield port


@contextmanager
def server_of(app: AdmissionEndpoint, max_connections: int) -> Iterator[tuple[int, uvicorn.Server]]:
    """As :func:`serving`, with the server, for tests that stop it themselves."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=AdmissionHttpProtocol.serving(app, max_connections),
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(10)


def request(body: bytes, *, path: str = "/validate", headers: str = "") -> bytes:
    """One POST with a Content-Length, as bytes."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def post(port: int, body: dict[str, Any]) -> socket.socket:
    """A new connection with one review sent on it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request(json.dumps(body).encode()))
    return sock


class Reader:
    """Reads HTTP/1.1 answers off one socket, keeping what arrived past each."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def reply(self) -> tuple[bytes, bytes]:
        """The next answer's head and body (bodies carry a Content-Length here)."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, body

    def answer(self) -> dict[str, Any]:
        return dict(json.loads(self.reply()[1]))

    def closed(self) -> bool:
        """True once the server has closed the connection (nothing more to read)."""
        return not self.buffer and self.sock.recv(1) == b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += chunk
