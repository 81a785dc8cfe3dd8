"""JSON text exactly as json.dumps(value, indent=2) writes it, faster for large documents; standard library only.

With an indent, the standard library encodes in pure Python through nested generators (its C encoder has no
indent): about 25 µs per `berth list --json` row. This writes the same text from one loop per container with the
scalars encoded inline by the same functions json uses. Anything but dicts with str keys, lists, tuples, str,
int, float, bool and None (subclasses included), and nesting deep enough to recurse far, goes to json.dumps
itself, so the output and the errors are always the standard library's.

A `Joined` object is written as the dict of its parts merged, in order; a `Written` part is a mapping of scalars
encoded once, so thousands of objects that share it (the plan half of `berth list --json` rows whose cards share
one plan) reuse its text instead of encoding it again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

INDENT = "  "
#: Deeper than this, json.dumps writes it (and reports a circular reference as it does).
MAX_DEPTH = 100


class _Fallback(Exception):
    """Something only json.dumps should write."""


@dataclass(frozen=True)
class Written:
    """A mapping's members as JSON text ('"key": value'), encoded once; see `written`."""

    mapping: Mapping[str, Any]
    members: tuple[str, ...] | None  # None: a value is not a plain scalar, so the mapping is encoded as usual
    keys: frozenset[Any]
    _texts: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    def text(self, level: int) -> str:
        """The members joined as they stand inside an object at `level` (the first one without its separator)."""
        joined = self._texts.get(level)
        if joined is None:
            joined = self._texts[level] = (",\n" + INDENT * (level + 1)).join(self.members or ())
        return joined


@dataclass(frozen=True)
class Joined:
    """One JSON object made of parts, written as their merge in order (a later part's key wins, as with |)."""

    parts: tuple[Mapping[str, Any] | Written, ...]

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in self.parts:
            out.update(part.mapping if isinstance(part, Written) else part)
        return out


def written(mapping: Mapping[str, Any]) -> Written:
    """`mapping` with its members encoded now, for many `Joined` objects to share."""
    members = []
    for key, item in mapping.items():
        try:
            text = _scalar(item) if type(key) is str else None
        except _Fallback:
            text = None
        if text is None:
            return Written(mapping, None, frozenset(mapping))
        members.append(f"{encode_basestring_ascii(key)}: {text}")
    return Written(mapping, tuple(members), frozenset(mapping))


def dumps(value: Any) -> str:
    """json.dumps(value, indent=2), the same text (a `Joined` object as its merged dict)."""
    out: list[str] = []
    try:
        _encode(value, 0, out)
    except _Fallback:
        return json.dumps(value, indent=2, default=_merged)
    return "".join(out)


def _merged(value: Any) -> Any:
    """json.dumps' `default`: a Joined object as its merged dict; anything else is json's own TypeError."""
    if isinstance(value, Joined):
        return value.merged()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _scalar(value: Any) -> str | None:
    """The JSON text of a scalar json.dumps writes the plain way, None for a container."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return _float(value)
    if kind is dict or kind is list or kind is tuple or kind is Joined:
        return None
    raise _Fallback


def _encode(value: Any, level: int, out: list[str]) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif level >= MAX_DEPTH:
        raise _Fallback
    elif type(value) is Joined:
        _joined(value, level, out)
    elif not value:
        out.append("{}" if type(value) is dict else "[]")
    elif type(value) is dict:
        _mapping(value, level, out)
    else:
        _sequence(value, level, out)


def _mapping(value: dict[Any, Any], level: int, out: list[str]) -> None:
    inner = "\n" + INDENT * (level + 1)
    _members(value, level, out, "{" + inner, "," + inner)
    out.append("\n" + INDENT * level + "}")


def _joined(value: Joined, level: int, out: list[str]) -> None:
    """A Joined object: its parts' members in order, Written ones from their text. Parts that repeat a key
    (json.dumps of the merge would write it once, where it first appeared) go to json.dumps."""
    seen: set[Any] = set()
    count = 0
    for part in value.parts:
        keys = part.keys if isinstance(part, Written) else part
        seen.update(keys)
        count += len(keys)
    if len(seen) != count:
        raise _Fallback
    inner = "\n" + INDENT * (level + 1)
    separator, between = "{" + inner, "," + inner
    for part in value.parts:
        if type(part) is Written and part.members is not None:
            if part.members:
                out.append(separator + part.text(level))
                separator = between
            continue
        mapping = part.mapping if type(part) is Written else part
        if type(mapping) is not dict:
            raise _Fallback
        if mapping:
            _members(mapping, level, out, separator, between)
            separator = between
    out.append("{}" if separator == "{" + inner else "\n" + INDENT * level + "}")


def _members(value: dict[Any, Any], level: int, out: list[str], separator: str, between: str) -> None:
    """The members of a non-empty dict, the first after `separator`, the others after `between`."""
    for key, item in value.items():
        if type(key) is not str:
            raise _Fallback  # json turns other keys into text in its own way
        kind = type(item)  # the common scalars inline: this loop runs once per value of a large document
        if kind is str:
            text: str | None = encode_basestring_ascii(item)
        elif item is None:
            text = "null"
        elif kind is int:
            text = int.__repr__(item)
        else:
            text = _scalar(item)
        if text is None:
            out.append(f"{separator}{encode_basestring_ascii(key)}: ")
            _encode(item, level + 1, out)
        else:
            out.append(f"{separator}{encode_basestring_ascii(key)}: {text}")
        separator = between


def _sequence(value: list[Any] | tuple[Any, ...], level: int, out: list[str]) -> None:
    inner = "\n" + INDENT * (level + 1)
    separator, between = "[" + inner, "," + inner
    for item in value:
        text = _scalar(item)
        if text is None:
            out.append(separator)
            _encode(item, level + 1, out)
        else:
            out.append(separator + text)
        separator = between
    out.append("\n" + INDENT * level + "]")
