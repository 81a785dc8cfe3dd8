"""JSON text exactly as json.dumps(value, indent=2) writes it, faster for large documents; standard library only.

With an indent, the standard library encodes in pure Python through nested generators (its C encoder has no
indent): about 25 µs per `berth list --json` row. This writes the same text from one loop per container with the
scalars encoded inline by the same functions json uses. Anything but dicts with str keys, lists, tuples, str,
int, float, bool and None (subclasses included), and nesting deep enough to recurse far, goes to json.dumps
itself, so the output and the errors are always the standard library's.

A flat dict (every value a str, int, float, bool, None or an empty list or dict: a `berth list --json` row) is
written by json's own C encoder, with the separators that put each member on its own line at the dict's depth:
the same text, several times faster."""

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


def dumps(value: Any) -> str:
    """json.dumps(value, indent=2), the same text."""
    out: list[str] = []
    try:
        _encode(value, 0, out)
    except _Fallback:
        return json.dumps(value, indent=2)
    return "".join(out)


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
    if kind is dict or kind is list or kind is tuple:
        return None
    raise _Fallback


def _encode(value: Any, level: int, out: list[str]) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif level >= MAX_DEPTH:
        raise _Fallback
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


def _flat_text(value: dict[Any, Any], level: int) -> str | None:
    """A flat dict's text at `level` from the C encoder; None when a value is not flat (or C is missing)."""
    for item in value.values():
        kind = type(item)
        if kind not in _FLAT and ((kind is not list and kind is not dict) or item):
            return None
    encoder = _flat_encoders.get(level)
    if encoder is None:
        if c_make_encoder is None:
            return None
        separator = ",\n" + INDENT * (level + 1)
        encoder = _flat_encoders[level] = c_make_encoder(
            None, _no_default, encode_basestring_ascii, None, ": ", separator, False, False, True
        )
    try:
        text = "".join(encoder(value, 0))  # '{"a": 1,\n    "b": 2}': members already one per line
    except TypeError:  # a key json does not take: the general path hands it to json.dumps for its error
        return None
    return "{\n" + INDENT * (level + 1) + text[1:-1] + "\n" + INDENT * level + "}"


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
