"""The README's API tables are the schema's descriptions, not a copy that drifts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pkiwarden.generate.reference import BEGIN, END, render, replace_section
from shared.schema import PKI_POLICY_SCHEMA, PKI_SCHEMA

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_api_reference_is_the_rendering() -> None:
    text = README.read_text()
    assert replace_section(text) == text, "README API tables drifted: run `make docs`"


@pytest.mark.parametrize("schema", [PKI_SCHEMA, PKI_POLICY_SCHEMA])
def test_every_spec_field_is_documented(schema: dict[str, object]) -> None:
    rendering = render()
    spec = schema["properties"]["spec"]  # type: ignore[index]
    for field in spec["properties"]:
        assert f"| `spec.{field}` |" in rendering


def test_a_missing_section_is_an_error() -> None:
    with pytest.raises(ValueError, match="api-reference"):
        replace_section("no markers here")
    assert replace_section(f"a\n{BEGIN}\nold\n{END}\nb").startswith(f"a\n{BEGIN}\n#### Pki")
