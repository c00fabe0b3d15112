"""One small HTTP port for the probes and /metrics.

Standard library only: the issuer serves three tiny GET routes and needs no
framework. Routes are registered by path, so metrics plug in without edits
here: ``server.add_route("/metrics", handler)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Response]


def text(ok: bool, what: str) -> Response:
    return (
        (200, "text/plain; charset=utf-8", b"ok\n")
        if ok
        else (
            503,
            "text/plain; charset=utf-8",
            f"not {what}\n".encode(),
        )
    )


class HealthServer:
    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self._routes: dict[str, Route] = {}
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, content_type, body = (
                    route() if route else (404, "text/plain", b"not found\n")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the reconcile lines

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self._server.server_address[1])

    def add_route(self, path: str, route: Route) -> None:
        self._routes[path] = route

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health server listening on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
