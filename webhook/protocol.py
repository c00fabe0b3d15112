"""uvicorn's httptools protocol with two changes the admission path needs.

1. **One send per response.** uvicorn writes a response's head and its body
   with two ``transport.write`` calls, and over TLS each becomes its own
   record and its own ``send`` syscall on the spot. On a loopback or Pod
   network that syscall is the largest single cost of a review (more than
   validating it), so writes made in one step of the event loop are joined
   and leave in one record at the end of that step.
2. **How many reviews are ahead, how many connections are open.** Each
   request's scope carries, under :data:`QUEUED_AHEAD`, the number of
   requests this process had accepted and not yet answered when its head
   arrived, and under :data:`OPEN_CONNECTIONS` the connections open then. The
   app refuses at once what would wait too long (see :mod:`webhook.app`);
   uvicorn's own ``limit_concurrency`` would answer 503, which the API server
   turns into a bare "failed calling webhook".
3. **A bound on connections.** Past ``max_connections``, a connection is
   closed after its first answer (the app's refusal): each costs tens of KiB
   of TLS and HTTP state, and an open-loop burst that outruns the process
   would otherwise open thousands and leave the memory behind.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from webhook.settings import MAX_CONNECTIONS

# ASGI scope keys: requests of this process in progress when this one
# arrived, and its connections open then.
QUEUED_AHEAD = "pkiwarden.queued_ahead"
OPEN_CONNECTIONS = "pkiwarden.open_connections"


class CoalescingTransport:
    """A transport whose writes within one event-loop step go out as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, abort) is the transport's.
        return getattr(self._transport, name)


class AdmissionHttpProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=AdmissionHttpProtocol.bounded(n))``."""

    max_connections: ClassVar[int] = MAX_CONNECTIONS

    @classmethod
    def bounded(cls, max_connections: int) -> type[AdmissionHttpProtocol]:
        """This protocol with its own connection bound (uvicorn takes a class)."""
        return type(cls.__name__, (cls,), {"max_connections": max_connections})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        coalescing: Any = CoalescingTransport(transport, self.loop)
        self.transport = coalescing

    def on_headers_complete(self) -> None:
        # Stamped before uvicorn starts this request's task, so it counts only
        # the ones ahead of it.
        self.scope[QUEUED_AHEAD] = len(self.tasks)  # type: ignore[literal-required]
        connections = len(self.connections)
        self.scope[OPEN_CONNECTIONS] = connections  # type: ignore[literal-required]
        super().on_headers_complete()
        if connections > self.max_connections and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with "connection: close", then closed
