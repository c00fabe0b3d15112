"""The PkiAuthority's controller: one thread that looks, decides one move, and writes it.

Each pass (every ``tick`` seconds, or at once when something it watches
changes) reads the caches, publishes the trust set (ConfigMaps, and ``ca.crt``
of every issued Secret), counts the Pkis not yet signed by the active CA,
asks :func:`~issuer.controllers.authorities.decisions.phases.next_transition` for the
next move, records it in the CA Secret in one write, then writes the PkiAuthority's status and an
Event when the phase changed.

With ``--shards`` above 1 it runs in every replica, split in two: the part
per namespace (``ca.crt`` of the issued Secrets, the count) in the shards
the replica leads, reported on each shard's Lease
(:mod:`~issuer.controllers.authorities.decisions.shard_progress`); the
cluster-wide part (ConfigMaps, moves, status) with shard 0's holder, from
the reports of every shard. The re-issues themselves are the Pki
controller's, asked for and paced through the runtime's
:class:`issuer.runtime.reissues.Reissues`; this controller only sees them
happen in the Secrets.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from issuer.controllers.authorities.decisions.authority_status import (
    Standing,
    authority_status,
    missing_ca_problem,
)
from issuer.controllers.authorities.decisions.namespace_trust import namespace_trust
from issuer.controllers.authorities.decisions.phases import (
    Move,
    Observed,
    Phase,
    RotationState,
    Transition,
    advance,
    next_transition,
)
from issuer.controllers.authorities.decisions.reissue_order import Pending, reissue_order
from issuer.controllers.authorities.decisions.shard_progress import (
    Counted,
    LeaseView,
    Progress,
    encode,
    shard_reports,
    tally,
    trust_digest,
)
from issuer.controllers.authorities.decisions.trust import bundle_pem, fingerprint
from issuer.controllers.authorities.effects import configmaps
from issuer.controllers.authorities.effects.bootstrap_ca import ca_secret_body
from issuer.controllers.authorities.inputs import state
from issuer.controllers.authorities.inputs.spec import (
    AuthoritySpec,
    Generate,
    authority_spec,
    new_ca,
    renewal_due,
    rotation_request,
)
from issuer.controllers.authorities.reporting.metrics import AuthorityMetrics
from issuer.controllers.authorities.reporting.summary import Pass, next_pass_in
from issuer.runtime import issuance
from issuer.runtime.ca_history import ca_history, had_a_ca
from issuer.runtime.context import Runtime
from issuer.runtime.events.correlator import EventType, ObjectRef, event_text
from issuer.runtime.issued_facts import cached_facts, parse_issued
from issuer.runtime.ownership import Ownership, ownership
from issuer.runtime.shards import shard_of
from issuer.runtime.signers import SecretGrant, ungranted_secret, unreadable_ca_problem
from shared import API_GROUP_VERSION, defaults
from shared.clock import parse_rfc3339
from shared.kube.cache import WatchCache
from shared.kube.client import CONFIG_MAPS, PKI_AUTHORITIES, SECRETS, ApiError
from shared.logs import fields

log = logging.getLogger("issuer.authorities")

JSON = dict[str, Any]
# The Warning on a PkiAuthority whose spec.nextSecretName the issuer may not read.
NEXT_CA_FORBIDDEN = "NextCASecretForbidden"
# Parallel ca.crt writes into issued Secrets (each a small PATCH).
TRUST_WRITERS = 8


@dataclass
class ShardPass:
    """A sharded pass: the shards to report on, their reports, and every shard's Lease."""

    opened: frozenset[int]
    count: int
    reports: dict[int, dict[str, Progress]]
    leases: tuple[LeaseView, ...] | None  # None: this replica does not lead shard 0


@dataclass(frozen=True)
class Survey:
    """What one authority's Pkis in this replica's caches say."""

    current: bool  # every Secret held the trust set
    pending: list[Pending]  # valid leaves not signed by the active CA, in re-issue order
    valid_leaves: list[tuple[Pending, bytes | None]]  # every valid leaf and its signer's key id
    counted: list[Counted]  # the same per Pki, for the shard reports


@dataclass(frozen=True)
class Leaf:
    """What the loop needs from an issued Secret, memoised per resourceVersion."""

    version: str
    issuer_key_id: bytes | None
    not_after: datetime | None
    bundle: str  # ca.crt as stored (base64)


def key_id(certificate: x509.Certificate) -> bytes:
    return issuance.subject_key_id(certificate)


def _leaf(secret: Mapping[str, Any]) -> Leaf:
    """From the issued-Secret cache's facts (a Secret read whole is parsed the same way)."""
    metadata = secret.get("metadata") or {}
    facts = cached_facts(secret)
    if facts is None:
        facts = parse_issued(secret)
    issuer_key_id, not_after = (
        (None, None)
        if isinstance(facts, str)
        else (
            facts.issuer_key_id,
            facts.not_after,
        )
    )
    bundle = str((secret.get("data") or {}).get("ca.crt", ""))
    return Leaf(str(metadata.get("resourceVersion")), issuer_key_id, not_after, bundle)


class AuthorityController:
    """Trust distribution and rotation for every PkiAuthority, one pass over all of them."""

    name = "authorities"
    # Runs in every replica with --shards: its shards' ca.crt and counts are its replica's
    # to keep; the cluster-wide part (the CAs' moves) only while it leads shard 0.
    sharded = True

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.kube = runtime.kube
        self.namespace = settings.namespace
        self.signers = runtime.signers
        self.view = runtime.caches.view
        self.secrets = runtime.caches.issued_secrets
        self.ca_secrets = runtime.caches.ca_secrets
        self.recorder = runtime.recorder
        self.reissues = runtime.reissues
        self.dependents = runtime.dependents
        self.clock = runtime.clock
        self.tick_seconds = settings.authority_tick_seconds
        self.idle_seconds = settings.authority_idle_seconds
        self.shards = runtime.shards
        self.shard_reports = runtime.shard_reports
        self.shard_leases = runtime.shard_leases
        if self.shard_leases is not None:
            self.shard_leases.on_change(self._shard_lease_changed)
        self.last: dict[str, Pass] = {}  # by authority
        self.metrics = AuthorityMetrics(runtime.metrics.registry)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._leaves: dict[tuple[str, str], Leaf] = {}
        self._seen: set[tuple[str, str]] = set()  # the Secrets a pass surveyed, of all authorities
        self._told: set[tuple[str, str]] = set()  # (authority, next CA Secret) said ungranted
        self.authorities = runtime.caches.authorities
        self.authorities.add_listener(self._changed)
        self.ca_secrets.listeners.add(self._changed)
        # Which namespaces get a trust ConfigMap follows the policies and namespaces.
        runtime.caches.policies.add(self._changed)
        runtime.caches.namespaces.add(self._changed)
        self.ca_secrets.cache(settings.ca_secret)  # the default authority's, watched from the start
        self.configmaps = WatchCache(
            self.kube,
            CONFIG_MAPS,
            field_selector=f"metadata.name={configmaps.TRUST_CONFIGMAP}",
            on_change=self._changed,
        )

    # -- lifecycle --------------------------------------------------------

    def start_watching(self) -> None:
        """The trust ConfigMaps: only this controller reads them."""
        self.configmaps.start()

    def synced(self) -> bool:
        return self.configmaps.synced.is_set()

    def start(self) -> None:
        """Start deciding and writing; with leader election, only once leading."""
        self._thread = threading.Thread(target=self._run, name="authorities", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self.configmaps.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def shard_gained(self, shard: int) -> None:
        """Its Secrets are counted and reported from the next pass (with shard 0: the CAs too)."""
        self.wake()

    def _rate_share(self) -> float:
        """This replica's part of an authority's reissueRate: its shards' share of them all.

        Every replica re-issues its own shards, each paced on its own; without
        this the cluster would re-issue at the rate times the replica count.
        """
        if not self.shards.sharded:
            return 1.0
        return max(1, len(self.shards.led())) / self.shards.count

    def decides(self) -> bool:
        """Cluster-wide work (ConfigMaps, moves, status): unsharded, or leading shard 0."""
        return not self.shards.sharded or 0 in self.shards.led()

    def wake(self) -> None:
        self._wake.set()

    def _changed(self, kind: str, obj: JSON) -> None:
        self._wake.set()

    def _shard_lease_changed(self) -> None:
        """A shard's holder or report changed: news only to the replica that sums them."""
        if self.decides():
            self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                before, self.last = self.last, self.run_once()
                for authority, result in self.last.items():
                    self.metrics.observe(authority, result)
                for gone in before.keys() - self.last.keys():
                    self.metrics.forget(gone)
            except Exception:  # an API outage or a bug: log, look again next tick
                log.exception("authority pass failed")
            self._wake.wait(
                next_pass_in(
                    self.last,
                    decides=self.decides(),
                    busy_seconds=self.tick_seconds,
                    idle_seconds=self.idle_seconds,
                )
            )
            time.sleep(0.05)  # let a burst of watch events settle into one pass

    # -- reading ----------------------------------------------------------

    def authority(self, name: str) -> JSON | None:
        return self.authorities.get("", name)

    def ca_secret(self, secret_name: str) -> JSON | None:
        return self.ca_secrets.get(secret_name)

    def trust_bundle(self, name: str, now: datetime) -> str | None:
        """The authority's trust set (PEM) as its CA Secret records it; None: no CA yet."""
        secret_name = self.signers.secret_name(name)
        secret = self.ca_secret(secret_name) if secret_name else None
        material = state.read_material(secret)
        if material is None:
            return None
        return bundle_pem(material.trusted(state.read_state(secret, material), now)).decode()

    def _read_secret(self, authority: str, name: str) -> JSON | None:
        """spec.nextSecretName's Secret, read directly: the issuer watches only its CA."""
        try:
            return self.kube.get(SECRETS.path(self.namespace, name))
        except ApiError as error:
            if error.not_found or error.status in (401, 403):
                log.warning(
                    "next CA Secret not readable",
                    extra=fields(secret=f"{self.namespace}/{name}", error=str(error)),
                )
                if error.status == 403:
                    self._tell_ungranted_next(authority, name)
                return None
            raise

    def _tell_ungranted_next(self, authority: str, secret_name: str) -> None:
        """A Warning on the PkiAuthority naming the grant a next CA's Secret lacks.

        Once per Secret and process: every pass reads it again, and repeats
        would spend the spam filter's allowance that the rotation's own
        Warnings on this object need.
        """
        found = self.authority(authority)
        if self.recorder is None or found is None or (authority, secret_name) in self._told:
            return
        self._told.add((authority, secret_name))
        message = "spec.nextSecretName: " + ungranted_secret(
            self.namespace, secret_name, SecretGrant.NEXT_CA
        )
        ref = ObjectRef.of(found, api_version=API_GROUP_VERSION, kind="PkiAuthority")
        self.recorder.record(ref, EventType.WARNING, NEXT_CA_FORBIDDEN, event_text(message))

    def _supplied(
        self, name: str, spec: AuthoritySpec, material: state.Material, now: datetime
    ) -> state.NewCA | None:
        """The CA in spec.nextSecretName, if it can sign, is newer and is not one we have."""
        if spec.next_secret_name is None:
            return None
        supplied = state.read_material(self._read_secret(name, spec.next_secret_name))
        if supplied is None or not issuance.is_ca_certificate(supplied.active):
            return None
        if not issuance.key_matches_certificate(supplied.active_key, supplied.active):
            return None
        if now >= supplied.active.not_valid_after_utc:
            return None
        known = {fingerprint(c) for c in (material.active, material.next, material.previous) if c}
        if fingerprint(supplied.active) in known:
            return None
        # A next CA is newer than the active one; an older one left named in the spec
        # after a later rotation must not start a rotation back to it.
        if supplied.active.not_valid_before_utc <= material.active.not_valid_before_utc:
            return None
        return state.new_ca_of(supplied)

    def _leaf_of(self, namespace: str, secret: Mapping[str, Any]) -> Leaf:
        name = str((secret.get("metadata") or {}).get("name"))
        version = str((secret.get("metadata") or {}).get("resourceVersion"))
        memo = self._leaves.get((namespace, name))
        if memo is None or memo.version != version:
            memo = _leaf(secret)
            self._leaves[(namespace, name)] = memo
        return memo

    # -- one pass ---------------------------------------------------------

    def run_once(self) -> dict[str, Pass]:
        """One pass over every authority: trust first (a ConfigMap holds several), then moves.

        Sharded, the shards' reports are published after it; a replica without
        shard 0 decides nothing and returns no passes.
        """
        now = self.clock()
        sharding = self._shard_pass()  # before the caches: a report never runs ahead of them
        decides = self.decides()
        names = self.signers.names()
        bundles = {name: b for name in names if (b := self.trust_bundle(name, now)) is not None}
        maps_current = self._publish_configmaps(bundles) if decides else True
        pkis: dict[str, list[JSON]] = {}
        for pki in self.view.pkis.list():
            pkis.setdefault(self.signers.authority_of(pki), []).append(pki)
        self._seen = set()
        passes = {
            name: self.run_authority(name, pkis.get(name, []), maps_current, now, sharding)
            for name in names
        }
        self._leaves = {key: leaf for key, leaf in self._leaves.items() if key in self._seen}
        if sharding is not None:
            for shard, reports in sharding.reports.items():
                self.shard_reports.publish(shard, encode(reports))
        return passes if decides else {}

    def _shard_pass(self) -> ShardPass | None:
        """None unsharded; else the open shards, and every shard's Lease if leading shard 0."""
        if not self.shards.sharded:
            return None
        leases = None
        if self.shard_leases is not None and self.decides():
            leases = tuple(
                LeaseView(lease.shard, lease.holder, lease.renewed, lease.report)
                for lease in self.shard_leases.snapshot()
            )
        opened = self.shard_reports.opened()
        return ShardPass(opened, self.shards.count, {shard: {} for shard in opened}, leases)

    def run_authority(
        self,
        name: str,
        pkis: list[JSON],
        maps_current: bool,
        now: datetime,
        sharding: ShardPass | None = None,
    ) -> Pass:
        """Survey ``name``'s Pkis, decide its next move, record it, write its status.

        Sharded, the survey is reported for each open shard; only with every
        shard's Lease (shard 0's holder) is a move decided, from their sum.
        """
        decides = sharding is None or sharding.leases is not None
        authority = self.authority(name)
        expected = self.signers.secret_name(name) or ""
        spec = authority_spec(authority, expected)
        self.reissues.set_rate(name, spec.reissue_rate * self._rate_share())
        secret = self.ca_secret(expected) if expected else None
        material = state.read_material(secret)
        result = Pass()
        if spec.secret_name != expected:
            result.problem = (
                f'spec.secretName "{spec.secret_name}" is not the CA Secret this issuer was'
                f' started with ("{expected}"); restart the issuer to use it'
            )
        elif secret is None and expected and self.ca_secrets.denied(expected):
            result.problem = unreadable_ca_problem(self.namespace, expected)
        elif (
            decides
            and secret is None
            and spec.generate is not None
            and authority is not None
            and not had_a_ca(authority)
        ):
            self._create_ca(name, expected, spec.generate, now)
            result.problem = f'creating CA Secret "{self.namespace}/{spec.secret_name}"'
        elif secret is None or material is None:
            result.problem = missing_ca_problem(
                self.namespace,
                spec.secret_name,
                name,
                generates=spec.generate is not None,
                history=ca_history(authority),
                exists=secret is not None,
            )
        if result.problem or secret is None or material is None:
            if decides:
                self._write_status(name, authority, RotationState(), (), result, "", now)
            return result
        current = state.read_state(secret, material)
        trusted = material.trusted(current, now)
        bundle_b64 = base64.b64encode(bundle_pem(trusted)).decode()
        survey = self._survey_secrets(pkis, material.active, bundle_b64, now)
        if survey is None or not decides:
            result.phase, result.active_not_after = (
                current.phase,
                material.active.not_valid_after_utc,
            )
            result.phase_start = current.phase_start
            if survey is not None and sharding is not None:
                _report(sharding, name, survey, key_id(material.active).hex(), bundle_b64)
            return result
        secrets_current, pending, valid_leaves = survey.current, survey.pending, survey.valid_leaves
        pending_count, blocked = len(pending), [p.key for p in pending if p.blocked]
        blocked_count, unknown = len(blocked), ""
        if sharding is not None and sharding.leases is not None:
            _report(sharding, name, survey, key_id(material.active).hex(), bundle_b64)
            ca, trust = key_id(material.active).hex(), trust_digest(bundle_b64)
            counted = tally(name, ca, trust, sharding.leases)
            secrets_current = counted.trust_current
            pending_count, blocked = counted.pending, list(counted.blocked_pkis)
            blocked_count, unknown = counted.blocked, "; ".join(counted.unknown)
        # Pod certificates too: only the kubelet renews them, at their refresh time.
        pods = self.dependents.count(name, key_id(material.active), now)
        supplied = self._supplied(name, spec, material, now)
        observed = Observed(
            now=now,
            trust_propagation=spec.trust_propagation,
            request=rotation_request(authority),
            can_generate=spec.generate is not None,
            supplied_next=supplied is not None,
            renewal_due=renewal_due(spec.generate, material.active, now),
            trust_current=maps_current and secrets_current,
            trust_unchanged=material.adds_no_trust(current, now),
            pending=pending_count + pods,
            blocked=blocked_count,
            ca_since=parse_rfc3339((secret.get("metadata") or {}).get("creationTimestamp")),
            unknown=unknown,
        )
        step = next_transition(current, observed)
        after = current
        if step.move is not Move.NONE and authority is not None:
            written = self._record(name, secret, current, material, step, spec, supplied, now)
            if written is not None:
                after, material = written
                trusted = material.trusted(after, now)
                if step.move in (Move.PROMOTE, Move.EMERGENCY):
                    signer = key_id(material.active)
                    order = reissue_order(p for p, kid in valid_leaves if kid != signer)
                    self.reissues.request(name, order)
        result.phase, result.phase_start = after.phase, after.phase_start
        result.move = step.move if after is not current else Move.NONE
        result.pending, result.blocked = pending_count + pods, blocked
        result.blocked_total = blocked_count
        result.active_not_after = material.active.not_valid_after_utc
        result.trust_current = observed.trust_current
        self._write_status(name, authority, after, trusted, result, step.message, now)
        return result

    def _publish_configmaps(self, bundles: Mapping[str, str]) -> bool:
        """Create, repair or remove trust ConfigMaps; True if none needed a change."""
        wanted = namespace_trust(
            self.view.policies.list(),
            self.view.namespaces.list(),
            bundles,
            self.signers.resolve,
        )
        changes = configmaps.trust_changes(wanted, self.configmaps.list())
        for change in changes:
            try:
                configmaps.apply_change(self.kube, change)
            except ApiError as error:
                log.warning(
                    "trust ConfigMap not written",
                    extra=fields(namespace=change.namespace, verb=change.verb, error=str(error)),
                )
        return not changes

    def _survey_secrets(
        self, pkis: list[JSON], active: x509.Certificate, bundle_b64: str, now: datetime
    ) -> Survey | None:
        """Bring each of ``pkis``' Secrets' ca.crt to the bundle; the Pkis not signed by ``active``.

        Also every valid certificate with its signer's key id, from which a new
        signer's re-issue order follows. None while a namespace's Secret cache
        has not synced yet (just after a restart): counting its Pkis as done
        would end a rotation early.
        """
        active_id = key_id(active)
        current = True
        pending: list[Pending] = []
        seen: set[tuple[str, str]] = set()
        valid_leaves: list[tuple[Pending, bytes | None]] = []
        stale: list[tuple[str, Mapping[str, Any]]] = []
        counted: list[Counted] = []
        for pki in pkis:
            metadata = pki.get("metadata") or {}
            namespace = str(metadata.get("namespace"))
            if not self.shards.owns(namespace):
                continue  # a shard handed back, still cached until the lists end: not ours
            cache = self.secrets.ensure(namespace)
            if not cache.synced.is_set() and not cache.denied.is_set():
                return None
            status = pki.get("status") or {}
            secret_name = status.get("secretName") or defaults.secret_name(pki)
            if not secret_name:
                continue
            secret = self.secrets.get(namespace, str(secret_name))
            if secret is None or ownership(secret, pki) is Ownership.FOREIGN:
                continue  # someone else's Secret under that name: never written, not ours to count
            leaf = self._leaf_of(namespace, secret)
            seen.add((namespace, str(secret_name)))
            failing = int(status.get("failedIssuanceAttempts") or 0) > 0
            key = f"{namespace}/{metadata.get('name')}"
            old = False
            if leaf.not_after is not None and leaf.not_after > now:
                entry = Pending(key, leaf.not_after, failing)
                valid_leaves.append((entry, leaf.issuer_key_id))
                if leaf.issuer_key_id != active_id:
                    pending.append(entry)
                    old = True
            # A failing Pki's Secret too: its certificate stays in use until it can be
            # re-issued, and its apps must trust the next CA's leaves before they appear.
            if leaf.bundle != bundle_b64:
                stale.append((namespace, secret))
            counted.append(
                Counted(
                    namespace,
                    pending=old,
                    stale=leaf.bundle != bundle_b64,
                    blocked_pki=key if old and failing else "",
                )
            )
        if stale:
            # A rotation rewrites every issued Secret's ca.crt twice; one request at a
            # time, 1,000 Secrets took 13 s of the Propagating phase.
            current = False
            with ThreadPoolExecutor(TRUST_WRITERS, thread_name_prefix="trust") as pool:
                list(pool.map(lambda item: self._patch_bundle(item[0], item[1], bundle_b64), stale))
        self._seen |= seen
        order = {key: index for index, key in enumerate(reissue_order(pending))}
        ordered = sorted(pending, key=lambda p: order[p.key])
        return Survey(current, ordered, valid_leaves, counted)

    def _patch_bundle(self, namespace: str, secret: Mapping[str, Any], bundle_b64: str) -> None:
        """Write the trust set into one issued Secret's ca.crt; current once the cache shows it."""
        metadata = secret.get("metadata") or {}
        body = {
            "metadata": {"resourceVersion": metadata.get("resourceVersion")},
            "data": {"ca.crt": bundle_b64},
        }
        try:
            self.kube.patch(SECRETS.path(namespace, str(metadata.get("name"))), body, "merge")
        except ApiError as error:
            if not (error.conflict or error.not_found):
                log.warning(
                    "trust not written into Secret",
                    extra=fields(
                        namespace=namespace, secret=metadata.get("name"), error=str(error)
                    ),
                )

    # -- writing a move ---------------------------------------------------

    def _create_ca(self, name: str, secret_name: str, generate: Generate, now: datetime) -> None:
        """A generated authority's first CA, created only where no Secret of that name exists.

        Only the first: see :func:`had_a_ca`.

        The issuer is the one account that may write a CA Secret, so it makes
        this one itself rather than a bootstrap Job. "Already exists" (a
        Secret our cache has not seen yet, or a platform team's) is left as
        it is: a Secret is never replaced by this path.
        """
        certificate, key = new_ca(generate, now)
        body = ca_secret_body(self.namespace, secret_name, certificate, key)
        try:
            self.kube.create(SECRETS.path(self.namespace), body)
        except ApiError as error:
            if error.conflict:
                return
            raise
        log.info(
            "CA Secret created",
            extra=fields(authority=name, secret=secret_name),
        )

    def _record(  # noqa: PLR0917
        self,
        name: str,
        secret: JSON,
        current: RotationState,
        material: state.Material,
        step: Transition,
        spec: AuthoritySpec,
        supplied: state.NewCA | None,
        now: datetime,
    ) -> tuple[RotationState, state.Material] | None:
        """Write ``step``'s state and certificates to the CA Secret in one request."""
        fresh = supplied
        if fresh is None and step.move in (Move.BEGIN, Move.EMERGENCY) and spec.generate:
            needs_new = step.move is Move.BEGIN or (
                current.phase is Phase.STABLE and material.next is None
            )
            fresh = state.NewCA(*new_ca(spec.generate, now)) if needs_new else None
        after = advance(current, step, now)
        changed = state.material_after(material, current, step.move, fresh)
        if fresh is None and (
            step.move is Move.BEGIN
            or (step.move is Move.EMERGENCY and current.phase is Phase.STABLE)
        ):
            return None  # no new CA to be had: decided again next pass
        body = state.render(secret, after, changed, now)
        try:
            secret_name = str((secret.get("metadata") or {}).get("name"))
            self.kube.replace(SECRETS.path(self.namespace, secret_name), body)
        except ApiError as error:
            if error.conflict:
                return None  # the Secret moved on: next_transition again from what it says now
            raise
        log.info(
            "rotation step",
            extra=fields(
                authority=name,
                move=step.move.value,
                phase=after.phase.value,
                cause=step.cause.value if step.cause else None,
            ),
        )
        self._record_event(name, step, after)
        return after, changed

    def _record_event(self, name: str, step: Transition, after: RotationState) -> None:
        """An Event on the PkiAuthority for each step of a rotation (``kubectl describe pkica``).

        A cluster-scoped object's Events live in the ``default`` namespace.
        """
        authority = self.authority(name)
        if self.recorder is None or authority is None or step.move is Move.TRUST_SYNCED:
            return
        reason = {
            Move.BEGIN: "RotationStarted",
            Move.PROMOTE: "NewCASigning",
            Move.EMERGENCY: "EmergencyRotation",
            Move.RETIRE: "PreviousCARetiring",
            Move.FORGET: "RotationComplete",
            Move.ACKNOWLEDGE: "RotationRequestIgnored",
        }.get(step.move, step.move.value)
        warning = step.move in (Move.EMERGENCY, Move.ACKNOWLEDGE)
        ref = ObjectRef.of(authority, api_version=API_GROUP_VERSION, kind="PkiAuthority")
        kind = EventType.WARNING if warning else EventType.NORMAL
        self.recorder.record(ref, kind, reason, event_text(f"{after.phase}: {step.message}"))

    def _write_status(  # noqa: PLR0917
        self,
        name: str,
        authority: JSON | None,
        after: RotationState,
        trusted: tuple[Any, ...],
        result: Pass,
        message: str,
        now: datetime,
    ) -> None:
        if authority is None:
            return
        metadata = authority.get("metadata") or {}
        current = authority.get("status") or {}
        previous_message = next(
            (
                c.get("message")
                for c in current.get("conditions") or []
                if c.get("type") == "Rotating"
            ),
            "",
        )
        standing = Standing(
            state=after,
            trusted=trusted,
            problem=result.problem,
            message=message or str(previous_message or ""),
            pending=result.pending,
            blocked=result.blocked,
            generation=int(metadata.get("generation") or 0),
        )
        desired = authority_status(current, standing, now)
        if desired == current:
            return
        # A merge patch keeps what it does not name: the CA gone, its expiry must go too.
        gone = {key: None for key in ("activeCA", "activeNotAfter") if key not in desired}
        try:
            updated = self.kube.patch(
                PKI_AUTHORITIES.path(name=name, sub="status"),
                {"status": {**gone, **desired}},
                "merge",
            )
        except ApiError as error:
            if error.not_found or error.conflict:
                return
            raise
        log.debug("authority status written", extra=fields(version=_version(updated)))


def _report(sharding: ShardPass, name: str, survey: Survey, ca: str, bundle_b64: str) -> None:
    """Add ``name``'s progress in each open shard to the pass's reports."""
    progress = shard_reports(
        survey.counted,
        sharding.opened,
        lambda namespace: shard_of(namespace, sharding.count),
        ca=ca,
        trust=trust_digest(bundle_b64),
    )
    for shard, entry in progress.items():
        sharding.reports[shard][name] = entry


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion"))


def build(runtime: Runtime) -> AuthorityController:
    return AuthorityController(runtime)
