"""Validation of a PkiAuthority: pure, returning findings like the Pki and PkiPolicy rules.

The webhook, the issuer and ``pkiwarden lint`` share it, so a platform team
reads the same words wherever a problem with the CA's settings surfaces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shared.authority_schema import MIN_CA_DURATION, PKI_AUTHORITY_SCHEMA
from shared.durations import DurationError, format_duration, parse_duration
from shared.findings import Category, Finding
from shared.names import dns1123_subdomain_problem
from shared.schema import KEY_SIZES
from shared.structure import check_structure
from shared.validation.common import (
    NOT_A_MAPPING,
    invalid_finding,
    key_size_problem,
    mapping_field,
    ordered,
    text_field,
    warning_finding,
)


def validate_authority(authority: Any) -> list[Finding]:
    """All findings for a PkiAuthority: errors first, in field order."""
    if not isinstance(authority, Mapping):
        return [invalid_finding("object", NOT_A_MAPPING)]
    structural = check_structure(authority, PKI_AUTHORITY_SCHEMA)
    spec = mapping_field(authority, "spec")
    semantic = [*_secret_names(spec), *_generate_rules(spec), *_rotation_rules(spec)]
    shaped = {finding.path for finding in structural}
    kept = [*structural, *(f for f in semantic if f.path not in shaped)]
    return ordered(kept, PKI_AUTHORITY_SCHEMA)


def _secret_names(spec: Mapping[str, Any]) -> Iterator[Finding]:
    for field in ("secretName", "nextSecretName"):
        name = text_field(spec, field)
        if name and (problem := dns1123_subdomain_problem(name)):
            yield invalid_finding(f"spec.{field}", problem, name)
    current, following = text_field(spec, "secretName"), text_field(spec, "nextSecretName")
    if current and current == following:
        yield invalid_finding(
            "spec.nextSecretName",
            "is the active CA's Secret (spec.secretName); name the Secret holding the next CA,"
            " or leave the field out",
            following,
        )


def _duration_of(path: str, text: str | None) -> tuple[Any, list[Finding]]:
    if text is None:
        return None, []
    try:
        return parse_duration(text), []
    except DurationError as error:
        return None, [invalid_finding(path, str(error), text)]


def _generate_rules(spec: Mapping[str, Any]) -> Iterator[Finding]:
    generate = mapping_field(spec, "generate")
    duration, found = _duration_of("spec.generate.duration", text_field(generate, "duration"))
    yield from found
    renew, found = _duration_of("spec.generate.renewBefore", text_field(generate, "renewBefore"))
    yield from found
    minimum = parse_duration(MIN_CA_DURATION)
    if duration is not None and duration < minimum:
        yield invalid_finding(
            "spec.generate.duration",
            f"is shorter than the minimum for a CA, {MIN_CA_DURATION}",
            generate.get("duration"),
        )
    if duration is not None and renew is not None and renew >= duration:
        yield invalid_finding(
            "spec.generate.renewBefore",
            f"must be shorter than spec.generate.duration ({generate.get('duration')});"
            f' try "{format_duration(duration / 3)}"',
            generate.get("renewBefore"),
        )
    key = mapping_field(generate, "privateKey")
    size, algorithm = key.get("size"), text_field(key, "algorithm") or "ECDSA"
    if (
        isinstance(size, int)
        and not isinstance(size, bool)
        and algorithm in KEY_SIZES
        and (problem := key_size_problem(algorithm, size))
    ):
        yield invalid_finding("spec.generate.privateKey.size", problem, size)


def _rotation_rules(spec: Mapping[str, Any]) -> Iterator[Finding]:
    rotation = mapping_field(spec, "rotation")
    text = text_field(rotation, "trustPropagation")
    _, found = _duration_of("spec.rotation.trustPropagation", text)
    yield from found


def authority_change_findings(old: Any, new: Any) -> list[Finding]:
    """Warnings for an update of a PkiAuthority, which validating ``new`` alone cannot see.

    A changed spec.generate does nothing to the active CA: it is read when pkiwarden
    makes the next one. Without a word, an edited commonName or key looks ignored.
    """
    before, after = (
        mapping_field(old, "spec").get("generate"),
        mapping_field(new, "spec").get("generate"),
    )
    if before is None or after is None or before == after:
        return []
    return [
        warning_finding(
            Category.ADVICE,
            "spec.generate",
            "is used for the next CA only, made at the next rotation (its renewal time, or "
            "pkiwarden ca rotate)",
        )
    ]


__all__ = ["authority_change_findings", "validate_authority"]
