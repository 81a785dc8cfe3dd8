"""JSON text exactly as json.dumps(value, indent=2) writes it, faster for large documents; standard library only.

With an indent, the standard library encodes in pure Python through nested generators (its C encoder has no
indent): about 25 µs per `berth list --json` row. This writes the same text from one loop per container with the
scalars encoded inline by the same functions json uses. Anything but dicts with str keys, lists, tuples, str,
int, float, bool and None (subclasses included), and nesting deep enough to recurse far, goes to json.dumps
itself, so the output and the errors are always the standard library's."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

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


def _mapping(value: dict[Any, Any], level: int, out: list[str]) -> None:
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
