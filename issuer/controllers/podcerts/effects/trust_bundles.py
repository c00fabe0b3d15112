"""The authority's trust set as signer-linked ClusterTrustBundles, kept current.

The bundle holds exactly what the ``pkiwarden-ca.crt`` ConfigMaps hold (the
CA Secret's ``ca.crt``, which the authority controller keeps as the trust
set), through every phase of a rotation. What to write is decided by
``decisions.trust_bundles``; this thread watches the bundles of pkiwarden's
signers and writes, on every CA Secret change and whenever someone else edits
or deletes a bundle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from issuer.controllers.podcerts.decisions.trust_bundles import (
    CLUSTER_TRUST_BUNDLES,
    BundleChange,
    Verb,
    bundle_body,
    bundle_changes,
)
from shared.kube.cache import WatchCache
from shared.kube.client import ApiError, Kube
from shared.logs import fields
from shared.pod_certificates import signer_name

log = logging.getLogger("issuer.trustbundles")


class TrustBundlePublisher:
    """Keeps each authority's signer's ClusterTrustBundles equal to its trust set; leader only."""

    def __init__(
        self,
        kube: Kube,
        authorities: Callable[[], list[str]],
        trust: Callable[[str], bytes | None],
        *,
        resync_seconds: float = 30.0,
    ) -> None:
        self.kube = kube
        self.authorities = authorities
        self.trust = trust
        self.resync_seconds = resync_seconds
        # Every bundle: few, cluster-scoped; those of pkiwarden's signers are picked by name.
        self.cache = WatchCache(
            kube, CLUSTER_TRUST_BUNDLES, on_change=lambda kind, bundle: self.wake()
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
                log.exception("trust bundles not published")
            self._wake.wait(self.resync_seconds)

    def publish(self) -> list[BundleChange]:
        if not self.cache.synced.is_set():
            return []
        bundles = self.cache.list()
        done: list[BundleChange] = []
        for authority in self.authorities():
            signer = signer_name(authority)
            linked = [b for b in bundles if (b.get("spec") or {}).get("signerName") == signer]
            trust = self.trust(authority)
            text = trust.decode() if trust else None
            for change in bundle_changes(authority, text, linked):
                self._write(authority, change, text)
                done.append(change)
        return done

    def _write(self, authority: str, change: BundleChange, text: str | None) -> None:
        try:
            if change.verb is Verb.CREATE:
                assert text is not None
                self.kube.create(CLUSTER_TRUST_BUNDLES.path(), bundle_body(authority, text))
            else:
                self.kube.delete(CLUSTER_TRUST_BUNDLES.path(name=change.name))
        except ApiError as error:
            if error.conflict or error.not_found:
                return  # already as wanted: the watch brings the news
            raise
        log.info(
            "trust bundle written",
            extra=fields(authority=authority, verb=change.verb.value, name=change.name),
        )
