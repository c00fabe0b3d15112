"""One webhook process: caches, then uvicorn over TLS.

Start-up order is chosen so the API server never sees a half-ready webhook:
the serving certificate exists (and the caBundle trusts it) before the port
opens, and ``/readyz`` stays 503 until every cache has listed once, so a
Deployment's readiness probe keeps traffic away until answers are right.
"""

from __future__ import annotations

import gc
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence

import uvicorn

from shared.heap import HeapTrimmer, fix_mmap_threshold
from shared.kube.client import Kube
from shared.kube.view import ClusterView
from shared.metrics_access import MetricsAccess
from webhook.app import create_app
from webhook.context import ClusterViewSource
from webhook.metrics import WebhookMetrics
from webhook.protocol import AdmissionHttpProtocol
from webhook.settings import WebhookSettings
from webhook.tls import CertificateReloader, harden

log = logging.getLogger("pkiwarden.webhook")


class CertificateError(RuntimeError):
    """The serving certificate is missing or unusable; the message says where and why."""


def serve_process(
    settings: WebhookSettings,
    kube: Kube,
    *,
    sock: socket.socket | None = None,
    on_synced: Callable[[], None] | None = None,
    waiting_workers: Callable[[], Sequence[str]] = tuple,
    metrics: Callable[[Callable[[], Mapping[str, bool]]], WebhookMetrics] = WebhookMetrics,
) -> int:
    """One serving process: its own caches, TLS context and event loop.

    ``sock`` is the listening socket a worker shares with its siblings;
    ``on_synced`` is called once every cache has listed; ``metrics`` makes
    the metrics from the cache status.
    """
    lighten_log_records()
    fix_mmap_threshold()
    view = ClusterView.start(kube)
    _when_synced(view, on_synced or (lambda: None))
    source = ClusterViewSource(view)
    app = create_app(
        source,
        metrics=metrics(source.cache_status),
        max_body_bytes=settings.max_body_bytes,
        max_queued_reviews=settings.max_queued_reviews,
        max_connections=settings.max_connections,
        waiting_workers=waiting_workers,
        metrics_access=MetricsAccess(kube).check if settings.metrics_auth else None,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.cert_file),
        ssl_keyfile=str(settings.key_file),
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        http=AdmissionHttpProtocol.serving(app, settings.max_connections),
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        # Nothing here uses the client's address; the API server calls directly.
        proxy_headers=False,
    )
    config.load()
    if config.ssl is None:
        raise CertificateError("uvicorn did not set up TLS")
    context: ssl.SSLContext = harden(config.ssl)
    reloader = CertificateReloader(
        context, settings.cert_file, settings.key_file, settings.reload_interval
    ).start()
    trimmer = HeapTrimmer().start()
    log.info("serving on https://%s:%d", settings.host, settings.port)
    try:
        uvicorn.Server(config).run(sockets=None if sock is None else [sock])
    finally:
        trimmer.stop()
        reloader.stop()
        view.stop()
    return 0


def lighten_log_records() -> None:
    """Stop filling in log record fields that the JSON lines never show.

    Each record would otherwise look up the caller's frame, the thread, the
    process and the multiprocessing name: a third of the cost of the one line
    logged per review.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented switch: skip finding the caller's file and line


def _when_synced(view: ClusterView, callback: Callable[[], None]) -> None:
    def wait() -> None:
        for cache in view.caches:
            cache.wait_synced()
        # What is in memory now (modules, the first listing) is never garbage;
        # frozen, later full collections do not walk it, so their pauses stay
        # short however large the caches are.
        gc.freeze()
        callback()

    threading.Thread(target=wait, name="cache-sync-wait", daemon=True).start()
