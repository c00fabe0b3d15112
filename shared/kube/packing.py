"""Cached objects kept in a compact form instead of decoded dicts; pure.

A decoded object is a tree of dicts, lists and strings: a Pod cut down to its
Secret references takes 1.4 KB that way for 0.2 KB of JSON text. A cache
holding thousands of them keeps each in a compact form (a :class:`Packer` of
the kind) and decodes the ones a reader asks for, each a fresh object; its
change handlers get the object the watch delivered, with no round trip.

:class:`DeflatedJSON` packs any object: its JSON text, deflated against a
preset dictionary made from typical objects of the kind (their keys and
constant values), which leaves little more than what is unique to each
object. Decoding one costs 5 to 20 µs: for objects read a few at a time,
not for a cache whose readers walk every object often.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

JSON = dict[str, Any]


class Packer(Protocol):
    """Turns an object into a compact form of it, and back (an equal, fresh object)."""

    def pack(self, obj: Mapping[str, Any]) -> object | None:
        """The compact form; None: keep this object as it is."""

    def unpack(self, packed: Any) -> JSON: ...


# A raw deflate stream (no zlib header or checksum: 6 bytes less per object) with
# the whole 32 KiB window, so the dictionary is in reach of every byte.
_WINDOW_BITS = -15
_LEVEL = 6


class DeflatedJSON:
    """Packs objects of one kind as JSON text deflated against typical ones."""

    def __init__(self, *typical: Mapping[str, Any]) -> None:
        """``typical``: objects with the keys and values most objects of the kind share.

        Deflate finds a repeat closer to the end of the dictionary cheaper to
        encode: the most typical object goes last.
        """
        self.dictionary = b"".join(orjson.dumps(dict(sample)) for sample in typical)

    def pack(self, obj: Mapping[str, Any]) -> bytes | None:
        """The deflated JSON text of ``obj``; None for what JSON text cannot hold exactly
        (an integer beyond 64 bits): the caller keeps that object as it is."""
        try:
            text = orjson.dumps(obj)
        except TypeError:
            return None
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WINDOW_BITS, zdict=self.dictionary)
        return compressor.compress(text) + compressor.flush()

    def unpack(self, packed: bytes) -> JSON:
        """A fresh object equal to the one packed."""
        decompressor = zlib.decompressobj(_WINDOW_BITS, zdict=self.dictionary)
        obj: JSON = orjson.loads(decompressor.decompress(packed) + decompressor.flush())
        return obj
