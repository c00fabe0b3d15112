"""The issued-Secret cache's form: facts instead of PEM, others' annotations kept, no key."""

from __future__ import annotations

import copy
import json
import tracemalloc
from datetime import timedelta

from issuer.controllers.pkis.decisions.key_reuse import keeps_key, reusable_key, same_key_source
from issuer.controllers.pkis.decisions.verdict import Step, Trigger, decide_issuance
from issuer.controllers.pkis.inputs.stored import StoredCertificate, read_stored
from issuer.runtime import issuance
from issuer.runtime.caches import ISSUED_SECRET_METADATA
from issuer.runtime.issued_facts import (
    FACTS,
    SERIAL_ANNOTATION,
    cached_facts,
    keep_facts,
    names_digest,
)
from shared.kube.cache import WatchCache
from shared.kube.client import SECRETS, Kube
from shared.kube.connection import Connection
from tests.unit.builders import issued_secret, make_ca, make_pki, serial_of

CA = make_ca()
PKI = make_pki()
SECRET = issued_secret(PKI, CA)


def test_the_cache_keeps_facts_and_ca_crt_not_the_certificate_and_key() -> None:
    whole = copy.deepcopy(SECRET)
    whole["metadata"]["annotations"]["example.com/note"] = "kept"
    cached = keep_facts(whole)
    assert cached["data"] == {"ca.crt": SECRET["data"]["ca.crt"]}
    assert cached["metadata"]["annotations"] == {"example.com/note": "kept"}
    assert cached["metadata"]["labels"] == SECRET["metadata"]["labels"]
    facts = cached_facts(cached)
    assert facts is not None and not isinstance(facts, str)
    assert format(facts.serial, "X") == serial_of(SECRET).lstrip("0")
    assert facts.serial_recorded and facts.key_matches
    assert facts.key_spec == issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256)
    assert facts.issuer_key_id == issuance.subject_key_id(CA.certificate)
    assert cached_facts(SECRET) is None  # a Secret read whole has no facts until parsed


def test_unreadable_data_is_kept_as_words() -> None:
    broken = copy.deepcopy(SECRET)
    broken["data"]["tls.key"] = "!!"
    assert cached_facts(keep_facts(broken)) == "tls.key is not base64"
    assert read_stored(keep_facts(broken)) == "tls.key is not base64"


def test_a_wrong_serial_annotation_is_a_fact() -> None:
    altered = copy.deepcopy(SECRET)
    altered["metadata"]["annotations"][SERIAL_ANNOTATION] = "01"
    facts = cached_facts(keep_facts(altered))
    assert facts is not None and not isinstance(facts, str)
    assert not facts.serial_recorded


def test_names_compare_as_sets_and_ip_addresses_by_value() -> None:
    one = names_digest("a", ["x", "y"], ["fd00::1", "10.0.0.1"], ["server auth"])
    assert one == names_digest("a", ["y", "x"], ["10.0.0.1", "fd00:0::1"], ["server auth"])
    assert one != names_digest("b", ["x", "y"], ["10.0.0.1", "fd00::1"], ["server auth"])
    assert one != names_digest("a", ["x"], ["10.0.0.1", "fd00::1"], ["server auth"])


def test_a_kept_key_comes_from_the_secret_read_whole() -> None:
    """rotationPolicy Never: the cached form has no key; the Secret read again gives it."""
    never = make_pki(privateKey={"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"})
    secret = issued_secret(never, CA)
    facts = cached_facts(keep_facts(copy.deepcopy(secret)))
    assert facts is not None and not isinstance(facts, str)
    late = facts.not_after - timedelta(minutes=1)  # renewal due
    verdict = decide_issuance(never, keep_facts(copy.deepcopy(secret)), CA, [], late)
    assert verdict.step is Step.ISSUE and verdict.why is Trigger.RENEWAL_DUE
    assert keeps_key(verdict)
    assert reusable_key(verdict) is None  # not in the cache
    assert verdict.stored is not None
    read = read_stored(secret)
    assert isinstance(read, StoredCertificate) and read.key is not None
    assert same_key_source(verdict.stored, read)
    other = read_stored(issued_secret(never, CA))
    assert not same_key_source(verdict.stored, other)  # re-issued meanwhile


def test_the_cached_form_is_much_smaller() -> None:
    """What the change is for: measured, a cached issued Secret is under half its whole size."""

    def held(make: object) -> int:
        tracemalloc.start()
        kept = [make() for _ in range(200)]  # type: ignore[operator]
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(kept) == 200
        return size

    text = json.dumps(SECRET)  # each decoded anew, as a watch event is: no string shared
    # Trimmed and interned as the cache does it (keys and ca.crt shared by all).
    before = WatchCache(Kube(Connection("https://127.0.0.1:1")), SECRETS)
    after = WatchCache(
        Kube(Connection("https://127.0.0.1:1")),
        SECRETS,
        keep_metadata=ISSUED_SECRET_METADATA,
        keep_fields=("data", "type"),
        reduce=keep_facts,
    )
    whole = held(lambda: before._trim(json.loads(text)))
    cached = held(lambda: after._trim(json.loads(text)))
    assert FACTS in keep_facts(copy.deepcopy(SECRET))
    assert cached < whole / 2, (cached, whole)
