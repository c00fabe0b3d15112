"""The authority's trust set as signer-linked ClusterTrustBundles, for Pods to mount.

A Pod mounts trust with a ``clusterTrustBundle`` projection by signer name
(``pkiwarden.dev/<authority>``); the kubelet merges every bundle linked to
that signer. So a new trust set is published as a new bundle (named by a
hash of its contents) *before* the old one is deleted: a Pod never sees a
moment with less trust than either set. The bundle holds exactly what the
``pkiwarden-ca.crt`` ConfigMaps hold, through every phase of a rotation.

``bundle_changes`` decides (pure); ``TrustBundlePublisher`` watches the
signer's bundles and writes what it decided, on every trust change and
whenever someone else edits or deletes a bundle.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.cache import WatchCache, object_key
from shared.kube.client import JSON, ApiError, Kube, Resource
from shared.logs import fields
from shared.pod_certificates import signer_name

log = logging.getLogger("issuer.trustbundles")

CLUSTER_TRUST_BUNDLES = Resource("certificates.k8s.io/v1", "clustertrustbundles", namespaced=False)
AUTHORITY_LABEL = "pkiwarden.dev/authority"


class Verb(StrEnum):
    CREATE = "create"
    DELETE = "delete"


@dataclass(frozen=True)
class BundleChange:
    verb: Verb
    name: str


def bundle_name(authority: str, trust_pem: str) -> str:
    """``pkiwarden.dev:<authority>:<hash>``: the API requires the signer name as prefix."""
    digest = hashlib.sha256(trust_pem.encode()).hexdigest()[:16]
    return f"{signer_name(authority).replace('/', ':')}:{digest}"


def bundle_body(authority: str, trust_pem: str) -> JSON:
    return {
        "apiVersion": CLUSTER_TRUST_BUNDLES.group_version,
        "kind": "ClusterTrustBundle",
        "metadata": {
            "name": bundle_name(authority, trust_pem),
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, AUTHORITY_LABEL: authority},
        },
        "spec": {"signerName": signer_name(authority), "trustBundle": trust_pem},
    }


def _held(bundle: Mapping[str, Any]) -> str:
    return str((bundle.get("spec") or {}).get("trustBundle") or "")


def bundle_changes(
    authority: str, trust_pem: str | None, existing: Sequence[Mapping[str, Any]]
) -> list[BundleChange]:
    """Create the bundle for ``trust_pem`` first, then delete every other one of the signer.

    ``existing``: the bundles linked to the authority's signer. No trust set
    (no CA yet) changes nothing: deleting the last trust would break every
    Pod's verification at once, which is worse than a stale bundle.
    """
    if not trust_pem:
        return []
    wanted = bundle_name(authority, trust_pem)
    names = {object_key(b)[1]: b for b in existing}
    changes: list[BundleChange] = []
    current = names.get(wanted)
    if current is not None and _held(current) != trust_pem:  # edited by someone: replace it
        changes.append(BundleChange(Verb.DELETE, wanted))
        current = None
    if current is None:
        changes.append(BundleChange(Verb.CREATE, wanted))
    changes += [BundleChange(Verb.DELETE, name) for name in sorted(names) if name != wanted]
    return changes


class TrustBundlePublisher:
    """Keeps the signer's ClusterTrustBundles equal to ``trust()``; leader only writes."""

    def __init__(
        self,
        kube: Kube,
        authority: str,
        trust: Callable[[], bytes | None],
        *,
        resync_seconds: float = 30.0,
    ) -> None:
        self.kube = kube
        self.authority = authority
        self.trust = trust
        self.resync_seconds = resync_seconds
        self.cache = WatchCache(
            kube,
            CLUSTER_TRUST_BUNDLES,
            field_selector=f"spec.signerName={signer_name(authority)}",
            on_change=lambda kind, bundle: self.wake(),
        )
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trust-bundles", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self.publish()
            except Exception:  # an API outage or a bug: log, look again
                log.exception("trust bundles not published", extra=fields(authority=self.authority))
            self._wake.wait(self.resync_seconds)

    def publish(self) -> list[BundleChange]:
        if not self.cache.synced.is_set():
            return []
        trust = self.trust()
        text = trust.decode() if trust else None
        changes = bundle_changes(self.authority, text, self.cache.list())
        for change in changes:
            try:
                if change.verb is Verb.CREATE:
                    assert text is not None
                    body = bundle_body(self.authority, text)
                    self.kube.create(CLUSTER_TRUST_BUNDLES.path(), body)
                else:
                    self.kube.delete(CLUSTER_TRUST_BUNDLES.path(name=change.name))
            except ApiError as error:
                if error.conflict or error.not_found:
                    continue  # already as wanted: the watch brings the news
                raise
            log.info(
                "trust bundle written",
                extra=fields(authority=self.authority, verb=change.verb.value, name=change.name),
            )
        return changes
