"""Ports and readiness for the local processes: one free-port helper, one wait.

Every local process (etcd, kube-apiserver, the controllers, the webhook, the
issuer) is started the same way and waited for the same way: poll a check,
and fail as soon as the process exits, or after a deadline, with the end of
its log in the message, because that is where the reason is.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from pkiwarden.local import processes as procs

LOOPBACK = "127.0.0.1"  # every local process listens here, and only here


class NotReadyError(RuntimeError):
    """A local process exited or did not become ready; the message ends with its log."""


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Ports the kernel says are free now on ``host``; all held open together so they differ."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free now on ``host``."""
    return free_ports(1, host)[0]


def http_ok(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True if ``url`` answers 200: the readiness probe of every local process."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def failure(directory: Path, name: str, what: str) -> NotReadyError:
    """An error saying what happened to process ``name``, with the end of its log."""
    log = procs.log_path(directory, name)
    return NotReadyError(f"{name} {what}; last lines of {log}:\n{procs.tail(log)}")


def wait_until_ready(
    directory: Path,
    check: Callable[[], bool],
    watched: Sequence[str],
    *,
    what: str = "ready",
    timeout: float = 60.0,
    every: float = 0.1,
) -> None:
    """Poll ``check`` until true; fail early, with its log, if a watched process exits.

    ``watched`` names processes recorded in ``directory``; the last one is the
    process being waited for, whose log a timeout shows.
    """
    deadline = time.monotonic() + timeout
    while not check():
        for name in watched:
            record = procs.read(directory, name)
            if record is None or not procs.is_running(record):
                binary = record.argv[0] if record else name
                raise failure(directory, name, f"({binary}) exited during start-up")
        if time.monotonic() > deadline:
            raise failure(directory, watched[-1], f"was not {what} within {timeout:.0f} s")
        time.sleep(every)


def https_ok_as(
    address: str, port: int, server_name: str, ca_pem: str, path: str, *, timeout: float = 2.0
) -> bool:
    """True if ``https://address:port/path`` answers 200 to a client that expects ``server_name``.

    The API server calls a Service-referenced webhook at the ClusterIP and
    verifies the certificate against ``<service>.<namespace>.svc``; this
    checks the same thing, with the same trust (the registration's caBundle).
    """
    try:
        context = ssl.create_default_context(cadata=ca_pem)
        with (
            socket.create_connection((address, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            request = f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            status = tls.recv(64).split(b"\r\n", 1)[0]
    except (OSError, ssl.SSLError, ValueError):
        return False
    return status.split(b" ")[1:2] == [b"200"]
