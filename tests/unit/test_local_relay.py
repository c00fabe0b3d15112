"""The node's relay carries bytes both ways and lets either side finish first."""

from __future__ import annotations

import asyncio
import contextlib

from pkiwarden.local.readiness import free_ports
from pkiwarden.local.relay import relay


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the client half-closes
    writer.write(data.upper())
    await writer.drain()
    writer.close()


async def _through_relay(payload: bytes) -> bytes:
    target_port, listen_port = free_ports(2)
    upstream = await asyncio.start_server(_echo, "127.0.0.1", target_port)
    relaying = asyncio.create_task(relay(("127.0.0.1", listen_port), ("127.0.0.1", target_port)))
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", listen_port)
                break
            except OSError:
                await asyncio.sleep(0.02)
        writer.write(payload)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        return answer
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        upstream.close()


def test_bytes_pass_both_ways_and_a_half_close_reaches_the_other_side() -> None:
    payload = b"hello api server " * 10_000
    assert asyncio.run(_through_relay(payload)) == payload.upper()
