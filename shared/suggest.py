"""Did-you-mean: the cheapest fix for a typo is to name the word that was meant."""

from __future__ import annotations

from collections.abc import Iterable

MAX_DISTANCE = 2


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance; stops early once every path exceeds ``limit``.

    The early stop keeps a pathological input (a megabyte-long name) from
    costing more than a few passes over it.
    """
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        if limit is not None and min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def closest(value: str, candidates: Iterable[str], max_distance: int = MAX_DISTANCE) -> str | None:
    """The candidate nearest to ``value`` within ``max_distance``, first one on ties.

    A case-only difference always counts as nearest. A candidate is never
    suggested when the distance is as large as the value itself (``x`` is not
    a typo of ``ab``).
    """
    best: str | None = None
    best_distance = max_distance + 1
    lowered = value.lower()
    for candidate in candidates:
        if candidate == value:
            continue
        if candidate.lower() == lowered:
            return candidate
        distance = edit_distance(value, candidate, limit=max_distance)
        if distance < best_distance and distance < len(value):
            best, best_distance = candidate, distance
    return best


def did_you_mean(value: object, candidates: Iterable[str]) -> str:
    """``; did you mean "X"?`` for a near miss, else the empty string."""
    if not isinstance(value, str):
        return ""
    match = closest(value, candidates)
    return "" if match is None else f'; did you mean "{match}"?'
