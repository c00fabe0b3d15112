"""What the validation of every kind shares: finding builders, field readers, ordering.

Each kind (Pki, PkiPolicy, PkiAuthority) has its own module beside this one,
as cert-manager keeps one validation file per kind; the pieces they all use
live here once, so a list, a quoted value or a duplicate reads the same in
every message. Nothing here does I/O, and no input makes these functions raise.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

from shared.durations import DurationError, parse_duration
from shared.findings import Category, Finding, Severity, errors, phrase
from shared.policy import IPAddress
from shared.schema import DEFAULT_DURATION, KEY_SIZES, MAX_DURATION, MIN_DURATION
from shared.shapes import is_mapping
from shared.structure import field_order_key
from shared.text import one_line

_LIST_LIMIT = 8
_GROUP_SHOWN = 3
NOT_A_MAPPING = "must be an object (a mapping with apiVersion, kind, metadata and spec)"
# The global bounds and default of a certificate's duration, parsed once: a Pki's
# spec.duration and a policy's spec.maxDuration are checked against the same ones.
MIN_DURATION_SPAN = parse_duration(MIN_DURATION)
MAX_DURATION_SPAN = parse_duration(MAX_DURATION)
DEFAULT_DURATION_SPAN = parse_duration(DEFAULT_DURATION)


def quoted(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, default=str)


def listing(items: Iterable[str]) -> str:
    """``a, b, c`` for names a user reads; odd ones quoted, long lists cut."""
    shown = [i if i.isascii() and i.isprintable() and " " not in i else quoted(i) for i in items]
    if len(shown) > _LIST_LIMIT:
        return ", ".join(shown[:_LIST_LIMIT]) + f", ... ({len(shown) - _LIST_LIMIT} more)"
    return ", ".join(shown) or "none"


def text_field(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def text_entries(obj: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
    """The string entries of a list field with their indexes; anything else is skipped."""
    value = obj.get(key)
    if not isinstance(value, list | tuple):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, str)]


def mapping_field(obj: object, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if is_mapping(obj) else None
    return value if is_mapping(value) else {}


def parsed_duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError:
        return None


def error_finding(category: Category, path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.ERROR, category, path, problem, value)


def warning_finding(category: Category, path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.WARNING, category, path, problem, value)


def invalid_finding(path: str, problem: str, value: object = None) -> Finding:
    return error_finding(Category.INVALID_SPEC, path, problem, value)


@lru_cache(maxsize=4096)
def parsed_ip(text: str) -> IPAddress | None:
    if "%" in text:  # zone indexes are link-local plumbing, not certificate content
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def malformed_entries(
    path: str, entries: Iterable[tuple[int, str]], check: Callable[[str], str | None]
) -> Iterator[Finding]:
    for index, text in entries:
        problem = check(text)
        if problem:
            yield invalid_finding(f"{path}[{index}]", problem, text)


def duplicate_entries(
    path: str, entries: Iterable[tuple[int, str]], key: Callable[[str], object] = str
) -> Iterator[Finding]:
    first: dict[object, int] = {}
    for index, text in entries:
        normal = key(text)
        if normal in first:
            yield invalid_finding(
                f"{path}[{index}]",
                f"is listed twice (also at {path}[{first[normal]}]); remove one",
                text,
            )
        else:
            first[normal] = index


def ordered(findings: Iterable[Finding], schema: Mapping[str, Any]) -> list[Finding]:
    """Errors first, then warnings; each in the schema's field order. Stable, so deterministic."""
    return sorted(findings, key=lambda f: (not f.is_error, field_order_key(f.path, schema)))


def most_telling(structural: list[Finding], semantic: Iterable[Finding]) -> list[Finding]:
    """One story per field: the shape first, then syntax, then policy, then advice.

    A value with the wrong shape gets no syntax finding, a malformed value no
    policy finding, and a field with an error no warning; each would only
    restate the first problem less precisely.
    """
    shaped = {finding.path for finding in structural}
    kept = [*structural, *(f for f in semantic if f.path not in shaped)]
    invalid = {f.path for f in kept if f.category is Category.INVALID_SPEC}
    wrong = {f.path for f in kept if f.is_error}
    return [
        f
        for f in kept
        if (f.category is Category.INVALID_SPEC or f.path not in invalid)
        and (f.is_error or f.path not in wrong)
    ]


def grouped(path: str, what: str, entries: Sequence[tuple[int, str]], problem: str) -> Finding:
    """One finding for many entries of a list that fail the same rule.

    The rule (with its allow-list) is said once and the entries are named by
    index, the first few only: a hundred refused names must stay one readable
    line, not a hundred copies of the allow-list.
    """
    shown = ", ".join(f"[{index}] {quoted(text)}" for index, text in entries[:_GROUP_SHOWN])
    more = len(entries) - _GROUP_SHOWN
    names = f"{shown} and {more} more" if more > 0 else shown
    return error_finding(Category.NOT_ALLOWED, path, f"{len(entries)} {what} {problem}: {names}")


def default_note(spec: Mapping[str, Any], field: str) -> str:
    return "" if field in spec else "(the default) "


def key_size_problem(algorithm: str, size: float) -> str | None:
    """What is wrong with ``size`` for an ``algorithm`` of KEY_SIZES; None if it fits.

    A Pki's key and a generated CA's key follow the same rule, so both read the same words.
    """
    sizes = KEY_SIZES[algorithm]
    if not sizes:
        return f"must be left out for {algorithm} keys, which have a fixed size"
    if size not in sizes:
        allowed = ", ".join(str(s) for s in sizes)
        return f"is not a size for {algorithm} keys (allowed: {allowed})"
    return None


# --- phrasing for callers ----------------------------------------------------------------


def message_for_denial(findings: Iterable[Finding]) -> str:
    """All error findings as one line, joined with ``; `` (for an admission denial)."""
    return "; ".join(one_line(phrase(finding)) for finding in errors(findings))


def warning_messages(findings: Iterable[Finding]) -> list[str]:
    """Each warning finding as one line, ready for an admission response's warnings."""
    return [one_line(phrase(finding)) for finding in findings if not finding.is_error]


__all__ = [
    "NOT_A_MAPPING",
    "default_note",
    "duplicate_entries",
    "error_finding",
    "grouped",
    "invalid_finding",
    "key_size_problem",
    "listing",
    "malformed_entries",
    "mapping_field",
    "message_for_denial",
    "most_telling",
    "ordered",
    "parsed_duration",
    "parsed_ip",
    "quoted",
    "text_entries",
    "text_field",
    "warning_finding",
    "warning_messages",
]
