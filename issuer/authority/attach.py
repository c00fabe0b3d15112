"""The authority loop, attached to the Pki reconciler it works beside.

They share the caches (Pkis, policies, namespaces, issued Secrets, the CA
Secret); the loop paces the reconciler's re-issues and hands it the order in
which to re-issue when a new CA starts to sign.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from issuer.authority.announce import authority_announcer
from issuer.authority.loop import AuthorityLoop
from issuer.authority.metrics import AuthorityMetrics
from issuer.controller import Controller
from issuer.settings import Settings
from shared.kube.client import Kube


def attach_authority(
    kube: Kube, settings: Settings, controller: Controller, registry: CollectorRegistry
) -> AuthorityLoop:
    loop = AuthorityLoop(
        kube,
        settings.namespace,
        settings.authority,
        settings.ca_secret,
        controller.view,
        controller.watches.secrets,
        controller.watches.ca.cache,
        announce=authority_announcer(kube),
        tick_seconds=settings.authority_tick_seconds,
    )
    controller.pacer = loop.pacer

    def reissue(keys: list[str]) -> None:
        for key in keys:
            controller.queue.add(key)

    loop.on_reissue = reissue
    loop.on_pass = AuthorityMetrics(registry, settings.authority).observe
    return loop
