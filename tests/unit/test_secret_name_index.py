"""The index of which Pkis name which Secret: kept current as Pkis come, change and go."""

from __future__ import annotations

from issuer.controllers.pkis.inputs.secret_index import SecretNameIndex
from tests.unit.builders import NAMESPACE, make_pki


def test_defaulted_names_renames_shared_names_and_departures() -> None:
    index = SecretNameIndex()
    index.update(NAMESPACE, "a", make_pki(name="a"))
    index.update(NAMESPACE, "b", make_pki(name="b", secretName="a-tls"))
    assert index.pkis_naming(NAMESPACE, "a-tls") == ["a", "b"]
    index.update(NAMESPACE, "b", make_pki(name="b", secretName="b-own"))
    assert index.pkis_naming(NAMESPACE, "a-tls") == ["a"]
    assert index.pkis_naming(NAMESPACE, "b-own") == ["b"]
    index.update(NAMESPACE, "a", None)
    assert index.pkis_naming(NAMESPACE, "a-tls") == []
    assert index.pkis_naming("elsewhere", "b-own") == []
    index.update(NAMESPACE, "b", make_pki(name="b", secretName="b-own"))  # unchanged
    assert index.pkis_naming(NAMESPACE, "b-own") == ["b"]
