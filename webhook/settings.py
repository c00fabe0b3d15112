"""Everything the webhook process can be told, in one value passed down from the CLI.

No module reads the environment or a global on its own: a test builds a
``WebhookSettings`` with what it needs and gets exactly that behaviour.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

# The API server reuses idle connections for up to 90 s (Go's http.Transport
# default); if we closed them sooner it would sometimes write a request into a
# connection we are closing and report EOF. So we wait longer than it does.
KEEP_ALIVE_SECONDS = 120
# AdmissionReviews carry one object (etcd's limit is ~1.5 MiB) plus its old
# version; anything larger is not a review the API server would send.
MAX_BODY_BYTES = 3 * 1024 * 1024
# Reviews a process may have accepted and not yet answered before it refuses
# more (429, retry). A review costs about 0.3 ms of CPU, so the last one
# accepted waits about 60 ms of work, well inside the API server's timeout
# even when its core is shared.
MAX_QUEUED_REVIEWS = 200
# Connections a process keeps open; past it each is closed after one answer.
# The API server holds at most its in-flight limit (400 + 200 by default)
# open across all replicas; each connection costs tens of KiB.
MAX_CONNECTIONS = 1000
# How long a stopping process gives the reviews it has started before it
# cancels them: below a Pod's default 30 s grace period, and far above the
# API server's 10 s webhook timeout, so only a stuck client is cut off.
SHUTDOWN_GRACE_SECONDS = 20


@dataclass(frozen=True)
class CertificateSettings:
    """Where the webhook's own serving certificate lives and how long it lasts."""

    namespace: str = "pkiwarden-system"
    service_name: str = "pkiwarden-webhook"
    secret_name: str = "pkiwarden-webhook-tls"
    # The CA certificates alone (no key), for scrapers to trust: the Secret
    # above also holds the CA key, which nothing but the webhook may read.
    ca_config_map: str = "pkiwarden-webhook-ca"
    webhook_configuration: str = "pkiwarden"
    # Local mode: the API server calls https://127.0.0.1:PORT, so the
    # certificate needs that IP address as a SAN.
    local: bool = False
    ca_lifetime: dt.timedelta = dt.timedelta(days=3650)
    serving_lifetime: dt.timedelta = dt.timedelta(days=365)

    @property
    def dns_names(self) -> list[str]:
        service = f"{self.service_name}.{self.namespace}"
        return [self.service_name, service, f"{service}.svc", f"{service}.svc.cluster.local"]


@dataclass(frozen=True)
class WebhookSettings:
    """Settings of ``pkiwarden webhook serve``."""

    host: str = "0.0.0.0"  # a Pod serves on all its interfaces
    port: int = 8443
    cert_dir: Path = Path("/var/run/pkiwarden/webhook-tls")
    kubeconfig: str | None = None
    manage_certs: bool = True
    # /metrics only for bearer tokens allowed to get it (TokenReview and
    # SubjectAccessReview); off only for local development.
    metrics_auth: bool = True
    certs: CertificateSettings = CertificateSettings()
    keep_alive_seconds: int = KEEP_ALIVE_SECONDS
    max_body_bytes: int = MAX_BODY_BYTES
    max_queued_reviews: int = MAX_QUEUED_REVIEWS
    max_connections: int = MAX_CONNECTIONS
    shutdown_grace_seconds: int = SHUTDOWN_GRACE_SECONDS
    # Processes serving the port, each with its own caches (see the README).
    workers: int = 1
    # How often the certificate files are checked for a change on disk.
    reload_interval: float = 2.0
    # How often the Secret is checked for rotation (at 2/3 of the certificate's life).
    rotation_check_interval: float = 600.0

    @property
    def cert_file(self) -> Path:
        return self.cert_dir / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.cert_dir / "tls.key"
