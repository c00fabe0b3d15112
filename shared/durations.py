"""Go-style durations (``2160h``, ``90m``, ``1h30m``), as Kubernetes users write them.

The API speaks Go's ``time.ParseDuration`` dialect because that is what
cert-manager and the rest of the ecosystem use; days are deliberately not a
unit there, so a ``90d`` gets a message with the equivalent in hours.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

_UNITS: dict[str, timedelta] = {
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ns": timedelta(microseconds=0.001),
}
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_DAYS = re.compile(r"(\d+)d")


class DurationError(ValueError):
    """``str(error)`` completes the sentence ``"VALUE" ...`` for a finding."""


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration; raise :class:`DurationError` saying what is wrong."""
    result = _parse(text)
    if isinstance(result, str):
        raise DurationError(result)
    return result


@lru_cache(maxsize=4096)
def _parse(text: str) -> timedelta | str:
    """The duration or the reason it is not one; cached, as the same few values recur."""
    try:
        return _parse_uncached(text)
    except DurationError as error:
        return str(error)


def _parse_uncached(text: str) -> timedelta:
    if text == "0":
        return timedelta(0)
    if not text:
        raise DurationError('is empty; write a duration such as "2160h" or "1h30m"')
    if text[0] in "+-":
        raise DurationError('has a sign; durations here are positive, such as "2160h"')
    total = timedelta(0)
    position = 0
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None:
            raise DurationError(_unparsable(text))
        number, unit = match.groups()
        try:
            total += float(number) * _UNITS[unit]
        except OverflowError:
            raise DurationError("is too long to be a duration") from None
        position = match.end()
    return total


def _unparsable(text: str) -> str:
    days = _DAYS.fullmatch(text)
    if days is not None:
        return f'is not a duration: days are not a unit; use hours, e.g. "{int(days[1]) * 24}h"'
    return 'is not a duration; use hours, minutes and seconds, such as "2160h", "90m" or "1h30m"'


def format_duration(value: timedelta) -> str:
    """Shortest Go-style spelling: ``720h``, ``1h30m``, ``45s``, ``1.5s``, ``0s``."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or micros:
        fraction = f"{micros:06d}".rstrip("0")
        parts.append(f"{seconds}.{fraction}s" if fraction else f"{seconds}s")
    return sign + ("".join(parts) or "0s")
