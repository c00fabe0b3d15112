"""A TCP relay from the node's bridge address to the API server on loopback.

Pods live in network namespaces of their own, whose loopback is not the
machine's, so they cannot dial the API server on 127.0.0.1. Rather than make
kube-apiserver listen on every address of the machine (it takes one
``--bind-address``, and the bridge appears after it starts), the node runs
this relay on the bridge's address: the API server keeps listening on
loopback alone, and bytes pass through untouched, so TLS, client
certificates and ServiceAccount tokens end at the API server as before.

Run as ``python -m pkiwarden.local.relay LISTEN_HOST PORT TARGET_HOST PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

_CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close, so either side may finish first."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _serve_one(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )
    finally:
        for writer in (client_writer, upstream_writer):
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def relay(listen: tuple[str, int], target: tuple[str, int]) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = await asyncio.start_server(
        lambda reader, writer: _serve_one(reader, writer, target),
        host=listen[0],
        port=listen[1],
        family=socket.AF_INET,
        reuse_address=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pkiwarden.local.relay")
    parser.add_argument("listen_host")
    parser.add_argument("listen_port", type=int)
    parser.add_argument("target_host")
    parser.add_argument("target_port", type=int)
    args = parser.parse_args(argv)
    asyncio.run(relay((args.listen_host, args.listen_port), (args.target_host, args.target_port)))


if __name__ == "__main__":
    main()
