"""One small HTTP port for the probes and /metrics.

Standard library only: the issuer serves three tiny GET routes and needs no
framework. Routes are registered by path, so metrics plug in without edits
here: ``server.add_route("/metrics", handler)``. The same server, given a TLS
context and a ``guard`` on the Authorization header, serves ``/metrics``
over HTTPS to authorized scrapers only (see ``shared.metrics_access``).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared.metrics_access import Access

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Response]
Guard = Callable[[str | None], Access]  # the Authorization header -> may it read?


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


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (RFC 9110: ``gzip``, ``*``, not ``q=0``)."""
    for part in (header or "").split(","):
        coding, _, parameters = part.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() != "q":
            return True
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False


def _handshake_failed(request: object, client_address: object) -> None:
    log.debug("TLS connection from %s failed", client_address)


class HealthServer:
    def __init__(
        self,
        port: int,
        host: str = "0.0.0.0",
        *,
        tls: ssl.SSLContext | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._routes: dict[str, Route] = {}
        self._gzip_routes: dict[str, Route] = {}
        self._name = "metrics server (https)" if tls is not None else "health server"
        routes, gzip_routes = self._routes, self._gzip_routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                route = routes.get(path)
                access = guard(self.headers.get("Authorization")) if guard and route else None
                gzipped = False
                if access is not None and not access.allowed:
                    status, content_type, body = (
                        access.status,
                        "text/plain; charset=utf-8",
                        f"{access.message}\n".encode(),
                    )
                elif route is None:
                    status, content_type, body = 404, "text/plain", b"not found\n"
                else:
                    gzipped = path in gzip_routes and accepts_gzip(
                        self.headers.get("Accept-Encoding")
                    )
                    status, content_type, body = (gzip_routes[path] if gzipped else route)()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if path in gzip_routes:
                    self.send_header("Vary", "Accept-Encoding")
                if gzipped:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the reconcile lines

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            # The handshake happens in the request's own thread, at its first read:
            # one slow client cannot hold up the accept loop.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            # A client speaking plain HTTP or failing the handshake: its problem, not a traceback.
            self._server.handle_error = _handshake_failed  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self._server.server_address[1])

    def add_route(self, path: str, route: Route, *, gzip: Route | None = None) -> None:
        """Serve ``route`` at ``path``; ``gzip``, its body gzipped, to clients that accept it."""
        self._routes[path] = route
        if gzip is not None:
            self._gzip_routes[path] = gzip

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("%s listening on port %d", self._name, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
