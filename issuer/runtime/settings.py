"""Everything the issuer is told on its command line, in one object passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from issuer.runtime.ready import QueueOrder
from shared.backoff import Backoff

# When the kubelet is told to ask again for a Pod certificate: at 2/3 of its
# lifetime, as Pkis renew. The API server moves it into [notBefore + 10m,
# notAfter - 10m] in any case, so 0 means "as early as the API allows".
POD_REFRESH_FRACTION = 2 / 3
# How far a Pod certificate's notBefore goes back: a peer whose clock is a little
# behind accepts it; the API server wants it within 5 minutes of its own clock.
POD_BACKDATE = timedelta(minutes=1)
POD_BACKDATE_LIMIT = timedelta(minutes=5)


@dataclass(frozen=True)
class Settings:
    namespace: str = "pkiwarden-system"  # the issuer's own namespace, home of the CA
    ca_secret: str = "pkiwarden-ca"  # the CA Secret of ``authority``
    # A reconcile mostly waits on the API server (its crypto is well under a
    # millisecond for ECDSA), so workers overlap requests rather than compete
    # for the GIL: 8 went from ~70 to ~90 Pkis/s in a 1,000-Pki burst over 4.
    workers: int = 8
    health_port: int = 8080  # /healthz, /readyz and /metrics; 0 = any free port, -1 = off
    leader_elect: bool = True
    kubeconfig: str | None = None
    sync_timeout_seconds: float = 60.0
    secret_sync_seconds: float = 5.0  # wait for a namespace's Secret cache before a direct read
    # How long the API server keeps an Event (kube-apiserver --event-ttl): a
    # failure's Events are written again before that, whatever the retry backoff.
    event_ttl: timedelta = timedelta(hours=1)
    retry: Backoff = field(default_factory=Backoff)  # after a failed issuance
    # The issuer's own authority: its CA is ``ca_secret``, and the API's default
    # authority name ("default") stands for it. Every other PkiAuthority is served too.
    authority: str = "default"
    # How often the authority controller looks again when no watch wakes it: rotation
    # progress is read from the Pkis' Secrets, which it does not watch itself.
    authority_tick_seconds: float = 1.0
    # ... and how often once every authority is Stable with trust published: then
    # only time changes what it reads (a CA's renewal time, a leaf's expiry).
    authority_idle_seconds: float = 10.0
    # Ready Pkis are taken round-robin across namespaces; fifo (first come, first
    # served, as earlier releases did) only for comparing the two.
    queue_order: QueueOrder = QueueOrder.FAIR
    # >= 0: /metrics over HTTPS on this port (0: any free one) for tokens granted
    # get on /metrics (TokenReview + SubjectAccessReview), and no longer on the
    # plain health port; -1: on the plain health port, for local development.
    metrics_port: int = -1
    # > 1: namespaces are split into this many shards, one Lease each; a replica
    # caches and works only the shards it leads (issuer/runtime/shards.py).
    shards: int = 1
    # leaseDurationSeconds of the issuer's Lease(s); renewal and retry follow
    # client-go's proportions (10 s and 2 s of 15 s).
    lease_duration_seconds: float = 15.0
    # Pod certificates: beginRefreshAt as a fraction of the lifetime, and notBefore's backdate.
    pod_refresh_fraction: float = POD_REFRESH_FRACTION
    pod_backdate: timedelta = POD_BACKDATE
