"""The reconcile loop: caches feed a work queue; each key is read, planned, acted on, reported.

Reconcile is: read inputs from caches -> re-validate with ``shared`` -> ``plan``
-> the one write the plan calls for (the Secret) -> status -> Reporter. The
decision lives in :mod:`issuer.plan`; this module is the I/O around it, kept
thin enough to read at once.

Which changes enqueue what:
- a Pki added, deleted, or given a new generation (status-only updates are
  ignored, else writing status would loop);
- one of our Secrets changing (by label), which wakes its Pki;
- the CA Secret, a PkiPolicy or a namespace's labels changing, which can
  change the outcome of many Pkis, so all affected ones are enqueued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from issuer import x509 as pki_x509
from issuer.ca import CAProblem, load_ca
from issuer.consumers import consumptions
from issuer.plan import (
    Action,
    Plan,
    Trigger,
    plan,
    previous_failures,
    renewal_time,
    retry_delay,
)
from issuer.queue import WorkQueue
from issuer.reasons import Reason, Reporter
from issuer.report import secret_name
from issuer.secret import (
    OWNED_SELECTOR,
    WriteConflictError,
    read_secret,
    render_secret,
    write_secret,
)
from issuer.secret_index import SecretNameIndex
from issuer.status import CertificateFacts, Outcome, next_status, status_patch, timestamp
from shared import PKI_LABEL, defaults
from shared.kube.cache import WatchCache, object_key
from shared.kube.client import JSON, NAMESPACES, PKI_POLICIES, PKIS, PODS, SECRETS, ApiError, Kube
from shared.kube.namespaced import PerNamespaceCaches
from shared.kube.view import ClusterView
from shared.logs import fields
from shared.validation import Context, validate_pki

log = logging.getLogger("issuer.reconcile")

Clock = Callable[[], datetime]
CONFLICT_RETRY_SECONDS = 0.5


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Settings:
    """Everything the issuer is told on its command line, in one object passed down."""

    namespace: str = "pkiwarden-system"  # the issuer's own namespace, home of the CA
    ca_secret: str = "pkiwarden-ca"
    # A reconcile mostly waits on the API server (its crypto is well under a
    # millisecond for ECDSA), so workers overlap requests rather than compete
    # for the GIL: 8 went from ~70 to ~90 Pkis/s in a 1,000-Pki burst over 4.
    workers: int = 8
    health_port: int = 8080  # /healthz, /readyz and (part 2) /metrics; 0 = off
    leader_elect: bool = True
    kubeconfig: str | None = None
    sync_timeout_seconds: float = 60.0
    secret_sync_seconds: float = 5.0  # wait for a namespace's Secret cache before a direct read


@dataclass(frozen=True)
class Result:
    """What one reconcile did; logged as one line, and the seam for metrics."""

    key: str
    action: Action | None  # None: the Pki is gone
    why: Trigger | None = None
    reason: Reason | None = None
    serial: str | None = None
    error: str | None = None


def pki_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class Controller:
    """Owns the caches, the queue and the workers; ``reconcile`` handles one key."""

    def __init__(
        self, kube: Kube, settings: Settings, reporter: Reporter, clock: Clock = utc_now
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.reporter = reporter
        self.clock = clock
        self.queue = WorkQueue()
        self.on_result: Callable[[Result, float], None] | None = None  # part 2: metrics
        self._generations: dict[str, tuple[str, int]] = {}
        self._secret_names: dict[tuple[str, str], tuple[str, str]] = {}
        self._secret_index = SecretNameIndex()
        # Secret names a create found taken by a Secret our cache does not hold.
        self._taken: set[tuple[str, str]] = set()
        # (namespace, Secret) -> resourceVersion of our last write of it.
        self._own_writes: dict[tuple[str, str], str] = {}
        self._written: dict[str, tuple[str, JSON]] = {}  # key -> (version patched, result)
        self._workers: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.view = ClusterView(
            policies=WatchCache(kube, PKI_POLICIES, on_change=self._on_policy),
            namespaces=WatchCache(
                kube, NAMESPACES, metadata_only=True, on_change=self._on_namespace
            ),
            pkis=WatchCache(kube, PKIS, on_change=self._on_pki),
        )
        self.secrets = PerNamespaceCaches(
            kube, SECRETS, label_selector=OWNED_SELECTOR, on_change=self._on_secret
        )
        self.ca_cache = WatchCache(
            kube,
            SECRETS,
            namespace=settings.namespace,
            field_selector=f"metadata.name={settings.ca_secret}",
            on_change=self._on_ca,
        )
        # New Pods of a failing Pki's consumers are told at once, not at the
        # next retry, which backs off up to an hour.
        self.pods = WatchCache(kube, PODS, on_change=self._on_pod)
        self._ca_memo: tuple[str, pki_x509.SigningCA | CAProblem] | None = None
        self._ca_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------

    def start_watching(self) -> None:
        """Start the caches; safe before leadership (reading is harmless)."""
        for cache in (*self.view.caches, self.ca_cache, self.pods):
            cache.start()

    def synced(self) -> bool:
        return self.view.synced() and self.ca_cache.synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.synced():
            if self._stopped.is_set() or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def start_workers(self) -> None:
        """Start processing the queue; with leader election, only once leading."""
        for number in range(max(1, self.settings.workers)):
            worker = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stopped.set()
        self.queue.shutdown()
        self.view.stop()
        self.secrets.stop()
        self.ca_cache.stop()
        self.pods.stop()
        for worker in self._workers:
            worker.join(timeout=10)

    # -- what enqueues ----------------------------------------------------

    def _on_pki(self, kind: str, pki: JSON) -> None:
        namespace, name = object_key(pki)
        key = pki_key(namespace, name)
        metadata = pki.get("metadata") or {}
        seen = (str(metadata.get("uid")), int(metadata.get("generation") or 0))
        if kind == "DELETED":
            self._generations.pop(key, None)
            self._written.pop(key, None)
            self._secret_names.pop((namespace, name), None)
            self._secret_index.update(namespace, name, None)
            self.queue.add(key)
            return
        self.secrets.ensure(namespace)
        if kind == "MODIFIED" and self._generations.get(key) == seen:
            return  # a status update (often our own): nothing to do
        self._generations[key] = seen
        self._secret_index.update(namespace, name, pki)  # secretName is spec: new generation
        self.queue.add(key)

    def _on_secret(self, kind: str, secret: JSON) -> None:
        """Wake the owning Pki, unless this is the echo of the write its reconcile just made.

        That reconcile wrote the Secret, then status (or scheduled a retry of
        it), and scheduled the renewal; reconciling the very resourceVersion it
        wrote would re-parse and re-verify our own certificate for nothing. Any
        other version (altered, deleted, re-created by someone) wakes the Pki.
        """
        namespace, name = object_key(secret)
        metadata = secret.get("metadata") or {}
        written = self._own_writes.pop((namespace, name), None)
        if kind != "DELETED" and written is not None and written == metadata.get("resourceVersion"):
            return
        owner = (metadata.get("labels") or {}).get(PKI_LABEL)
        if owner:
            self.queue.add(pki_key(namespace, str(owner)))

    def _on_ca(self, kind: str, secret: JSON) -> None:
        self._enqueue_all()

    def _on_policy(self, kind: str, policy: JSON) -> None:
        self._enqueue_all()

    def _on_namespace(self, kind: str, namespace: JSON) -> None:
        if kind == "MODIFIED":
            self._enqueue_all(object_key(namespace)[1])

    def _on_pod(self, kind: str, pod: JSON) -> None:
        """Wake the failing Pkis whose Secret a new Pod reads, so it is told within seconds."""
        if kind != "ADDED":
            return
        namespace = object_key(pod)[0]
        for pki in self.view.pkis.list(namespace):
            if _failing(pki) and consumptions(pod, secret_name(pki)):
                self.queue.add(pki_key(*object_key(pki)))

    def _enqueue_all(self, namespace: str | None = None) -> None:
        for pki in self.view.pkis.list(namespace):
            self.queue.add(pki_key(*object_key(pki)))

    # -- workers ----------------------------------------------------------

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
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
            if self.on_result is not None:
                self.on_result(result, elapsed)

    # -- reconcile --------------------------------------------------------

    def ca(self) -> pki_x509.SigningCA | CAProblem:
        """The CA, parsed once per version of its Secret (and re-checked for expiry)."""
        secret = self.ca_cache.get(self.settings.namespace, self.settings.ca_secret)
        version = str(((secret or {}).get("metadata") or {}).get("resourceVersion", ""))
        with self._ca_lock:
            memo = self._ca_memo
        now = self.clock()
        if memo is not None and memo[0] == version:
            loaded = memo[1]
            if isinstance(loaded, CAProblem) or now < loaded.certificate.not_valid_after_utc:
                return loaded
        loaded = load_ca(secret, self.settings.namespace, self.settings.ca_secret, now)
        with self._ca_lock:
            self._ca_memo = (version, loaded)
        return loaded

    def _secret_for(self, namespace: str, name: str) -> JSON | None:
        """Our cached Secret; a direct read only where the cache cannot tell.

        A synced cache holds every Secret we own in the namespace, so a name
        missing from it is free or someone else's. A GET per new Pki to tell
        the two apart would cost a request on every issuance; instead the
        create that follows is left to find out (409, see ``_issue``), and a
        name found taken that way is read directly from then on, so a foreign
        Secret is decided on its real content and never overwritten.
        """
        cache = self.secrets.synced_cache(namespace, self.settings.secret_sync_seconds)
        if cache is not None:
            cached = cache.get(namespace, name)
            if cached is not None:
                self._taken.discard((namespace, name))
                return cached
            if (namespace, name) not in self._taken:
                return None
        secret = read_secret(self.kube, namespace, name)
        if secret is None:
            self._taken.discard((namespace, name))
        return secret

    def _freshest(self, key: str, cached: JSON | None) -> JSON | None:
        """The cached Pki, or the one our last status write returned if the cache lags behind it.

        Without this, the reconcile woken by our own Secret write would compute
        status from the pre-write Pki and lose a conflict for nothing.
        """
        written = self._written.get(key)
        if cached is None or written is None:
            return cached
        version = str((cached.get("metadata") or {}).get("resourceVersion"))
        if version == written[0]:
            return written[1]
        self._written.pop(key, None)  # the cache caught up (or moved past us)
        return cached

    def _secret_name_of(self, pki: Mapping[str, Any]) -> str:
        """spec.secretName with defaults, memoised per object version (it is asked often)."""
        metadata = pki.get("metadata") or {}
        memo_key = (str(metadata.get("namespace")), str(metadata.get("name")))
        version = str(metadata.get("resourceVersion"))
        memo = self._secret_names.get(memo_key)
        if memo is not None and memo[0] == version:
            return memo[1]
        result = defaults.secret_name(pki) or ""  # cheaper than defaulting the whole spec
        self._secret_names[memo_key] = (version, result)
        return result

    def _context(self, namespace: str, secret_name: str) -> Context:
        """The validation context, with only the Pkis that could share the Secret name.

        Validation compares the secretName of every other Pki in the namespace;
        handing it only the candidates, from an index kept by the Pki watch,
        keeps a reconcile O(1) for namespaces with thousands of Pkis (filtering
        the whole namespace here made a burst of n new Pkis cost O(n²)).
        """
        candidates = [
            other
            for other_name in self._secret_index.pkis_naming(namespace, secret_name)
            if (other := self.view.pkis.get(namespace, other_name)) is not None
        ]
        return self.view.context_for(namespace, other_pkis=candidates)

    def reconcile(self, key: str) -> Result:
        namespace, name = key.split("/", 1)
        pki = self._freshest(key, self.view.pkis.get(namespace, name))
        if pki is None or (pki.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.forget(key)
            return Result(key, None)
        started = time.monotonic()
        now = self.clock()
        secret_name = self._secret_name_of(pki)
        findings = validate_pki(pki, namespace, self._context(namespace, secret_name))
        try:
            secret = self._secret_for(namespace, secret_name) if secret_name else None
        except ApiError as error:
            return self._failed(
                key, pki, _api_failure(error, "read", secret_name, pki, now), now, started
            )
        decision = plan(pki, secret, self.ca(), findings, now)
        if decision.action is Action.ISSUE:
            return self._issue(key, pki, secret, decision, now, started)
        if decision.action is Action.FAIL:
            assert decision.reason is not None
            return self._failed(key, pki, decision, now, started)
        assert decision.stored is not None and decision.desired is not None
        facts = CertificateFacts.of(
            decision.desired.secret_name, decision.stored.certificate, _requeue(decision, now)
        )
        outcome = Outcome(True, Reason.ISSUED.value, _valid_message(facts), facts)
        if _status_serial(pki) != facts.serial:
            # Issued, but the process died before status recorded it (and so,
            # possibly, before the Event): tell now. Status is written after
            # the Event, so this happens at most once more per issuance.
            message = _issued_message(facts, None)
            self.reporter.succeeded(pki, Reason.ISSUED, message, again=True)
        if not self._write_status(key, pki, outcome, now):
            return Result(key, Action.WAIT, error="status conflict")
        self.queue.forget(key)
        self.queue.add_after(key, _requeue(decision, now) - now)
        return self._log(Result(key, Action.WAIT, serial=facts.serial), started)

    def _issue(  # noqa: PLR0917 - reconcile's state, handed on
        self,
        key: str,
        pki: JSON,
        secret: JSON | None,
        decision: Plan,
        now: datetime,
        started: float,
    ) -> Result:
        desired, stored = decision.desired, decision.stored
        ca = self.ca()
        assert desired is not None and isinstance(ca, pki_x509.SigningCA)
        reuse = (
            not desired.rotate_key
            and stored is not None
            and decision.why not in (Trigger.SECRET_ALTERED, Trigger.KEY_MISMATCH)
            and pki_x509.key_spec_of(stored.key) == desired.key
        )
        private_key = (
            stored.key if reuse and stored is not None else pki_x509.generate_key(desired.key)
        )
        issued = pki_x509.issue_leaf(desired.request, private_key, ca, now)
        body = render_secret(
            pki,
            desired.secret_name,
            certificate=issued.certificate,
            key=private_key,
            ca=ca,
            spec_hash=desired.spec_hash,
            existing=secret,
        )
        try:
            written = write_secret(self.kube, body, exists=secret is not None)
        except WriteConflictError:
            # The Secret changed under us, our cache lagged, or a create found the name
            # taken by a Secret the cache cannot see: read it directly, decide again.
            if secret is None:
                self._taken.add((pki_namespace(pki), desired.secret_name))
            self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
            return self._log(
                Result(key, Action.ISSUE, decision.why, error="secret conflict"), started
            )
        except ApiError as error:
            return self._failed(
                key, pki, _api_failure(error, "write", desired.secret_name, pki, now), now, started
            )
        version = (written.get("metadata") or {}).get("resourceVersion")
        if version:
            self._own_writes[(pki_namespace(pki), desired.secret_name)] = str(version)
        renewal = renewal_time(issued.certificate, desired.renew_before)
        facts = CertificateFacts.of(desired.secret_name, issued.certificate, renewal)
        reason = Reason.RENEWED if decision.why is Trigger.RENEWAL_DUE else Reason.ISSUED
        message = f"{_issued_message(facts, decision)}"
        if issued.clamped:
            message += (
                f"; notAfter was cut to the CA's own notAfter {timestamp(facts.not_after)},"
                f" shorter than spec.duration"
            )
            log.warning("clamped", extra=fields(key=key, not_after=timestamp(facts.not_after)))
        outcome = Outcome(True, reason.value, message, facts, issued=True)
        # The Event before the status: a crash in between is then noticed on
        # restart (status lacks the serial) and the Event is posted again
        # (aggregated), instead of being lost.
        self.reporter.succeeded(pki, reason, message)
        self._write_status(key, pki, outcome, now)  # a lost status write is redone from the Secret
        self.queue.forget(key)
        self.queue.add_after(key, renewal - now)
        return self._log(
            Result(key, Action.ISSUE, decision.why, reason, serial=facts.serial), started
        )

    def _failed(self, key: str, pki: JSON, decision: Plan, now: datetime, started: float) -> Result:
        assert decision.reason is not None
        facts = None
        if decision.stored is not None and decision.desired is not None:
            facts = CertificateFacts.of(
                decision.desired.secret_name,
                decision.stored.certificate,
                renewal_time(decision.stored.certificate, decision.desired.renew_before),
            )
        outcome = Outcome(
            ready=False,
            reason=decision.reason.value,
            message=decision.message,
            certificate=facts,
            pending=decision.why,
            next_retry=decision.requeue_at,
        )
        self._write_status(key, pki, outcome, now)
        retry_at = decision.requeue_at or now
        self.queue.add_after(key, retry_at - now)
        self.reporter.failed(pki, decision.reason, decision.message)
        return self._log(
            Result(key, Action.FAIL, decision.why, decision.reason, error=decision.message), started
        )

    def _write_status(self, key: str, pki: JSON, outcome: Outcome, now: datetime) -> bool:
        """Patch status if it changed; False on a conflict (the key is retried shortly).

        The patch carries the resourceVersion we read: a status computed from a
        stale Pki must not overwrite a newer one.
        """
        current = pki.get("status") or {}
        patch = status_patch(current, next_status(pki, outcome, now))
        if patch is None:
            return True
        metadata = pki.get("metadata") or {}
        body = {"metadata": {"resourceVersion": metadata.get("resourceVersion")}, "status": patch}
        namespace, name = key.split("/", 1)
        try:
            updated = self.kube.patch(PKIS.path(namespace, name, sub="status"), body, "merge")
            self._written[key] = (str(metadata.get("resourceVersion")), updated)
        except ApiError as error:
            if error.conflict or error.not_found:
                self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
                return False
            raise
        return True

    def _log(self, result: Result, started: float) -> Result:
        namespace, name = result.key.split("/", 1)
        level = logging.WARNING if result.action is Action.FAIL else logging.INFO
        log.log(
            level,
            "reconciled",
            extra=fields(
                namespace=namespace,
                pki=name,
                action=result.action.value if result.action else None,
                why=result.why.value if result.why else None,
                reason=result.reason.value if result.reason else None,
                serial=result.serial,
                error=result.error,
                ms=round((time.monotonic() - started) * 1000, 1),
            ),
        )
        return result


def pki_name(pki: JSON) -> str:
    return str((pki.get("metadata") or {}).get("name"))


def pki_namespace(pki: JSON) -> str:
    return str((pki.get("metadata") or {}).get("namespace"))


def _status_serial(pki: JSON) -> str | None:
    serial = (pki.get("status") or {}).get("serialNumber")
    return str(serial) if serial else None


def _requeue(decision: Plan, now: datetime) -> datetime:
    return decision.requeue_at or now


def _valid_message(facts: CertificateFacts) -> str:
    return (
        f"certificate {facts.serial} in Secret {facts.secret_name} is valid until"
        f" {timestamp(facts.not_after)}; renewal at {timestamp(facts.renewal_time)}"
    )


def _issued_message(facts: CertificateFacts, decision: Plan | None) -> str:
    trigger = decision.why if decision is not None else None
    detail = decision.detail if decision is not None else ""
    why = {
        Trigger.NEW: "issued",
        Trigger.RENEWAL_DUE: "renewed",
    }.get(trigger or Trigger.NEW, f"re-issued ({detail})")
    return (
        f"certificate {facts.serial} {why} into Secret {facts.secret_name}, valid until"
        f" {timestamp(facts.not_after)}"
    )


def _api_failure(error: ApiError, verb: str, secret_name: str, pki: JSON, now: datetime) -> Plan:
    """An API refusal as a failing plan, worded for the application owner."""
    if error.status in (401, 403):
        message = (
            f'the issuer may not {verb} Secret "{secret_name}" in this namespace;'
            " a cluster administrator must onboard the namespace for pkiwarden"
        )
    else:
        message = f'the API server refused to {verb} Secret "{secret_name}": {error.message}'
    return Plan(
        Action.FAIL,
        None,
        "",
        Reason.ISSUANCE_FAILED,
        message[:1024],
        now + retry_delay(previous_failures(pki)),
    )


def _failing(pki: Mapping[str, Any]) -> bool:
    """True if the Pki's status says it is not Ready: its consumers have something to hear."""
    for condition in (pki.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "False")
    return False
