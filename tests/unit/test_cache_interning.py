"""Cached objects share their repeated strings and stay equal to what the API server sent."""

from __future__ import annotations

import json
from typing import Any

from shared.kube.cache import _interned


def decoded(obj: Any) -> Any:
    """A fresh decode, as each watch event is: no string shared with another object."""
    return json.loads(json.dumps(obj))


SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "web-tls",
        "namespace": "apps",
        "uid": "0b5f7f8c-0000-4000-8000-000000000001",
        "labels": {"app.kubernetes.io/managed-by": "pkiwarden", "pkiwarden.dev/pki": "web"},
        "ownerReferences": [{"apiVersion": "pkiwarden.dev/v1alpha1", "kind": "Pki"}],
    },
    "data": {"ca.crt": "Q0E=" * 400, "tls.crt": "Y2VydA==" * 200},
}


def test_equal_to_the_decoded_object() -> None:
    assert _interned(decoded(SECRET)) == SECRET


def test_repeated_strings_are_shared_unique_ones_are_not() -> None:
    one, two = _interned(decoded(SECRET)), _interned(decoded(SECRET))
    assert next(iter(one["metadata"])) is next(iter(two["metadata"]))  # keys
    assert one["metadata"]["namespace"] is two["metadata"]["namespace"]
    assert (
        one["metadata"]["labels"]["pkiwarden.dev/pki"]
        is two["metadata"]["labels"]["pkiwarden.dev/pki"]
    )
    assert (
        one["metadata"]["ownerReferences"][0]["kind"]
        is two["metadata"]["ownerReferences"][0]["kind"]
    )
    assert one["data"]["ca.crt"] is two["data"]["ca.crt"]  # the CA bundle, long but shared
    assert one["data"]["tls.crt"] is not two["data"]["tls.crt"]  # each Secret's own
    assert one["metadata"]["uid"] is not two["metadata"]["uid"]
