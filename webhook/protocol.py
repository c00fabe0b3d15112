"""uvicorn's httptools protocol, answering ``POST /validate`` itself.

1. **Reviews are answered without ASGI.** Once a review's body is complete,
   :meth:`AdmissionHttpProtocol.on_message_complete` hands it to the app's
   :class:`DirectReviews` and writes the answer, head and body, in one
   ``transport.write``: one TLS record, one ``send``. The ASGI route for the
   same path cost a task, an event, two ASGI messages and a second write per
   review, above a fifth of the process's CPU at 500 reviews/s. Every other
   request (probes, ``/metrics``, and the rare review sent with ``Expect:
   100-continue`` or behind a pipelined request) goes through ASGI as usual,
   to the same :class:`webhook.app.Reviewer`.
2. **Alone, at once; under load, after the step's reads.** A review that is
   the only one read in this turn of the event loop is answered in the
   parser's callback. When others were read in the same turn, it is answered
   after the turn's reads, in order: reading a burst first and answering it
   after cost 5.7 s of CPU for 30,000 reviews arriving at 6,000/s, against
   6.9 s answering each as it was read, and kept the slowest answer at 0.3 s
   instead of 1.2 s.
3. **How many reviews are ahead, how many connections are open.** A review
   learns how many reviews were read before it in the same turn (it waits
   for them), plus the ASGI requests still running, and the connections open.
   The app refuses at once what would wait too long (see :mod:`webhook.app`);
   uvicorn's own ``limit_concurrency`` would answer 503, which the API server
   turns into a bare "failed calling webhook". The ASGI path gets the same
   figures in its scope under :data:`QUEUED_AHEAD` and :data:`OPEN_CONNECTIONS`.
4. **A bound on connections.** Past ``max_connections``, a connection is
   closed after its first answer (the app's refusal): each costs tens of KiB
   of TLS and HTTP state, and an open-loop burst that outruns the process
   would otherwise open thousands and leave the memory behind.
5. **A shutdown answers what it has started.** uvicorn's own ``shutdown``
   closes a connection that has no ASGI cycle running, which is every
   connection whose review is being read or waits for its turn here: the API
   server would see a reset and apply ``failurePolicy``. Such a connection is
   answered first and closed after its last review.

This subclasses uvicorn's ``httptools_impl``, which uvicorn does not document
as an API: ``pyproject.toml`` pins uvicorn to the releases these tests ran
on, and a unit test holds the installed version, the image's lock and the
pin together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from webhook.settings import MAX_CONNECTIONS

# ASGI scope keys: requests of this process ahead of this one when it
# arrived, and its connections open then.
QUEUED_AHEAD = "pkiwarden.queued_ahead"
OPEN_CONNECTIONS = "pkiwarden.open_connections"

_POST = b"POST"
_JSON_OF_LENGTH = b"content-type: application/json\r\ncontent-length: "
_CLOSE = b"connection: close\r\n"


class DirectReviews(Protocol):
    """What the protocol needs from the app to answer reviews without ASGI."""

    path: str
    max_body_bytes: int

    def begin(self) -> float:
        """A review's head has arrived; returns its start time (``time.perf_counter``)."""
        ...

    def finish(
        self, body: bytes, queued_ahead: int, started: float, connections: int
    ) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering a complete review."""
        ...

    def too_large(self) -> bytes:
        """The 400 body for a review past ``max_body_bytes``; ends the review."""
        ...

    def abandoned(self) -> None:
        """The client went away before the review's body was complete."""
        ...


class StepCounter:
    """Reviews read since the event loop last polled its sockets.

    Reviews read in one poll are answered one after another, so the count is
    how many a review waits for. It is reset by a callback queued with the
    first review, which the loop runs before its next poll (and before the
    reviews it put off).
    """

    def __init__(self) -> None:
        self.read = 0

    def count(self, loop: asyncio.AbstractEventLoop) -> int:
        """The count before this review; counts this one."""
        ahead = self.read
        if not ahead:
            loop.call_soon(self._reset)
        self.read = ahead + 1
        return ahead

    def _reset(self) -> None:
        self.read = 0


@dataclass(frozen=True, slots=True)
class _Review:
    """A complete review and what it was read with; an answer may wait for a later step."""

    body: bytes
    ahead: int
    started: float
    connections: int
    keep_alive: bool


class AdmissionHttpProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=AdmissionHttpProtocol.serving(app.reviews, n))``."""

    max_connections: ClassVar[int] = MAX_CONNECTIONS
    reviews: ClassVar[DirectReviews | None] = None
    review_path: ClassVar[bytes] = b""
    step: ClassVar[StepCounter] = StepCounter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The body so far of a review answered here; None when ASGI has the request.
        self._direct: bytearray | None = None
        # The rest of a review refused for its size is parsed and dropped.
        self._discarding = False
        self._started = 0.0
        self._connections = 0
        self._keep_alive = True
        # Reviews read and put off until after this turn's reads.
        self._waiting = 0
        self._shutting_down = False

    @classmethod
    def serving(
        cls, reviews: DirectReviews | None, max_connections: int
    ) -> type[AdmissionHttpProtocol]:
        """This protocol for one app (uvicorn takes a class, and makes one per connection)."""
        namespace = {
            "reviews": reviews,
            "review_path": reviews.path.encode() if reviews is not None else b"",
            "max_connections": max_connections,
            "step": StepCounter(),
        }
        return type(cls.__name__, (cls,), namespace)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._direct = None

    def on_headers_complete(self) -> None:
        connections = len(self.connections)
        reviews = self.reviews
        if (
            reviews is not None
            and not self.expect_100_continue
            and (self.cycle is None or self.cycle.response_complete)
            and self.parser.get_method() == _POST
            and self.url.partition(b"?")[0] == self.review_path
        ):
            self._direct = bytearray()
            self._started = reviews.begin()
            self._connections = connections
            self._keep_alive = (
                self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
            )
            return
        # Stamped before uvicorn starts this request's task, so it counts only
        # the ones ahead of it.
        self.scope[QUEUED_AHEAD] = len(self.tasks) + self.step.read  # type: ignore[literal-required]
        self.scope[OPEN_CONNECTIONS] = connections  # type: ignore[literal-required]
        super().on_headers_complete()
        if connections > self.max_connections and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with "connection: close", then closed

    def on_body(self, body: bytes) -> None:
        direct = self._direct
        if direct is None:
            if not self._discarding:
                super().on_body(body)
            return
        reviews = self.reviews
        assert reviews is not None  # a direct review has its app
        direct += body
        if len(direct) > reviews.max_body_bytes:
            # The rest is never read: answered now, and the connection closed.
            self._direct = None
            self._discarding = True
            self._answer(400, reviews.too_large(), keep_alive=False)

    def on_message_complete(self) -> None:
        direct = self._direct
        if direct is None:
            if not self._discarding:
                super().on_message_complete()
            return
        reviews = self.reviews
        assert reviews is not None  # a direct review has its app
        self._direct = None
        review = _Review(
            bytes(direct),
            self.step.count(self.loop) + len(self.tasks),
            self._started,
            self._connections,
            self._keep_alive and self._connections <= self.max_connections,
        )
        if review.ahead:
            # Others were read in this turn: answered after its reads, in order.
            self._waiting += 1
            self.loop.call_soon(self._finish_later, reviews, review)
        else:
            self._finish(reviews, review)

    def _finish_later(self, reviews: DirectReviews, review: _Review) -> None:
        self._waiting -= 1
        self._finish(reviews, review)

    def _finish(self, reviews: DirectReviews, review: _Review) -> None:
        status, answer = reviews.finish(
            review.body, review.ahead, review.started, review.connections
        )
        if not self.transport.is_closing():
            # While shutting down, the connection stays open for the reviews still waiting.
            last = self._shutting_down and not self._waiting
            self._answer(status, answer, review.keep_alive and not last)

    def shutdown(self) -> None:
        """Close at once when idle; otherwise after the review being read or waiting."""
        if self._direct is not None or self._waiting:
            self._shutting_down = True
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._direct is not None and self.reviews is not None:
            self._direct = None
            self.reviews.abandoned()
        super().connection_lost(exc)

    def _answer(self, status: int, body: bytes, keep_alive: bool) -> None:
        parts = [STATUS_LINE[status], _JSON_OF_LENGTH, str(len(body)).encode(), b"\r\n"]
        for name, value in self.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        if not keep_alive:
            parts.append(_CLOSE)
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        if keep_alive:
            self.on_response_complete()
        else:
            self.server_state.total_requests += 1
            self.transport.close()
