"""Pods and issued Secrets packed in the issuer's caches: less memory, the same objects back."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

from issuer.controllers.pkis.reporting.consumers import consumptions, reading_pod
from issuer.runtime import packings
from issuer.runtime.caches import ISSUED_SECRET_METADATA
from issuer.runtime.issued_facts import cached_facts, keep_facts
from shared.kube.cache import WatchCache
from shared.kube.client import PKIS, PODS, SECRETS, Kube
from shared.kube.connection import Connection
from shared.kube.packing import DeflatedJSON
from tests.unit.builders import issued_secret, make_ca, make_pki


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


def test_each_read_is_a_fresh_object() -> None:
    cache = pod_cache()
    first = cached(cache, pod(3))
    assert first is not None
    first["spec"]["volumes"].clear()  # a reader changing its copy changes nothing cached
    again = cache.get("app1", "pod-0003")
    assert again is not None and again["spec"]["volumes"]


def test_change_handlers_get_the_delivered_object_not_a_decoded_copy() -> None:
    seen: list[dict[str, Any]] = []
    cache = pod_cache()
    cache.add_listener(lambda kind, obj: seen.append(obj))
    trimmed = cache._trim(json.loads(json.dumps(pod(4))))
    assert trimmed is not None
    cache._apply("ADDED", trimmed)
    assert seen == [trimmed] and seen[0] is trimmed
    assert cache.keys() == [("app1", "pod-0004")] and cache.keys("other") == []
    assert cache.list("app1") == [trimmed]
    cache._apply("DELETED", trimmed)
    assert cache.get("app1", "pod-0004") is None and len(cache) == 0


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
    cache = WatchCache(Kube(Connection("https://127.0.0.1:1")), PKIS, packing=packer)
    odd = {"metadata": {"namespace": "app1", "name": "odd"}, "spec": {"size": 2**70}}
    assert cached(cache, odd) == odd


def test_an_unlike_object_packs_exactly_too() -> None:
    packer = DeflatedJSON({"spec": {"serviceName": "web"}})
    obj = {"kind": "Other", "data": ["é", 1.5, None, True, {"nested": [1, 2]}]}
    packed = packer.pack(obj)
    assert packed is not None and packer.unpack(packed) == obj


# -- what it is for ---------------------------------------------------------------


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


def issued_cache(packed: bool = True) -> WatchCache:
    """The issuer's cache of its Secrets, as ``issuer.runtime.caches`` builds it (never started)."""
    return WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        SECRETS,
        keep_metadata=ISSUED_SECRET_METADATA,
        keep_fields=("data", "type"),
        reduce=keep_facts,
        packing=packings.ISSUED_SECRETS if packed else None,
    )


def test_an_issued_secret_keeps_its_facts_and_shares_its_ca_bundle() -> None:
    ca = make_ca()
    secret = issued_secret(make_pki(), ca)
    plain = issued_cache(packed=False)
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
    plain = issued_cache(packed=False)
    packed = issued_cache()
    # Parsing the certificate allocates caches of its own: the first of each is not counted.
    plain._stored(plain._trim(json.loads(texts[0])))
    packed._stored(packed._trim(json.loads(texts[0])))
    whole = held_per_object(lambda n: plain._stored(plain._trim(json.loads(texts[n]))), 200)
    small = held_per_object(lambda n: packed._stored(packed._trim(json.loads(texts[n]))), 200)
    assert small < whole * 0.6, (small, whole)
