"""JSON text exactly as json.dumps(value, indent=2) writes it, faster for large documents; standard library only.

With an indent, the standard library encodes in pure Python through nested generators (its C encoder has no
indent): about 25 µs per `berth list --json` row. This writes the same text from one loop per container with the
scalars encoded inline by the same functions json uses. Anything but dicts with str keys, lists, tuples, str,
int, float, bool and None (subclasses included), and nesting deep enough to recurse far, goes to json.dumps
itself, so the output and the errors are always the standard library's.

A flat dict (every value a str, int, float, bool, None or an empty list or dict: a `berth list --json` row) is
written by json's own C encoder, with the separators that put each member on its own line at the dict's depth:
the same text, several times faster.

An `EncodedObject` is an object whose members were written before (`members_text`, `object_text`), so parts
that thousands of objects share (the plan half of `berth list` rows of one plan group) are encoded once. It is
written as the merge of its parts, and json.dumps (the fallback) is given that merge."""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _json_encoder
from json.encoder import encode_basestring_ascii
from typing import Any

#: json's C encoder (None in a Python built without it: the general path then writes everything).
c_make_encoder: Any = getattr(_json_encoder, "c_make_encoder", None)

INDENT = "  "
#: Deeper than this, json.dumps writes it (and reports a circular reference as it does).
MAX_DEPTH = 100


class _Fallback(Exception):
    """Something only json.dumps should write."""


class EncodedObject:
    """A JSON object already written for depth `level` (object_text), with the mappings it was written from.
    Written elsewhere (another depth), or by json.dumps, it is the merge of those mappings."""

    __slots__ = ("level", "parts", "text")

    def __init__(self, text: str, level: int, parts: tuple[dict[str, Any], ...]) -> None:
        self.text, self.level, self.parts = text, level, parts

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in self.parts:
            out.update(part)
        return out


def members_text(mapping: dict[str, Any], level: int) -> str:
    """The members of `mapping` as they stand inside an object at depth `level` ('"a": 1,\n    "b": 2'; "" when
    empty), to join with object_text. Keys must be str, and the parts of one object must not share a key."""
    if not mapping:
        return ""
    flat = _c_text(mapping, level + 1) if _is_flat(mapping) else None
    if flat is not None:
        return flat[1:-1]
    return dumps(mapping, level)[2 + len(INDENT) * (level + 1) : -(2 + len(INDENT) * level)]


def object_text(members: list[str], level: int) -> str:
    """An object at depth `level` made of members_text pieces (empty ones left out)."""
    inner = "\n" + INDENT * (level + 1)
    joined = ("," + inner).join([m for m in members if m])
    return "{" + inner + joined + "\n" + INDENT * level + "}" if joined else "{}"


def dumps(value: Any, level: int = 0) -> str:
    """json.dumps(value, indent=2), the same text (`level`: as if nested that deep)."""
    out: list[str] = []
    try:
        _encode(value, level, out)
    except _Fallback:
        text = json.dumps(value, indent=2, default=_merged)
        return text.replace("\n", "\n" + INDENT * level) if level else text
    return "".join(out)


def _merged(value: Any) -> Any:
    """json.dumps' `default`: an EncodedObject as its merged dict; anything else is json's own TypeError."""
    if isinstance(value, EncodedObject):
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
    if kind is dict or kind is list or kind is tuple or kind is EncodedObject:
        return None
    raise _Fallback


def _encode(value: Any, level: int, out: list[str]) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif level >= MAX_DEPTH:
        raise _Fallback
    elif type(value) is EncodedObject:
        out.append(value.text if value.level == level else dumps(value.merged(), level))
    elif not value:
        out.append("{}" if type(value) is dict else "[]")
    elif type(value) is dict:
        _mapping(value, level, out)
    else:
        _sequence(value, level, out)


#: Value types a flat dict holds (exact types: subclasses take the general path).
_FLAT = frozenset((str, int, float, bool, type(None)))
_flat_encoders: dict[int, Callable[[Any, int], Any]] = {}


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _is_flat(value: dict[Any, Any]) -> bool:
    """Every value a str, int, float, bool, None, or an empty list or dict."""
    for item in value.values():
        kind = type(item)
        if kind not in _FLAT and ((kind is not list and kind is not dict) or item):
            return False
    return True


def _c_text(value: dict[Any, Any], level: int) -> str | None:
    """json's C encoder's text of a flat dict with each member after ",\n" and the indent of `level` (None
    without the C encoder, or for a key json does not take: the general path hands that to json.dumps)."""
    encoder = _flat_encoders.get(level)
    if encoder is None:
        if c_make_encoder is None:
            return None
        separator = ",\n" + INDENT * level
        encoder = _flat_encoders[level] = c_make_encoder(
            None, _no_default, encode_basestring_ascii, None, ": ", separator, False, False, True
        )
    try:
        return "".join(encoder(value, 0))  # '{"a": 1,\n    "b": 2}': members already one per line
    except TypeError:
        return None


def _flat_text(value: dict[Any, Any], level: int) -> str | None:
    """A flat dict's text at `level` from the C encoder; None when a value is not flat (or C is missing)."""
    text = _c_text(value, level + 1) if _is_flat(value) else None
    return None if text is None else "{\n" + INDENT * (level + 1) + text[1:-1] + "\n" + INDENT * level + "}"


def _mapping(value: dict[Any, Any], level: int, out: list[str]) -> None:
    flat = _flat_text(value, level)
    if flat is not None:
        out.append(flat)
        return
    inner = "\n" + INDENT * (level + 1)
    separator, between = "{" + inner, "," + inner
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
    out.append("\n" + INDENT * level + "}")


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
