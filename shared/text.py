"""Text that must fit on one line and within a size: warnings, denials, Event notes.

The API server drops an admission warning holding a control character, and a
newline breaks the ``kubectl describe`` table an Event is read in; user input
(names, values) ends up in both, so every message passes through here.
"""

from __future__ import annotations

ELLIPSIS = "..."


def one_line(text: str) -> str:
    """``text`` with every control or separator character (newline, tab, U+2028) as a space."""
    if text.isprintable():  # the common case; the per-character pass is the slow part
        return text
    return "".join(char if char.isprintable() else " " for char in text)


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def clip_bytes(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes (never a broken character), ending in ``...`` when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - len(ELLIPSIS)].decode("utf-8", "ignore").rstrip() + ELLIPSIS
