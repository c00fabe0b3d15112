"""The spec hash is what the issuer compares to decide a Pki changed.

An upgrade that adds a defaulted field must not change it: every Secret issued
by the earlier release would be re-issued at once.
"""

from __future__ import annotations

from issuer.controllers.pkis.decisions.verdict import spec_hash
from shared.defaults import apply_defaults

# The hash release 0.2.0 wrote for this Pki, before spec.authority existed.
HASH_BEFORE_AUTHORITIES = "ac8dc2345e7a165455a925c35fdbcd8f"


def _defaulted_spec(**spec: object) -> dict[str, object]:
    pki = {
        "metadata": {"name": "api", "namespace": "app1"},
        "spec": {"serviceName": "api", "dnsNames": ["api.app1.svc"], **spec},
    }
    defaulted: dict[str, object] = apply_defaults(pki)["spec"]
    return defaulted


def test_the_default_authority_keeps_the_hash_an_earlier_release_wrote() -> None:
    spec = _defaulted_spec()
    assert spec["authority"] == "default"
    assert spec_hash(spec) == HASH_BEFORE_AUTHORITIES
    assert spec_hash(_defaulted_spec(authority="default")) == HASH_BEFORE_AUTHORITIES


def test_another_authority_is_a_change() -> None:
    assert spec_hash(_defaulted_spec(authority="platform")) != HASH_BEFORE_AUTHORITIES
