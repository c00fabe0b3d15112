from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from pkiwarden.generate.crds import main, rendered_files

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def _nodes(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from _nodes(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            yield from _nodes(schema[key])


def _load(name: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(rendered_files()[name])
    return crd


@pytest.mark.parametrize("name", ["pkis.yaml", "pkipolicies.yaml"])
def test_files_on_disk_equal_the_rendering(name: str) -> None:
    assert (CRDS / name).read_text(encoding="utf-8") == rendered_files()[name], "run `make crds`"


@pytest.mark.parametrize("name", ["pkis.yaml", "pkipolicies.yaml"])
def test_schema_is_structural_without_value_rules_or_defaults(name: str) -> None:
    """The API server checks the CRD before the webhook: a value rule there would
    replace pkiwarden's message and hide every other finding."""
    root = _load(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    value_rules = {"pattern", "enum", "minimum", "maximum", "minLength", "minItems"}
    for node in _nodes(root):
        assert "type" in node
        assert not value_rules & set(node), node
        assert not {"default", "allOf", "if", "then", "not", "$schema"} & set(node)
        assert node.get("additionalProperties") is not False
        assert not any(key.startswith("x-pkiwarden") for key in node)


def test_pki_crd() -> None:
    crd = _load("pkis.yaml")
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "pkis.pkiwarden.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["pki"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Secret": ".status.secretName",
        "Service": ".spec.serviceName",
        "Expires": ".status.notAfter",
        "Age": ".metadata.creationTimestamp",
        "Reason": '.status.conditions[?(@.type=="Ready")].reason',
        "Message": '.status.conditions[?(@.type=="Ready")].message',
    }
    wide = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority") == 1]
    assert wide == ["Reason", "Message"]
    properties = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert properties["commonName"]["maxLength"] == 64
    assert properties["dnsNames"]["maxItems"] == 100
    assert "Default: 2160h." in properties["duration"]["description"]
    assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] == ["serviceName"]


def test_policy_crd_is_cluster_scoped() -> None:
    spec = _load("pkipolicies.yaml")["spec"]
    assert spec["scope"] == "Cluster"
    assert spec["names"]["shortNames"] == ["pkipol"]
    assert "subresources" not in spec["versions"][0]
    columns = spec["versions"][0]["additionalPrinterColumns"]
    shown = [c["name"] for c in columns if not c.get("priority")]
    assert shown == ["Namespaces", "Selector", "Services", "Age"]
    wide = [c["name"] for c in columns if c.get("priority") == 1]
    assert wide == ["DNS Names", "IP Ranges", "Max Duration"]


def test_main_writes_both_files(tmp_path: Path) -> None:
    assert main([str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "pkiauthorities.yaml",
        "pkipolicies.yaml",
        "pkis.yaml",
    ]
    assert main([]) == 2


def test_descriptions_list_the_allowed_values_and_defaults() -> None:
    """``kubectl explain pki.spec.usages`` shows the array's description: the values go there."""
    spec = _load("pkis.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    properties = spec["spec"]["properties"]
    usages = properties["usages"]["description"]
    assert "Allowed: server auth, client auth, digital signature, key encipherment," in usages
    assert (
        "Default for ECDSA and Ed25519 keys: server auth, digital signature; "
        "for RSA keys: server auth, digital signature, key encipherment."
    ) in usages
    key = properties["privateKey"]["properties"]
    assert "Allowed: ECDSA, RSA, Ed25519. Default: ECDSA." in key["algorithm"]["description"]
    assert "RSA 2048, 3072 or 4096" in key["size"]["description"]
    assert "Allowed: Always, Never." in key["rotationPolicy"]["description"]
    assert "at most 87600h" in properties["duration"]["description"]
