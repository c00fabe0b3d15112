"""Name syntax with the reason in words (DNS-1035, DNS-1123, RFC 1123 DNS names).

Kubernetes' own messages quote a regular expression; these say what is wrong
(upper case, a label too long, an empty label, a misplaced wildcard, which
character where). Each check returns the rest of the sentence that starts with
the quoted value, or ``None`` when the name is fine.
"""

from __future__ import annotations

import json
import string
from functools import lru_cache

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
DNS_NAME_MAX = 253

_DNS_CHARS = frozenset(string.ascii_lowercase + string.digits + "-.")
_LABEL_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
_ALNUM = frozenset(string.ascii_letters + string.digits)
_LABEL_VALUE_CHARS = frozenset(string.ascii_letters + string.digits + "-_.")


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)


def _length_problem(value: str, limit: int) -> str | None:
    if not value:
        return "is empty"
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    return None


def _character_problem(value: str, allowed: frozenset[str], allowed_text: str) -> str | None:
    lowered = value.lower()
    if lowered != value and all(char in allowed for char in lowered):
        return f"has upper case letters; use lower case: {_quote(value.lower())}"
    for position, char in enumerate(value, start=1):
        if char not in allowed:
            return (
                f"has an illegal character {_quote(char)} at position {position}; "
                f"only {allowed_text} are allowed"
            )
    return None


def _labels_problem(value: str) -> str | None:
    """Checks the dot-separated labels of a name already known to hold legal characters."""
    for label in value.split("."):
        if not label:
            return 'has an empty label (a leading, trailing or doubled ".")'
        if len(label) > LABEL_MAX:
            return f"has a label of {len(label)} characters; labels have at most {LABEL_MAX}"
        if label[0] == "-" or label[-1] == "-":
            return (
                f'has a label {_quote(label)} that starts or ends with "-"; '
                "labels start and end with a letter or digit"
            )
    return None


@lru_cache(maxsize=4096)
def dns1035_label_problem(value: str) -> str | None:
    """A Service name: one label, starting with a letter."""
    problem = _length_problem(value, LABEL_MAX) or _character_problem(
        value, _LABEL_CHARS, 'a-z, 0-9 and "-"'
    )
    if problem:
        return problem
    if not value[0].isalpha():
        return "must start with a letter (a-z)"
    if value[-1] == "-":
        return 'must end with a letter or digit, not "-"'
    return None


@lru_cache(maxsize=4096)
def dns1123_label_problem(value: str) -> str | None:
    """A namespace name: one label, letters or digits at both ends."""
    return (
        _length_problem(value, LABEL_MAX)
        or _character_problem(value, _LABEL_CHARS, 'a-z, 0-9 and "-"')
        or _labels_problem(value)
    )


@lru_cache(maxsize=4096)
def dns1123_subdomain_problem(value: str) -> str | None:
    """A Secret name: dot-separated labels, at most 253 characters."""
    return (
        _length_problem(value, SUBDOMAIN_MAX)
        or _character_problem(value, _DNS_CHARS, 'a-z, 0-9, "-" and "."')
        or _labels_problem(value)
    )


@lru_cache(maxsize=4096)
def dns_name_problem(value: str, wildcard: bool = True) -> str | None:
    """A certificate DNS name (RFC 1123), with ``*`` only as the whole leftmost label."""
    problem = _length_problem(value, DNS_NAME_MAX)
    if problem:
        return problem
    rest = value
    if wildcard and value.startswith("*."):
        rest = value[2:]
    elif wildcard and value == "*":
        return 'is only a wildcard; it needs a domain after it, as in "*.example.com"'
    if wildcard and "*" in rest:
        return 'has a bad wildcard: "*" may only be the whole leftmost label, as in "*.example.com"'
    problem = _character_problem(rest, _DNS_CHARS, 'a-z, 0-9, "-" and "."')
    if problem is None and value.endswith(".") and value.strip("."):
        # The fully qualified spelling of a zone file: certificates never carry the dot.
        without = _quote(value.rstrip("."))
        return f"ends with a dot, which certificate names never have; write {without}"
    return problem or _labels_problem(rest)


def _label_name_problem(name: str, what: str) -> str | None:
    if len(name) > LABEL_MAX:
        return f"has a {what} of {len(name)} characters; at most {LABEL_MAX} are allowed"
    for position, char in enumerate(name, start=1):
        if char not in _LABEL_VALUE_CHARS:
            return (
                f"has an illegal character {_quote(char)} at position {position}; "
                'only letters, digits, "-", "_" and "." are allowed'
            )
    if name and (name[0] not in _ALNUM or name[-1] not in _ALNUM):
        return f"has a {what} that does not start and end with a letter or digit"
    return None


@lru_cache(maxsize=4096)
def label_key_problem(value: str) -> str | None:
    """A label key: an optional DNS-subdomain prefix and ``/``, then a name."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns1123_subdomain_problem(prefix)):
        return "has an invalid prefix; a prefix is a DNS subdomain such as example.com"
    if not name:
        return "is empty" if not slash else "has no name after the prefix"
    return _label_name_problem(name, "name")


@lru_cache(maxsize=4096)
def label_value_problem(value: str) -> str | None:
    """A label value: empty, or a name of letters, digits, ``-``, ``_`` and ``.``."""
    return _label_name_problem(value, "value")
