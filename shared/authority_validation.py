"""Validation of a PkiAuthority: pure, returning findings like the Pki and PkiPolicy rules.

The webhook, the issuer and ``pkiwarden lint`` share it, so a platform team
reads the same words wherever a problem with the CA's settings surfaces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shared.authority_schema import MIN_CA_DURATION, PKI_AUTHORITY_SCHEMA
from shared.durations import DurationError, format_duration, parse_duration
from shared.findings import Category, Finding, Severity
from shared.names import dns1123_subdomain_problem
from shared.schema import KEY_SIZES
from shared.structure import check_structure, field_order_key
from shared.validation import key_size_problem

_NOT_A_MAPPING = "must be an object (a mapping with apiVersion, kind, metadata and spec)"


def _invalid(path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.ERROR, Category.INVALID_SPEC, path, problem, value)


def _mapping(obj: object, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def validate_authority(authority: Any) -> list[Finding]:
    """All findings for a PkiAuthority: errors first, in field order."""
    if not isinstance(authority, Mapping):
        return [_invalid("object", _NOT_A_MAPPING)]
    structural = check_structure(authority, PKI_AUTHORITY_SCHEMA)
    spec = _mapping(authority, "spec")
    semantic = [*_secret_names(spec), *_generate_rules(spec), *_rotation_rules(spec)]
    shaped = {finding.path for finding in structural}
    kept = [*structural, *(f for f in semantic if f.path not in shaped)]
    return sorted(
        kept, key=lambda f: (not f.is_error, field_order_key(f.path, PKI_AUTHORITY_SCHEMA))
    )


def _secret_names(spec: Mapping[str, Any]) -> Iterator[Finding]:
    for field in ("secretName", "nextSecretName"):
        name = _text(spec, field)
        if name and (problem := dns1123_subdomain_problem(name)):
            yield _invalid(f"spec.{field}", problem, name)
    current, following = _text(spec, "secretName"), _text(spec, "nextSecretName")
    if current and current == following:
        yield _invalid(
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
        return None, [_invalid(path, str(error), text)]


def _generate_rules(spec: Mapping[str, Any]) -> Iterator[Finding]:
    generate = _mapping(spec, "generate")
    duration, found = _duration_of("spec.generate.duration", _text(generate, "duration"))
    yield from found
    renew, found = _duration_of("spec.generate.renewBefore", _text(generate, "renewBefore"))
    yield from found
    minimum = parse_duration(MIN_CA_DURATION)
    if duration is not None and duration < minimum:
        yield _invalid(
            "spec.generate.duration",
            f"is shorter than the minimum for a CA, {MIN_CA_DURATION}",
            generate.get("duration"),
        )
    if duration is not None and renew is not None and renew >= duration:
        yield _invalid(
            "spec.generate.renewBefore",
            f"must be shorter than spec.generate.duration ({generate.get('duration')});"
            f' try "{format_duration(duration / 3)}"',
            generate.get("renewBefore"),
        )
    key = _mapping(generate, "privateKey")
    size, algorithm = key.get("size"), _text(key, "algorithm") or "ECDSA"
    if (
        isinstance(size, int)
        and not isinstance(size, bool)
        and algorithm in KEY_SIZES
        and (problem := key_size_problem(algorithm, size))
    ):
        yield _invalid("spec.generate.privateKey.size", problem, size)


def _rotation_rules(spec: Mapping[str, Any]) -> Iterator[Finding]:
    rotation = _mapping(spec, "rotation")
    text = _text(rotation, "trustPropagation")
    _, found = _duration_of("spec.rotation.trustPropagation", text)
    yield from found


def authority_change_findings(old: Any, new: Any) -> list[Finding]:
    """Warnings for an update of a PkiAuthority, which validating ``new`` alone cannot see.

    A changed spec.generate does nothing to the active CA: it is read when pkiwarden
    makes the next one. Without a word, an edited commonName or key looks ignored.
    """
    before, after = _mapping(old, "spec").get("generate"), _mapping(new, "spec").get("generate")
    if before is None or after is None or before == after:
        return []
    return [
        Finding(
            Severity.WARNING,
            Category.ADVICE,
            "spec.generate",
            "is used for the next CA only, made at the next rotation (its renewal time, or "
            "pkiwarden ca rotate)",
        )
    ]


__all__ = ["authority_change_findings", "validate_authority"]
