"""Pkis and Pods packed in the issuer's caches: a fraction of the memory, the same objects back."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
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
from issuer.controllers.pkis.reporting.consumers import consumptions, reading_pod
from issuer.controllers.pkis.reporting.metrics import certificate_samples
from issuer.controllers.pkis.reporting.pod_warnings import recorded_failure
from issuer.runtime import packings
from issuer.runtime.caches import ISSUED_SECRET_METADATA, PKI_METADATA
from issuer.runtime.issued_facts import cached_facts, keep_facts
from shared.kube.cache import WatchCache
from shared.kube.client import PKIS, PODS, SECRETS, Kube
from shared.kube.connection import Connection
from shared.kube.packing import DeflatedJSON
from tests.unit.builders import NOW, issued_secret, make_ca, make_pki

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
        f"web-{number:03d}-tls",
        SERIAL,
        NOW,
        NOW + timedelta(days=90),
        NOW + timedelta(days=60),
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


def pki_cache() -> WatchCache:
    """The issuer's Pki cache, as ``issuer.runtime.caches`` builds it (never started)."""
    return WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        PKIS,
        keep_metadata=PKI_METADATA,
        keep_fields=("apiVersion", "kind", "spec", "status"),
        packing=packings.PKIS,
    )


def pod_cache() -> WatchCache:
    return WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        PODS,
        keep_metadata=("uid",),
        keep_fields=("spec",),
        reduce=reading_pod,
        packing=packings.PODS,
    )


def pod(number: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"pod-{number:04d}",
            "namespace": "app1",
            "uid": f"7a0e5c1d-3b2f-4e6a-8c9d-{number:012d}",
            "resourceVersion": str(2_000_000 + number),
            "labels": {"app": "web"},
        },
        "spec": {
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.invalid/app:1",
                    "env": [
                        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}
                    ],
                }
            ],
            "volumes": [{"name": "tls", "secret": {"secretName": f"web-{number:03d}-tls"}}],
        },
        "status": {"phase": "Pending"},
    }


def held_per_object(make: Callable[[int], object], count: int = 500) -> float:
    """Bytes each of ``count`` objects made by ``make`` keeps allocated."""
    tracemalloc.start()
    kept = [make(number) for number in range(count)]
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == count
    return size / count


def cached(cache: WatchCache, obj: dict[str, Any]) -> dict[str, Any] | None:
    """``obj`` delivered by the watch (decoded anew, as each event is), then read back."""
    cache._apply("ADDED", cache._trim(json.loads(json.dumps(obj))))
    metadata = obj["metadata"]
    return cache.get(metadata["namespace"], metadata["name"])


# -- the same objects back ----------------------------------------------------------


@pytest.mark.parametrize(
    "pki", [ready_pki(1), failing_pki(), make_pki()], ids=["ready", "failing", "new"]
)
def test_a_pki_comes_back_as_the_cache_trimmed_it(pki: dict[str, Any]) -> None:
    plain = WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        PKIS,
        keep_metadata=PKI_METADATA,
        keep_fields=("apiVersion", "kind", "spec", "status"),
    )
    assert cached(pki_cache(), pki) == cached(plain, pki)


def test_decisions_read_the_same_from_a_packed_pki() -> None:
    for pki in (ready_pki(2), failing_pki()):
        back = cached(pki_cache(), pki)
        assert back is not None
        # The status writer finds nothing to write, as it would on the whole object.
        assert status_patch(back["status"], pki["status"]) is None
        assert recorded_failure(back) == recorded_failure(pki)
        assert list(certificate_samples(back)) == list(certificate_samples(pki))
    assert recorded_failure(failing_pki()) is not None


def test_each_read_is_a_fresh_object() -> None:
    cache = pki_cache()
    first = cached(cache, ready_pki(3))
    assert first is not None
    first["status"]["conditions"].clear()  # a reader changing its copy changes nothing cached
    again = cache.get("app1", "web-003")
    assert again is not None and again["status"]["conditions"]


def test_change_handlers_get_the_delivered_object_not_a_decoded_copy() -> None:
    seen: list[dict[str, Any]] = []
    cache = pki_cache()
    cache.add_listener(lambda kind, obj: seen.append(obj))
    trimmed = cache._trim(json.loads(json.dumps(ready_pki(4))))
    cache._apply("ADDED", trimmed)
    assert seen == [trimmed] and seen[0] is trimmed
    assert cache.keys() == [("app1", "web-004")] and cache.keys("other") == []
    cache._apply("DELETED", trimmed)
    assert cache.get("app1", "web-004") is None and len(cache) == 0


def test_a_pod_keeps_its_name_uid_and_secret_references() -> None:
    back = cached(pod_cache(), pod(5))
    assert back is not None
    assert back["metadata"] == {
        "name": "pod-0005",
        "namespace": "app1",
        "uid": "7a0e5c1d-3b2f-4e6a-8c9d-000000000005",
        "resourceVersion": "2000005",
    }
    assert consumptions(back, "web-005-tls") == consumptions(pod(5), "web-005-tls")
    assert consumptions(back, "db") == consumptions(pod(5), "db")


def test_what_json_cannot_hold_exactly_stays_as_it_is() -> None:
    packer = DeflatedJSON({"a": 1})
    assert packer.pack({"size": 2**70}) is None
    cache = pki_cache()
    odd = make_pki(name="odd", size=2**70)
    assert cached(cache, odd) == cache._trim(json.loads(json.dumps(odd)))


def test_an_unlike_object_packs_exactly_too() -> None:
    packer = DeflatedJSON({"spec": {"serviceName": "web"}})
    obj = {"kind": "Other", "data": ["é", 1.5, None, True, {"nested": [1, 2]}]}
    packed = packer.pack(obj)
    assert packed is not None and packer.unpack(packed) == obj


# -- what it is for ---------------------------------------------------------------


def test_a_cached_pki_takes_a_tenth_of_its_decoded_form() -> None:
    plain = WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        PKIS,
        keep_metadata=PKI_METADATA,
        keep_fields=("apiVersion", "kind", "spec", "status"),
    )
    packed = pki_cache()
    texts = [json.dumps(ready_pki(number)) for number in range(500)]
    whole = held_per_object(lambda n: plain._stored(plain._trim(json.loads(texts[n]))))
    small = held_per_object(lambda n: packed._stored(packed._trim(json.loads(texts[n]))))
    assert small < 256, small  # bytes per Ready Pki
    assert small < whole / 8, (small, whole)


def test_a_cached_pod_takes_a_fraction_of_its_decoded_form() -> None:
    plain = WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        PODS,
        keep_metadata=("uid",),
        keep_fields=("spec",),
        reduce=reading_pod,
    )
    packed = pod_cache()
    texts = [json.dumps(pod(number)) for number in range(500)]
    whole = held_per_object(lambda n: plain._stored(plain._trim(json.loads(texts[n]))))
    small = held_per_object(lambda n: packed._stored(packed._trim(json.loads(texts[n]))))
    assert small < 200, small
    assert small < whole / 5, (small, whole)


def test_conclusions_are_the_same_on_a_packed_pki() -> None:
    """The whole reconcile's pure end, on the object read back from the cache."""
    pki = failing_pki()
    back = cached(pki_cache(), pki)
    assert back is not None
    verdict = refused(pki, 'spec.serviceName: "app1" is not allowed', NOW)
    assert conclude(back, verdict, None, NOW) == conclude(pki, verdict, None, NOW)


def issued_cache() -> WatchCache:
    return WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        SECRETS,
        keep_metadata=ISSUED_SECRET_METADATA,
        keep_fields=("data", "type"),
        reduce=keep_facts,
        packing=packings.ISSUED_SECRETS,
    )


def test_an_issued_secret_keeps_its_facts_and_shares_its_ca_bundle() -> None:
    ca = make_ca()
    secret = issued_secret(make_pki(), ca)
    plain = WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        SECRETS,
        keep_metadata=ISSUED_SECRET_METADATA,
        keep_fields=("data", "type"),
        reduce=keep_facts,
    )
    cache = issued_cache()
    back = cached(cache, secret)
    assert back == cached(plain, secret)
    assert back is not None and cached_facts(back) == cached_facts(keep_facts(secret))
    other = issued_secret(make_pki(name="other"), ca)
    again = cached(cache, other)
    assert again is not None and again["data"]["ca.crt"] is back["data"]["ca.crt"]


def test_a_cached_issued_secret_takes_a_fraction_of_its_decoded_form() -> None:
    ca = make_ca()
    texts = [json.dumps(issued_secret(make_pki(name=f"web-{n:03d}"), ca)) for n in range(200)]
    plain = WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        SECRETS,
        keep_metadata=ISSUED_SECRET_METADATA,
        keep_fields=("data", "type"),
        reduce=keep_facts,
    )
    packed = issued_cache()
    # Parsing the certificate allocates caches of its own: the first of each is not counted.
    plain._stored(plain._trim(json.loads(texts[0])))
    packed._stored(packed._trim(json.loads(texts[0])))
    whole = held_per_object(lambda n: plain._stored(plain._trim(json.loads(texts[n]))), 200)
    small = held_per_object(lambda n: packed._stored(packed._trim(json.loads(texts[n]))), 200)
    assert small < whole * 0.6, (small, whole)
