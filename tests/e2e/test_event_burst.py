"""A burst of run-time failures across 200 Pkis: every Pki is told, no object is flooded.

No webhook is registered, so Pkis that admission would deny are accepted: half
target Secrets that already belong to someone else (``SecretConflict``), half
name a service the policy does not allow (``NotAllowed``). One Pod consumes all
200 Secrets, so every failure is also recorded on it: that Pod is where a
recorder without a spam filter or aggregation would pile up hundreds of Events,
while each Pki, with a bucket of its own, must still get its first Warning.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from issuer.runtime.events.recorder import COMPONENT
from issuer.runtime.settings import Settings
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.kube.client import EVENTS, PKIS, SECRETS, Kube
from tests.e2e.helpers import (
    container,
    create_pod,
    eventually,
    policed_namespace,
    running_issuer,
)

NAMESPACE = "event-burst"
POLICY = "e2e-event-burst"
PKIS_PER_KIND = 100
CONFLICT, NOT_ALLOWED = "SecretConflict", "NotAllowed"

SPAM_BURST = 25
"""Writes one object's Warnings may take at once (client-go's default); refill is 1 per 5 min."""
SIMILAR_MESSAGES = 10
"""Distinct messages with one reason on one object before they fold into a combined Event.

So one object holds at most ``SIMILAR_MESSAGES`` Event objects per reason:
``SIMILAR_MESSAGES - 1`` of their own and one "(combined from similar events)".
"""
COMBINED = "(combined from similar events): "


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube) -> Iterator[LocalIssuer]:
    settings = Settings(namespace="pkiwarden-e2e-burst", workers=2, health_port=0)
    with (
        policed_namespace(control_plane, kube, NAMESPACE, ["app1"], policy=POLICY),
        running_issuer(control_plane, settings, "issuer-burst") as running,
    ):
        yield running


def foreign_secret(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {"owner": base64.b64encode(f"team of {name}".encode()).decode()},
    }


def pki_body(name: str, service: str) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"serviceName": service},
    }


def warnings_by_uid(kube: Kube) -> dict[str, list[dict[str, Any]]]:
    """Every Warning of ours in the namespace, grouped by involvedObject uid: one list call."""
    page = kube.get(
        EVENTS.path(NAMESPACE), params={"fieldSelector": f"type=Warning,source={COMPONENT}"}
    )
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in page.get("items") or []:
        grouped[event["involvedObject"]["uid"]].append(event)
    return grouped


def test_a_burst_of_failures_tells_every_pki_and_floods_no_object(
    kube: Kube, issuer: LocalIssuer
) -> None:
    conflicting = [f"taken-{n:03d}" for n in range(PKIS_PER_KIND)]
    denied = [f"denied-{n:03d}" for n in range(PKIS_PER_KIND)]
    expected = {name: CONFLICT for name in conflicting} | {name: NOT_ALLOWED for name in denied}
    secret_names = [f"{name}-tls" for name in expected]  # the default spec.secretName

    def create_foreign(name: str) -> dict[str, Any]:
        return kube.create(SECRETS.path(NAMESPACE), foreign_secret(f"{name}-tls"))

    def create_pki(name: str) -> dict[str, Any]:
        service = "app1" if expected[name] == CONFLICT else "appp1"
        return kube.create(PKIS.path(NAMESPACE), pki_body(name, service))

    # Foreign Secrets first: a Pki created before its Secret would simply be issued.
    with ThreadPoolExecutor(8) as pool:
        foreign = dict(zip(conflicting, pool.map(create_foreign, conflicting), strict=True))
        refs = [{"secretRef": {"name": name}} for name in secret_names]
        hub = create_pod(kube, NAMESPACE, "hub", {"containers": [container(envFrom=refs)]})
        started = time.monotonic()
        pkis = dict(zip(expected, pool.map(create_pki, expected), strict=True))
    uids = {name: pki["metadata"]["uid"] for name, pki in pkis.items()}

    def every_pki_warned_and_retried() -> dict[str, list[dict[str, Any]]] | None:
        """Each Pki's Warning seen with count >= 2: told once, then refreshed by a retry."""
        grouped = warnings_by_uid(kube)
        for uid in uids.values():
            if not any(event["count"] >= 2 for event in grouped.get(uid, [])):
                return None
        return grouped

    grouped = eventually(
        every_pki_warned_and_retried, 45, "every Pki's Warning and a retry", every=0.25
    )
    elapsed = time.monotonic() - started

    for name, reason in expected.items():
        (event,) = grouped[uids[name]]  # retries patched the one object, never added one
        assert event["reason"] == reason, (name, event["reason"], event["message"])
        assert event["involvedObject"]["kind"] == "Pki"
        assert event["involvedObject"]["name"] == name
        # A NotAllowed message names the Pki; a SecretConflict one names its Secret.
        assert (f"Pki {name}" if reason == NOT_ALLOWED else f'"{name}-tls"') in event["message"]
        assert not event["message"].startswith(COMBINED)

    on_hub = grouped.get(hub["metadata"]["uid"], [])
    by_reason: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in on_hub:
        by_reason[event["reason"]].append(event)
    assert set(by_reason) <= {CONFLICT, NOT_ALLOWED}
    assert by_reason, "the consuming Pod is told too"
    for reason, events in by_reason.items():
        assert len(events) <= SIMILAR_MESSAGES, (reason, len(events))
    combined = [event for event in on_hub if event["message"].startswith(COMBINED)]
    assert combined, "many different messages on one object fold into a combined Event"
    assert len(combined) <= len(by_reason)
    writes = sum(event["count"] for event in on_hub)
    assert writes <= SPAM_BURST + elapsed / 300 + 1, f"{writes} writes on the hub Pod"

    for name, created in foreign.items():
        now = kube.get(SECRETS.path(NAMESPACE, f"{name}-tls"))
        assert now["data"] == created["data"], name
        assert now["type"] == "Opaque"
        assert now["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        assert not now["metadata"].get("ownerReferences")
