"""The Pod certificate controller: one answer per PodCertificateRequest for pkiwarden's signers.

Every authority the issuer serves is a signer, ``pkiwarden.dev/<authority>``.
A request is read (``inputs``), judged by the module the webhook uses
(``shared.validation.pod_certificate``), decided (``decisions``, pure),
signed and answered (``effects``); a refusal is told on the Pod
(``reporting``). It reads the runtime's caches (policies, namespaces,
PkiAuthorities, the CA Secrets through the signers) and watches two of its
own: the requests, and the ClusterTrustBundles it keeps for each signer. It
meets the authority controller only through the runtime
(``runtime.dependents``: the Pod certificates a rotation waits for).

A CA that cannot sign is a run-time problem an administrator fixes; the
kubelet takes ``Failed`` as final for the Pod, so the request is retried (and
the Pod told at each retry) for ``fail_after`` before it is failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from issuer.controllers.podcerts.decisions.answer import (
    Answer,
    AnswerReason,
    Refuse,
    Sign,
    decide_answer,
)
from issuer.controllers.podcerts.decisions.dependents import depending_on_others
from issuer.controllers.podcerts.effects.signing import certificate_chain, sign_pod_certificate
from issuer.controllers.podcerts.effects.status import (
    issued_status,
    refused_status,
    write_status,
)
from issuer.controllers.podcerts.effects.trust_bundles import TrustBundlePublisher
from issuer.controllers.podcerts.inputs.issued import IssuedPodCertificate, issued_certificate
from issuer.controllers.podcerts.inputs.requests import (
    POD_CERTIFICATE_REQUESTS,
    PodCertificateRequest,
    read_request,
)
from issuer.controllers.podcerts.reporting.metrics import PodCertificateMetrics
from issuer.controllers.podcerts.reporting.pod_events import tell_pod
from issuer.runtime import issuance
from issuer.runtime.context import Runtime
from issuer.runtime.queue import WorkQueue
from issuer.runtime.signers import CAProblem
from shared.certificates import serial_hex
from shared.kube.cache import WatchCache, object_key
from shared.kube.client import JSON, ApiError
from shared.logs import fields
from shared.pod_certificates import DEFAULT_TRUST_DOMAIN, authority_of, signer_name
from shared.validation.pod_certificate import REQUEST_PATHS, AskContext, judge_pod_certificate

log = logging.getLogger("issuer.podcerts")

FAIL_AFTER = timedelta(minutes=5)
WORKERS = 2  # each answer is one signature and one write


def trust_domain(authority: Mapping[str, Any] | None) -> str:
    """``spec.trustDomain`` of a PkiAuthority; ``cluster.local`` when left out."""
    value = ((authority or {}).get("spec") or {}).get("trustDomain")
    return value if isinstance(value, str) and value else DEFAULT_TRUST_DOMAIN


class PodCertificateController:
    """The signer ``pkiwarden.dev/<authority>`` for every authority the issuer serves."""

    name = "podcerts"
    # Cluster-wide: with --shards, shard 0's holder signs every request (they
    # are few and small; the signer keeps no per-namespace state worth dividing).
    sharded = False

    def __init__(self, runtime: Runtime, *, fail_after: timedelta = FAIL_AFTER) -> None:
        self.kube = runtime.kube
        self.view = runtime.caches.view
        self.authorities = runtime.caches.authorities
        self.signers = runtime.signers
        self.recorder = runtime.recorder
        self.clock = runtime.clock
        self.fail_after = fail_after
        self.refresh_fraction = runtime.settings.pod_refresh_fraction
        self.backdate = runtime.settings.pod_backdate
        self.queue = WorkQueue()
        self.requests = WatchCache(self.kube, POD_CERTIFICATE_REQUESTS, on_change=self._changed)
        self.metrics = PodCertificateMetrics(runtime.metrics.registry, self.oldest_pending)
        self.bundles = TrustBundlePublisher(self.kube, self.signers.names, self._trust)
        # (namespace, name) -> (resourceVersion, what its certificate is), parsed once.
        self._issued: dict[tuple[str, str], tuple[str, IssuedPodCertificate | None]] = {}
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.authorities.add_listener(self._authority_changed)
        runtime.caches.ca_secrets.listeners.add(lambda kind, secret: self.bundles.wake())
        runtime.dependents.add(self.depending_on_others)

    # -- lifecycle --------------------------------------------------------

    @property
    def caches(self) -> list[WatchCache]:
        return [self.requests, self.bundles.cache]

    def start_watching(self) -> None:
        for cache in self.caches:
            cache.start()

    def synced(self) -> bool:
        return all(c.synced.is_set() or c.denied.is_set() for c in self.caches)

    def start(self) -> None:
        for request in self.requests.list():
            self._changed("ADDED", request)
        for number in range(WORKERS):
            thread = threading.Thread(target=self._work, name=f"podcerts-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.bundles.start()

    def shard_gained(self, shard: int) -> None:
        """Nothing per shard: it watches every namespace's requests."""

    def stop(self) -> None:
        self._stopped.set()
        self.queue.shutdown()
        self.bundles.stop()
        for cache in self.caches:
            cache.stop()
        for thread in self._threads:
            thread.join(timeout=10)

    # -- what wakes -------------------------------------------------------

    def _changed(self, kind: str, request: JSON) -> None:
        signer = str((request.get("spec") or {}).get("signerName") or "")
        if kind == "DELETED" or authority_of(signer) is None:
            return
        if read_request(request).concluded is None:
            self.queue.add("/".join(object_key(request)))

    def _authority_changed(self, kind: str, authority: JSON) -> None:
        """A new PkiAuthority may answer waiting requests, and has trust to publish."""
        for request in self.requests.list():
            self._changed("MODIFIED", request)
        self.bundles.wake()

    def _trust(self, authority: str) -> bytes | None:
        """The authority's trust set: its CA Secret's ca.crt (the authority controller's)."""
        ca = self.signers.current(authority, self.clock())
        return None if isinstance(ca, CAProblem) else ca.trust

    def oldest_pending(self) -> float:
        now = self.clock()
        ages = [
            (now - created).total_seconds()
            for request in self.requests.list()
            if authority_of(str((request.get("spec") or {}).get("signerName") or "")) is not None
            and (read := read_request(request)).concluded is None
            and (created := read.created) is not None
        ]
        return max(ages, default=0.0)

    def depending_on_others(self, authority: str, active_key_id: bytes, now: datetime) -> int:
        """Pods whose current certificate from ``authority`` a CA other than the active signed."""
        signer = signer_name(authority)
        seen: dict[tuple[str, str], tuple[str, IssuedPodCertificate | None]] = {}
        for request in self.requests.list():
            if (request.get("spec") or {}).get("signerName") != signer:
                continue
            key = object_key(request)
            version = str((request.get("metadata") or {}).get("resourceVersion"))
            memo = self._issued.get(key)
            fresh = memo if memo and memo[0] == version else None
            seen[key] = fresh or (version, issued_certificate(request))
        self._issued = {**{k: v for k, v in self._issued.items() if k not in seen}, **seen}
        certificates = [issued for _, issued in seen.values() if issued is not None]
        return depending_on_others(certificates, active_key_id, now)

    # -- work -------------------------------------------------------------

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                if self.answer(key):
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
            except Exception:  # an API outage or a bug: back off, keep the worker
                delay = self.queue.add_rate_limited(key)
                log.exception("answering failed", extra=fields(key=key, retry_in_seconds=delay))
            finally:
                self.queue.done(key)

    def answer(self, key: str) -> bool:
        """Answer one request; True when it is to be looked at again, after a backoff."""
        namespace, name = key.split("/", 1)
        body = self.requests.get(namespace, name)
        if body is None:
            return False
        request = read_request(body)
        if request.concluded is not None:
            return False
        now = self.clock()
        authority = self.authorities.get("", request.ask.authority)
        known = frozenset(self.signers.names())
        ns = self.view.namespaces.get("", namespace)
        context = AskContext(
            policies=self.view.policies.list(),
            namespace_labels=((ns or {}).get("metadata") or {}).get("labels") or {},
            authorities=known if self.authorities.synced.is_set() else None,
            at_run_time=True,
        )
        judgement = judge_pod_certificate(request.ask, REQUEST_PATHS, context)
        ca = self.signers.current(request.ask.authority, now)
        ca_not_after = (
            f"the CA of {request.ask.signer} cannot sign: {ca.message}"
            if isinstance(ca, CAProblem)
            else ca.certificate.not_valid_after_utc
        )
        decision = decide_answer(
            request,
            judgement,
            ca_not_after,
            trust_domain(authority),
            now,
            refresh_fraction=self.refresh_fraction,
            backdate=self.backdate,
        )
        if isinstance(decision, Sign):
            assert isinstance(ca, issuance.SigningCA) and request.public_key is not None
            return self._sign(body, request, decision, request.public_key, ca, now)
        return self._refuse(body, request, decision, now)

    def _sign(  # noqa: PLR0917
        self,
        body: JSON,
        request: PodCertificateRequest,
        decision: Sign,
        public_key: CertificatePublicKeyTypes,
        ca: issuance.SigningCA,
        now: datetime,
    ) -> bool:
        leaf = sign_pod_certificate(decision, public_key, ca)
        status = issued_status(decision, certificate_chain(leaf, ca), now)
        if not self._write(body, status):
            return False
        waited = (now - request.created).total_seconds() if request.created else None
        self._answered(request, Answer.ISSUED, AnswerReason.ISSUED, waited)
        log.info(
            "pod certificate issued",
            extra=fields(
                request=f"{request.namespace}/{request.name}",
                pod=request.pod_name,
                serial=serial_hex(leaf.serial_number),
                not_after=decision.not_after.isoformat(),
            ),
        )
        return False

    def _refuse(
        self, body: JSON, request: PodCertificateRequest, decision: Refuse, now: datetime
    ) -> bool:
        # Event before status: a crash in between tells the Pod twice, never not at all.
        if self.recorder is not None:
            tell_pod(self.recorder, request, decision.reason, decision.message)
            self.metrics.wrote("event")
        created = request.created
        if decision.answer is Answer.FAILED and created and now - created < self.fail_after:
            return True
        status = refused_status(decision.answer, decision.reason, decision.message, now)
        if self._write(body, status):
            self._answered(request, decision.answer, decision.reason, None)
            log.warning(
                "pod certificate refused",
                extra=fields(
                    request=f"{request.namespace}/{request.name}",
                    pod=request.pod_name,
                    answer=decision.answer.value,
                    reason=decision.reason.value,
                    message=decision.message,
                ),
            )
        return False

    def _write(self, body: JSON, status: JSON) -> bool:
        """Write the answer; False when another writer answered first (nothing left to do)."""
        try:
            write_status(self.kube, body, status)
        except ApiError as error:
            if error.conflict:
                return False
            raise
        self.metrics.wrote("status")
        return True

    def _answered(
        self,
        request: PodCertificateRequest,
        answer: Answer,
        reason: AnswerReason,
        seconds: float | None,
    ) -> None:
        self.metrics.answered(request.ask.signer, answer.value, reason.value, seconds)


def build(runtime: Runtime) -> PodCertificateController:
    return PodCertificateController(runtime)
