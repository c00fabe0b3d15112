"""The reconcile loop: watches feed a work queue; each key is read, decided, acted on, reported.

Reconcile is: read inputs (``issuer.inputs``) -> decide (``issuer.decide``,
pure) -> the one write the verdict calls for (the Secret, ``issuer.act``) ->
conclude (pure) -> tell people (``issuer.reporting``), write status, schedule
the next look. This module is only that sequence and the worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from issuer import issuance
from issuer.act.secret_write import (
    WriteConflictError,
    delete_secret,
    drop_owner_references,
    write_secret,
)
from issuer.act.status_write import StatusWriter
from issuer.decide.conclusion import Conclusion, conclude
from issuer.decide.key_reuse import reusable_key
from issuer.decide.messages import api_refusal_message
from issuer.decide.ownership import Ownership, legacy_owner_references, ownership
from issuer.decide.secret_body import secret_body
from issuer.decide.verdict import Step, Trigger, Verdict, decide_issuance, refused
from issuer.inputs.kind import pki_kind_stays
from issuer.inputs.secrets import SecretReader
from issuer.inputs.watches import Watches
from issuer.queue import WorkQueue
from issuer.reporting.reasons import Reason
from issuer.reporting.reporter import Reporter
from issuer.settings import Settings
from shared.clock import Clock, utc_now
from shared.kube.client import JSON, ApiError, Kube
from shared.logs import fields
from shared.validation import policy_defaulted, validate_pki

log = logging.getLogger("issuer.reconcile")

CONFLICT_RETRY_SECONDS = 0.5


class ReissuePace(Protocol):
    """The CA rotation's bound on re-issues (``issuer.authority.pacing.Pacer``)."""

    def wait(self, key: str, now: datetime) -> timedelta: ...


@dataclass(frozen=True)
class Result:
    """What one reconcile did; logged as one line, and the seam for metrics."""

    key: str
    step: Step | None  # None: the Pki is gone
    why: Trigger | None = None
    reason: Reason | None = None
    serial: str | None = None
    error: str | None = None


class Controller:
    """Owns the watches, the queue and the workers; ``reconcile`` handles one key."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        reporter: Reporter,
        clock: Clock = utc_now,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """``owns``: the namespaces this replica works (its shards); None: all of them."""
        self.kube = kube
        self.settings = settings
        self.reporter = reporter
        self.clock = clock
        self.queue = WorkQueue(order=settings.queue_order)
        self.on_result: Callable[[Result, float], None] | None = None  # metrics
        self.pacer: ReissuePace | None = None  # the authority's re-issue pace, during a CA rotation
        self._owns = owns
        self.watches = Watches(kube, settings, self.queue.add, admit=owns)
        self.view = self.watches.view
        self.secrets = SecretReader(kube, self.watches, settings.secret_sync_seconds)
        self.status = StatusWriter(kube)
        self.view.pkis.add_listener(self.status.cache_changed)
        self._workers: list[threading.Thread] = []
        self._stopped = threading.Event()

    # -- lifecycle --------------------------------------------------------

    def start_watching(self) -> None:
        self.watches.start()

    def synced(self) -> bool:
        return self.watches.synced()

    def wait_synced(self, timeout: float) -> bool:
        return self.watches.wait_synced(timeout, self._stopped)

    def start_workers(self) -> None:
        """Start processing the queue; with leader election, only once leading."""
        for number in range(max(1, self.settings.workers)):
            worker = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stopped.set()
        self.queue.shutdown()
        self.watches.stop()
        for worker in self._workers:
            worker.join(timeout=10)

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            started = time.monotonic()
            try:
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
        if self._owns is not None and not self._owns(namespace):
            self.queue.forget(key)  # another replica's shard
            return Result(key, None)
        pki = self.status.freshest(key, self.watches.pki(namespace, name))
        if pki is None or (pki.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.forget(key)
            self.status.forget(key)
            self.reporter.gone(namespace, name)
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
        ca = self.watches.ca.current(now)
        # A default that depends on the policy (spec.duration) is issued as it was judged.
        judged = policy_defaulted(pki, namespace, context)
        verdict = decide_issuance(judged, secret, ca, findings, now, retry=self.settings.retry)
        if verdict.step is Step.ISSUE and verdict.why is Trigger.CA_CHANGED and self.pacer:
            # A CA rotation re-issues every Pki: at reissueRate, not all at once.
            wait = self.pacer.wait(key, now)
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
        desired, ca = verdict.desired, self.watches.ca.current(now)
        assert desired is not None and isinstance(ca, issuance.SigningCA)
        namespace = key.split("/", 1)[0]
        private_key = reusable_key(verdict) or issuance.generate_key(desired.key)
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
        self._announce(pki, conclusion)
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
        said = conclusion.announcement
        return Result(
            key,
            verdict.step,
            verdict.why,
            verdict.reason or (said.reason if issued is not None and said is not None else None),
            serial=facts.serial if facts is not None and verdict.step is not Step.FAIL else None,
            error=verdict.message or None,
        )

    def _announce(self, pki: JSON, conclusion: Conclusion) -> None:
        said = conclusion.announcement
        if said is None:
            return
        if said.reason.is_failure:
            self.reporter.failed(pki, said.reason, said.message)
        else:
            self.reporter.succeeded(pki, said.reason, said.message, again=said.again)


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
