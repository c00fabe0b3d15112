"""A cached Pki's status, packed: the fields read each second at hand, the rest decoded on read."""

from __future__ import annotations

import json
import tracemalloc
from datetime import timedelta
from typing import Any

import pytest

from issuer.controllers.pkis.decisions.conclusion import conclude
from issuer.controllers.pkis.decisions.status import (
    CertificateFacts,
    Outcome,
    next_status,
    status_patch,
)
from issuer.controllers.pkis.decisions.verdict import Trigger, refused
from issuer.controllers.pkis.reporting.metrics import certificate_samples
from issuer.controllers.pkis.reporting.pod_warnings import recorded_failure
from issuer.runtime.caches import PKI_METADATA
from issuer.runtime.packed_status import PackedStatus, pack_status, whole_status, with_whole_status
from shared.kube.cache import WatchCache
from shared.kube.client import PKIS, Kube
from shared.kube.connection import Connection
from tests.unit.builders import NOW, make_pki

SERIAL = "5d41402abc4b2a76b9719d911017c592a1b2c3d4"


def ready_pki(number: int) -> dict[str, Any]:
    """A Pki as the API server returns it after the issuer's status write."""
    pki = make_pki(name=f"web-{number:03d}", uid=f"2f1c9a4e-8d7b-4c3a-9e21-{number:012d}")
    pki["spec"]["privateKey"] = {"algorithm": "ECDSA", "size": 256}
    pki["metadata"].update(
        resourceVersion=str(1_000_000 + number),
        creationTimestamp="2030-01-01T11:59:00Z",
        managedFields=[{"manager": "kubectl", "operation": "Update"}],
    )
    facts = CertificateFacts(
        f"web-{number:03d}-tls", SERIAL, NOW, NOW + timedelta(days=90), NOW + timedelta(days=60)
    )
    outcome = Outcome(True, "Issued", f"certificate {SERIAL} issued", facts, issued=True)
    pki["status"] = next_status(pki, outcome, NOW)
    return pki


def failing_pki() -> dict[str, Any]:
    pki = make_pki(uid="2f1c9a4e-8d7b-4c3a-9e21-00000000ffff")
    outcome = Outcome(
        False,
        "NotAllowed",
        'spec.serviceName: "app1" is not allowed in namespace "app1"',
        None,
        pending=Trigger.NEW,
        next_retry=NOW + timedelta(seconds=40),
    )
    pki["status"] = next_status(pki, outcome, NOW)
    return pki


def pki_cache(packed: bool = True) -> WatchCache:
    """The issuer's Pki cache as ``issuer.runtime.caches`` builds it (never started)."""
    return WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        PKIS,
        keep_metadata=PKI_METADATA,
        keep_fields=("apiVersion", "kind", "spec", "status"),
        reduce=pack_status if packed else None,
    )


def cached(cache: WatchCache, pki: dict[str, Any]) -> dict[str, Any]:
    """``pki`` delivered by the watch (decoded anew, as each event is), then read back."""
    trimmed = cache._trim(json.loads(json.dumps(pki)))
    assert trimmed is not None
    cache._apply("ADDED", trimmed)
    back = cache.get(pki["metadata"]["namespace"], pki["metadata"]["name"])
    assert back is not None
    return back


@pytest.mark.parametrize(
    "pki", [ready_pki(1), failing_pki(), make_pki()], ids=["ready", "failing", "no status"]
)
def test_the_status_comes_back_equal(pki: dict[str, Any]) -> None:
    back = cached(pki_cache(), pki)
    plain = cached(pki_cache(packed=False), pki)
    assert with_whole_status(back) == plain
    if "status" in pki:
        status = back["status"]
        assert isinstance(status, PackedStatus)
        assert dict(status) == pki["status"] and len(status) == len(pki["status"])
        assert status.get("secretName") == pki["status"].get("secretName")
        assert status.get("failedIssuanceAttempts") == pki["status"]["failedIssuanceAttempts"]
        assert status.get("nextRetryTime") == pki["status"].get("nextRetryTime")
        assert ("conditions" in status) and ("absent" not in status)


def test_decisions_read_the_same_from_the_cached_pki() -> None:
    for pki in (ready_pki(2), failing_pki()):
        back = cached(pki_cache(), pki)
        whole = with_whole_status(back)
        assert whole is not None
        # The status writer finds nothing to write, as it would on the whole object.
        assert status_patch(whole["status"], pki["status"]) is None
        assert recorded_failure(back) == recorded_failure(pki)
        assert list(certificate_samples(back)) == list(certificate_samples(pki))
        verdict = refused(pki, 'spec.serviceName: "app1" is not allowed', NOW)
        assert conclude(whole, verdict, None, NOW) == conclude(pki, verdict, None, NOW)
    assert recorded_failure(failing_pki()) is not None


def test_a_status_that_json_cannot_hold_exactly_stays_a_dict() -> None:
    pki = {**make_pki(), "status": {"observedGeneration": 2**70}}
    assert pack_status(pki) is pki
    assert whole_status(pki["status"]) is pki["status"]


def test_a_cached_ready_pki_takes_under_two_thirds_of_its_decoded_form() -> None:
    texts = [json.dumps(ready_pki(number)) for number in range(500)]

    def held(cache: WatchCache) -> float:
        tracemalloc.start()
        kept = [cache._trim(json.loads(text)) for text in texts]
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(kept) == len(texts)
        return size / len(texts)

    plain, packed = held(pki_cache(packed=False)), held(pki_cache())
    assert packed < plain * 2 / 3, (packed, plain)
