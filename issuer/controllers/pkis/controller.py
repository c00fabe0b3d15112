"""The Pki controller: watches feed a work queue; each key is read, decided, written, recorded.

Reconcile is: read inputs (``inputs``) -> decide (``decisions``, pure) -> the
one write the verdict calls for (the Secret, ``effects``) -> conclude (pure)
-> record Events (``reporting``), write status, schedule the next look. This
module is only that sequence and the worker threads; what it shares with the
other controllers (caches, signing CAs, a rotation's re-issue pace) comes
from the runtime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from issuer.controllers.pkis.decisions.conclusion import Conclusion, conclude
from issuer.controllers.pkis.decisions.key_reuse import keeps_key, reusable_key, same_key_source
from issuer.controllers.pkis.decisions.messages import api_refusal_message
from issuer.controllers.pkis.decisions.secret_body import secret_body
from issuer.controllers.pkis.decisions.verdict import (
    Step,
    Trigger,
    Verdict,
    decide_issuance,
    refused,
)
from issuer.controllers.pkis.effects.secret_write import (
    WriteConflictError,
    delete_secret,
    drop_owner_references,
    write_secret,
)
from issuer.controllers.pkis.effects.status_write import StatusWriter
from issuer.controllers.pkis.inputs.kind import pki_kind_stays
from issuer.controllers.pkis.inputs.secrets import SecretReader, read_secret
from issuer.controllers.pkis.inputs.stored import StoredCertificate, read_stored
from issuer.controllers.pkis.inputs.watches import Watches
from issuer.controllers.pkis.reporting.metrics import certificate_series
from issuer.controllers.pkis.reporting.pki_events import (
    PkiEventRecorder,
    PodWatch,
    pki_event_recorder,
)
from issuer.controllers.pkis.reporting.pki_recorder import FanOut, PkiLogRecorder, PkiRecorder
from issuer.controllers.pkis.reporting.reasons import Reason
from issuer.runtime import issuance
from issuer.runtime.context import Runtime
from issuer.runtime.metrics import ReconcileResult
from issuer.runtime.ownership import Ownership, legacy_owner_references, ownership
from issuer.runtime.queue import WorkQueue
from issuer.runtime.shards import shard_of
from shared.kube.client import JSON, ApiError
from shared.logs import fields
from shared.validation.pki import policy_defaulted, validate_pki

log = logging.getLogger("issuer.reconcile")

CONFLICT_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Result:
    """What one reconcile did; logged as one line, and the seam for metrics."""

    key: str
    step: Step | None  # None: the Pki is gone
    why: Trigger | None = None
    reason: Reason | None = None
    serial: str | None = None
    error: str | None = None


class KeyChangedError(Exception):
    """The Secret whose key ``rotationPolicy: Never`` keeps changed between cache and read."""


class PkiController:
    """Owns the Pki watches, the queue and the workers; ``reconcile`` handles one key."""

    name = "pkis"
    sharded = True

    def __init__(
        self,
        runtime: Runtime,
        recorder: PkiRecorder,
        pod_events: tuple[PkiEventRecorder, PodWatch] | None = None,
    ) -> None:
        self.kube = runtime.kube
        self.settings = settings = runtime.settings
        self.recorder = recorder
        # Events on Pkis and their Pods, and the Pod watch that tells a Pod appearing late.
        self._pod_events = pod_events
        self.clock = runtime.clock
        self.signers = runtime.signers
        self.reissues = runtime.reissues
        self.shards = runtime.shards
        self.queue = WorkQueue(order=settings.queue_order)
        self.on_result: Callable[[Result, float], None] | None = None  # metrics
        self.watches = Watches(self.kube, runtime.caches, self.queue.add)
        self.view = self.watches.view
        self.secrets = SecretReader(self.kube, self.watches, settings.secret_sync_seconds)
        self.status = StatusWriter(self.kube)
        self.view.pkis.add_listener(self.status.cache_changed)
        runtime.reissues.listen(self._reissue)
        self._workers: list[threading.Thread] = []
        self._stopped = threading.Event()

    # -- lifecycle --------------------------------------------------------

    def start_watching(self) -> None:
        """Nothing of its own to start: the caches it reads are the runtime's."""

    def synced(self) -> bool:
        return True

    def start(self) -> None:
        """Start processing the queue; with leader election, only once leading.

        Failing Pkis are recalled from their status before any reconcile can
        resolve a failure, so the Pods told of it are told of the resolution.
        """
        if self._pod_events is not None:
            recalled = self._pod_events[0].recall(self.view.pkis.list())
            log.info("failing Pkis recalled from status", extra=fields(pkis=recalled))
        for number in range(max(1, self.settings.workers)):
            worker = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)
        if self._pod_events is not None:
            events, pod_watch = self._pod_events
            pod_watch.start(events)

    def shard_gained(self, shard: int) -> None:
        """Its Pods are listed again; its failing Pkis recalled, as at ``start``."""
        if self._pod_events is None:
            return
        events, pod_watch = self._pod_events
        pod_watch.cache.relist()
        count = self.shards.count
        gained = [
            pki
            for pki in self.view.pkis.list()
            if shard_of(str((pki.get("metadata") or {}).get("namespace")), count) == shard
        ]
        recalled = events.recall(gained)
        log.info("failing Pkis recalled from status", extra=fields(pkis=recalled, shard=shard))

    def stop(self) -> None:
        if self._pod_events is not None:
            self._pod_events[1].stop()
        self._stopped.set()
        self.queue.shutdown()
        self.watches.stop()
        for worker in self._workers:
            worker.join(timeout=10)

    def _reissue(self, authority: str, keys: list[str]) -> None:
        """A new CA of ``authority`` signs: its Pkis in the order given (each paced on its turn)."""
        for key in keys:
            self.queue.add(key)

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            started = time.monotonic()
            try:
                with self.shards.working(key.split("/", 1)[0]):  # a shard handed back waits
                    result = self.reconcile(key)
            except Exception as error:  # a bug or an API outage: back off, keep the worker
                delay = self.queue.add_rate_limited(key)
                result = Result(key, None, error=f"{type(error).__name__}: {error}")
                log.exception("reconcile failed", extra=fields(key=key, retry_in_seconds=delay))
            finally:
                self.queue.done(key)
            elapsed = time.monotonic() - started
            if result.step is not None:
                _log(result, elapsed)
            if self.on_result is not None:
                self.on_result(result, elapsed)

    # -- reconcile --------------------------------------------------------

    def reconcile(self, key: str) -> Result:
        namespace, name = key.split("/", 1)
        if not self.shards.owns(namespace):
            self.queue.forget(key)  # another replica's shard
            return Result(key, None)
        pki = self.status.freshest(key, self.watches.pki(namespace, name))
        if pki is None or (pki.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.forget(key)
            self.status.forget(key)
            self.recorder.gone(namespace, name)
            departed = self.watches.departed(key) if pki is None else None
            if departed is not None:
                self._collect(departed)
            return Result(key, None)
        now = self.clock()
        secret_name = self.watches.secret_name_of(pki)
        context = self.watches.run_time_context(namespace, secret_name)
        findings = validate_pki(pki, namespace, context)
        try:
            secret = self.secrets.get(namespace, secret_name) if secret_name else None
        except ApiError as error:
            message = api_refusal_message(
                error.status, error.message, "read", secret_name, namespace
            )
            return self._conclude(key, pki, self._refused(pki, message, now), None, now)
        authority = self.signers.authority_of(pki)
        ca = self.signers.current(authority, now)
        # A default that depends on the policy (spec.duration) is issued as it was judged.
        judged = policy_defaulted(pki, namespace, context)
        verdict = decide_issuance(judged, secret, ca, findings, now, retry=self.settings.retry)
        if verdict.step is Step.ISSUE and verdict.why is Trigger.CA_CHANGED:
            # A CA rotation re-issues every Pki of its authority: at reissueRate, not all at once.
            wait = self.reissues.wait(authority, key, now)
            if wait > timedelta(0):
                self.queue.add_after(key, wait)
                return Result(key, Step.WAIT, verdict.why)
        if verdict.step is not Step.ISSUE and legacy_owner_references(secret):
            self._release(pki, secret)
        issued = None
        if verdict.step is Step.ISSUE:
            issued_or_retry = self._issue(key, pki, secret, verdict, now)
            if isinstance(issued_or_retry, Result):
                return issued_or_retry
            verdict, issued = issued_or_retry
        return self._conclude(key, pki, verdict, issued, now)

    def _issue(
        self, key: str, pki: JSON, secret: JSON | None, verdict: Verdict, now: datetime
    ) -> tuple[Verdict, issuance.IssuedCertificate | None] | Result:
        """Sign and write the Secret; the verdict to conclude, or a Result when retrying soon."""
        desired, ca = verdict.desired, self.signers.current(self.signers.authority_of(pki), now)
        assert desired is not None and isinstance(ca, issuance.SigningCA)
        namespace = key.split("/", 1)[0]
        try:
            kept = reusable_key(verdict) or self._kept_key(namespace, desired.secret_name, verdict)
        except KeyChangedError:
            self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
            return Result(key, Step.ISSUE, verdict.why, error="secret changed while read")
        private_key = kept or issuance.generate_key(desired.key)
        issued = issuance.issue_leaf(desired.request, private_key, ca, now)
        body = secret_body(pki, desired, issued, private_key, ca, existing=secret)
        try:
            written = write_secret(self.kube, body, exists=secret is not None)
        except WriteConflictError:
            # The Secret changed under us, our cache lagged, or a create found the name
            # taken by a Secret the cache cannot see: read it directly, decide again.
            if secret is None:
                self.secrets.taken(namespace, desired.secret_name)
            self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
            return Result(key, Step.ISSUE, verdict.why, error="secret conflict")
        except ApiError as error:
            message = api_refusal_message(
                error.status, error.message, "write", desired.secret_name, namespace
            )
            return self._refused(pki, message, now), None
        version = (written.get("metadata") or {}).get("resourceVersion")
        if version:
            self.watches.wrote(namespace, desired.secret_name, str(version))
        if verdict.retire is not None:
            self._retire(pki, namespace, verdict.retire)
        return verdict, issued

    def _kept_key(
        self, namespace: str, secret_name: str, verdict: Verdict
    ) -> issuance.PrivateKey | None:
        """The key ``rotationPolicy: Never`` keeps, read from the API server.

        The issued-Secret cache holds no private key (``issuer.runtime.issued_facts``):
        the one issuance that keeps a key reads its Secret whole, once.
        """
        stored = verdict.stored
        if stored is None or not keeps_key(verdict):
            return None
        whole = read_secret(self.kube, namespace, secret_name)  # an ApiError: retried, backed off
        read = read_stored(whole) if whole is not None else "the Secret is gone"
        if not same_key_source(stored, read):
            raise KeyChangedError(secret_name)  # decided again from the cache's next version
        assert isinstance(read, StoredCertificate)
        return read.key

    def _retire(self, pki: JSON, namespace: str, name: str) -> None:
        """Delete the Secret written before spec.secretName changed, if it is still ours."""
        try:
            old = self.secrets.get(namespace, name)
            if old is not None and ownership(old, pki) is Ownership.OURS:
                uid = str((old.get("metadata") or {}).get("uid") or "")
                delete_secret(self.kube, namespace, name, uid)
        except ApiError as error:  # it stays; nothing renews it, and its name is free to take
            log.warning("old Secret not deleted", extra=fields(secret=name, error=str(error)))

    def _collect(self, pki: JSON) -> None:
        """Delete the Secret of a Pki that was deleted; keep it if the Pki kind is going.

        Issued Secrets carry no ownerReference (a reinstall would lose them), so
        deleting a Pki's Secret is the issuer's job. An uninstall deletes the
        CRD, which deletes every Pki: those Secrets stay, for apps to keep
        serving and a reinstall to adopt. A Pki deleted while no issuer runs
        is not seen, and its Secret stays until deleted by hand.
        """
        namespace = str((pki.get("metadata") or {}).get("namespace"))
        name = self.watches.secret_name_of(pki)
        try:
            if not pki_kind_stays(self.kube):
                log.info("Pki CRD is being deleted: Secret kept", extra=fields(secret=name))
                return
            secret = self.secrets.get(namespace, name)
            if secret is not None and ownership(secret, pki) is Ownership.OURS:
                uid = str((secret.get("metadata") or {}).get("uid") or "")
                delete_secret(self.kube, namespace, name, uid)
                log.info(
                    "Secret of a deleted Pki deleted",
                    extra=fields(namespace=namespace, secret=name),
                )
        except ApiError as error:  # kept: deleting too much is worse than too little
            log.warning(
                "Secret of a deleted Pki kept",
                extra=fields(namespace=namespace, secret=name, error=str(error)),
            )

    def _release(self, pki: JSON, secret: JSON | None) -> None:
        """Remove an earlier release's ownerReference from our Secret, without re-issuing."""
        if secret is None or ownership(secret, pki) is not Ownership.OURS:
            return
        metadata = secret.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        try:
            drop_owner_references(self.kube, namespace, name, str(metadata.get("resourceVersion")))
        except ApiError as error:
            log.warning("ownerReference not removed", extra=fields(secret=name, error=str(error)))

    def _refused(self, pki: JSON, message: str, now: datetime) -> Verdict:
        return refused(pki, message, now, retry=self.settings.retry)

    def _conclude(
        self,
        key: str,
        pki: JSON,
        verdict: Verdict,
        issued: issuance.IssuedCertificate | None,
        now: datetime,
    ) -> Result:
        """Tell people, write status, look again when due.

        On success the Event comes before the status: a crash in between is
        noticed on restart (status lacks the serial) and the Event is posted
        again (aggregated) instead of being lost.
        """
        conclusion = conclude(pki, verdict, issued, now)
        self._record_event(pki, conclusion)
        written = self.status.write(key, pki, conclusion.outcome, now)
        if verdict.step is Step.WAIT and not written:
            self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
            return Result(key, Step.WAIT, error="status conflict")
        if not written:  # a lost status write is redone from the Secret
            self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
        if verdict.step is not Step.FAIL:
            self.queue.forget(key)
        self.queue.add_after(key, conclusion.requeue_at - now)
        facts = conclusion.outcome.certificate
        said = conclusion.event
        return Result(
            key,
            verdict.step,
            verdict.why,
            verdict.reason or (said.reason if issued is not None and said is not None else None),
            serial=facts.serial if facts is not None and verdict.step is not Step.FAIL else None,
            error=verdict.message or None,
        )

    def _record_event(self, pki: JSON, conclusion: Conclusion) -> None:
        said = conclusion.event
        if said is None:
            return
        if said.reason.is_failure:
            self.recorder.failed(pki, said.reason, said.message)
        else:
            self.recorder.succeeded(pki, said.reason, said.message, again=said.again)


def _log(result: Result, seconds: float) -> None:
    namespace, name = result.key.split("/", 1)
    log.log(
        logging.WARNING if result.step is Step.FAIL else logging.INFO,
        "reconciled",
        extra=fields(
            namespace=namespace,
            pki=name,
            action=result.step.value if result.step else None,
            why=result.why.value if result.why else None,
            reason=result.reason.value if result.reason else None,
            serial=result.serial,
            error=result.error,
            ms=round(seconds * 1000, 1),
        ),
    )


def reconcile_result(action: Step | None, error: str | None) -> ReconcileResult:
    """controller-runtime's result label for one reconcile outcome.

    A failed issuance is an ``error`` (it will be retried); a reconcile that
    had to be repeated at once (a write conflict) is a ``requeue``; anything
    else, including a deleted Pki, a ``success``.
    """
    if action is Step.FAIL or (action is None and error):
        return ReconcileResult.ERROR
    if error:
        return ReconcileResult.REQUEUE
    return ReconcileResult.SUCCESS


def build(runtime: Runtime) -> PkiController:
    """The Pki controller with its Events (on Pkis and consuming Pods) and metrics."""
    if runtime.recorder is None:
        controller = PkiController(runtime, PkiLogRecorder())
    else:
        shards = runtime.shards
        events, pod_watch = pki_event_recorder(
            runtime.kube,
            runtime.recorder,
            event_ttl=runtime.settings.event_ttl,
            admit=shards.owns if shards.sharded else None,
        )
        recorder = FanOut([PkiLogRecorder(), events])
        controller = PkiController(runtime, recorder, (events, pod_watch))
    metrics = runtime.metrics
    controller.on_result = lambda result, seconds: metrics.observe_reconcile(
        reconcile_result(result.step, result.error), seconds
    )
    metrics.track_queue_depth(lambda: len(controller.queue))
    controller.queue.observer = metrics.queue_observer()
    metrics.add_series(certificate_series(controller.view.pkis))
    return controller
