"""Helm templates written from kustomize output, with value expressions at known paths.

An object is dumped as YAML with placeholders where values go; each
placeholder line is then replaced by its Helm expression (:class:`Scalar`,
:class:`Block`, :class:`Optional`, :class:`Extra`). Everything else stays as
kustomize rendered it, so ``helm template`` with the default values gives
the same objects back.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

Json = dict[str, Any]


@dataclass(frozen=True)
class Scalar:
    """A value replaced by ``{{ expr }}``."""

    expr: str


@dataclass(frozen=True)
class Block:
    """A value replaced by the YAML of ``expr`` (a mapping or list)."""

    expr: str


@dataclass(frozen=True)
class Optional:
    """A key present only when ``expr`` is not empty, its value the YAML of ``expr``."""

    key: str
    expr: str


@dataclass(frozen=True)
class Extra:
    """List items appended from the list ``expr``, one quoted string each."""

    expr: str


Slot = Scalar | Block | Optional | Extra
_MARK = "helmslot{}x"
_MARK_LINE = re.compile(
    r"^(?P<indent> *)(?P<dash>- )?(?P<key>[^:\n]+: )?helmslot(?P<n>\d+)x(: null)?$"
)


class Marked:
    """An object under edit, collecting the slots placed in it."""

    def __init__(self, item: Json) -> None:
        self.item = copy.deepcopy(item)
        self.slots: list[Slot] = []

    def _mark(self, slot: Slot) -> str:
        self.slots.append(slot)
        return _MARK.format(len(self.slots) - 1)

    def set(self, path: tuple[str | int, ...], slot: Scalar | Block) -> None:
        """Replace the value at ``path`` (which must exist) by ``slot``."""
        parent = _walk(self.item, path[:-1])
        _walk(self.item, path)  # the value must be there: deploy/ states the default
        parent[path[-1]] = self._mark(slot)

    def optional(self, path: tuple[str | int, ...], slot: Optional) -> None:
        """Add ``slot.key`` to the mapping at ``path`` when its value is set."""
        mapping = _walk(self.item, path)
        if slot.key in mapping:
            raise ValueError(f"{'.'.join(map(str, path))}.{slot.key} is already set in deploy/")
        mapping[self._mark(slot)] = None

    def extend(self, path: tuple[str | int, ...], slot: Extra) -> None:
        """Append the items of ``slot.expr`` to the list at ``path``."""
        _walk(self.item, path).append(self._mark(slot))

    def render(self) -> str:
        """The object as a Helm template (no leading ``---``)."""
        text = escape(yaml.safe_dump(self.item, sort_keys=False, width=10_000, allow_unicode=True))
        return "\n".join(self._expand(line) for line in text.splitlines()) + "\n"

    def _expand(self, line: str) -> str:
        found = _MARK_LINE.match(line)
        if found is None:
            if "helmslot" in line:
                raise ValueError(f"a placeholder where none can go: {line!r}")
            return line
        indent = found["indent"]
        dash = found["dash"] or ""
        key = found["key"] or ""
        slot = self.slots[int(found["n"])]
        if isinstance(slot, Scalar):
            return f"{indent}{dash}{key}{{{{ {slot.expr} }}}}"
        if isinstance(slot, Block):
            nested = len(indent) + 2
            return (
                f"{indent}{dash}{key.rstrip()}\n"
                f"{indent}  {{{{- toYaml {slot.expr} | nindent {nested} }}}}"
            )
        if isinstance(slot, Optional):
            return (
                f"{{{{- with {slot.expr} }}}}\n{indent}{slot.key}:\n"
                f"{indent}  {{{{- toYaml . | nindent {len(indent) + 2} }}}}\n{{{{- end }}}}"
            )
        return f"{{{{- range {slot.expr} }}}}\n{indent}- {{{{ . | quote }}}}\n{{{{- end }}}}"


def escape(text: str) -> str:
    """``text`` with its own ``{{``/``}}`` (alert templates, Grafana legends) kept from Helm."""
    opened = text.replace("{{", "\0open\0").replace("}}", "\0close\0")
    return opened.replace("\0open\0", '{{ "{{" }}').replace("\0close\0", '{{ "}}" }}')


class PathMovedError(LookupError):
    """A path the chart puts a value at is not in deploy/'s output any more."""


def _walk(item: Any, path: tuple[str | int, ...]) -> Any:
    node = item
    for depth, part in enumerate(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            where = ".".join(map(str, path[: depth + 1]))
            raise PathMovedError(
                f"{where} is not in {item.get('kind')} {item.get('metadata', {}).get('name')}"
                " as deploy/ renders it: move the value in pkiwarden/release/chart.py (EDITS)"
            ) from None
    return node


def wrap(condition: str, body: str, otherwise: str | None = None) -> str:
    """``body`` only when ``condition`` holds (else ``otherwise``, if given)."""
    text = f"{{{{- if {condition} }}}}\n{body}"
    if otherwise is not None:
        text += f"{{{{- else }}}}\n{otherwise}"
    return text + "{{- end }}\n"


Edit = Callable[[Marked], None]
