"""A Pki's work-queue key is one string, however many times it is made."""

from __future__ import annotations

from issuer.controllers.pkis.inputs.watches import pki_key


def test_the_same_pki_gives_the_same_string_object() -> None:
    namespace, name = "".join(["app", "1"]), "".join(["web-", "000"])  # made at run time
    first, second = pki_key(namespace, name), pki_key(namespace, name)
    assert first == "app1/web-000"
    assert first is second
