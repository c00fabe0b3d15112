"""Findings: what validation says about an object, phrased for the person who wrote it.

A finding keeps the offending value apart from the rest of the sentence so the
same finding reads right at apply time (``spec.serviceName: "appp1" is not
allowed ...``) and in an Event on a Pod, where the Pki must be named
(``spec.serviceName: "appp1" in Pki app1-pki is not allowed ...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Category(StrEnum):
    """Why a finding exists; the issuer turns this into an Event reason."""

    INVALID_SPEC = "InvalidSpec"  # the object itself is malformed
    NOT_ALLOWED = "NotAllowed"  # well-formed, but no PkiPolicy allows it
    SECRET_CONFLICT = "SecretConflict"  # the target Secret is taken
    UNKNOWN_AUTHORITY = "UnknownAuthority"  # spec.authority names no PkiAuthority
    ADVICE = "Advice"  # legal, but probably not what was meant


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    category: Category
    path: str  # e.g. "spec.dnsNames[1]"
    problem: str  # what is wrong, what is allowed, the fix; no value, no path
    value: object = None  # the offending value, quoted when phrased; None to omit

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def render_value(value: object) -> str:
    """JSON-quote a value so empty strings and whitespace stay visible, on one line."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def phrase(finding: Finding, subject: str | None = None) -> str:
    """One line: ``PATH: VALUE [in SUBJECT] PROBLEM``.

    ``subject`` (for example ``Pki app1-pki``) names the object when the
    reader is not looking at it, as in an Event on a Pod.
    """
    parts = [f"{finding.path}:"]
    if finding.value is not None:
        parts.append(render_value(finding.value))
    if subject:
        parts.append(f"in {subject}")
    parts.append(finding.problem)
    return " ".join(parts)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.is_error]


def warnings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if not f.is_error]
