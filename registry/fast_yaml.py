"""A fast reader for the block-style YAML that catalogs are written in, giving exactly what yaml.safe_load gives;
imports only the standard library and PyYAML (whose resolver and constructors decide every plain scalar).

PyYAML builds a Python node, resolves and constructs every value one call at a time even with libyaml: about
0.7 ms per catalog entry, 20 s for a 30,000-entry overlay. Catalog files use a small part of YAML: block
mappings and sequences, plain and quoted one-line scalars (plain and single-quoted ones folded over lines as
yaml.safe_dump writes them), `[a, b]` lists, `{}`, comments. `load` reads that part line by line and raises
Unsupported for anything else (anchors, aliases, tags, block scalars, multi-line flow collections, tabs,
directives, odd characters, anything malformed), where the caller falls back to PyYAML, which also reports
errors. Tests compare the two on real catalogs and on generated and mutated documents."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver
from yaml.scanner import Scanner


class Unsupported(Exception):
    """The text is outside the subset this reader handles (or not valid YAML): read it with PyYAML."""


#: Characters outside the subset: what YAML forbids, tabs, line breaks other than \n, the byte-order mark.
_ODD = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.\-/]{0,999}):(?: +(.*))?$")
#: The ASCII characters of the subset (\n and the printable ones).
_PLAIN_ASCII = b"\n" + bytes(range(0x20, 0x7F))
_DOUBLE = re.compile(r'"((?:[^"\\]|\\.)*)"')
#: Double-quoted escapes, as PyYAML's scanner reads them.
_ESCAPES: dict[str, str] = Scanner.ESCAPE_REPLACEMENTS
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
#: One item of a one-line `[...]` list: double-quoted, single-quoted or plain, then a comma or the end.
_FLOW_LIST_ITEM = re.compile(
    r""" *(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^,"' ](?:[^,"']*[^,"' ])?)) *(?:,|$)"""
)
#: One `key: value` of a one-line `{...}` mapping.
_FLOW_ITEM = re.compile(r" *([A-Za-z0-9_][A-Za-z0-9_.\-/]{0,999}): +([^ ](?:[^\n]*[^ ])?) *$")
#: Characters that make a one-line `[...]` list more than plain scalars between commas.
_FLOW_ODD = re.compile(r"[\[\]{}'\"#:&*!|>%@`?]")
#: Plain scalars may not start with these (YAML indicators; `-` only before a space, handled apart).
_INDICATORS = frozenset("[]{},#&*!|>'\"%@`?:")
#: First characters that need more than the one-line plain scalar path.
_SPECIAL = _INDICATORS | {"-"}

_resolver = Resolver()
_constructor = SafeConstructor()
_STR = "tag:yaml.org,2002:str"


def load(text: str) -> Any:
    """The document's data, equal to yaml.safe_load(text); Unsupported outside the subset."""
    return _read(text, track=False)[0]


class Lines:
    """The 1-based line of each value of a document by its path of keys and list indexes, as
    registry.yaml_lines.YamlLines gives it from PyYAML's nodes (Unsupported outside the subset)."""

    def __init__(self, text: str) -> None:
        self._root, reader = _read(text, track=True)
        self._where: dict[int, Any] = reader.where or {}
        self._numbers = reader.numbers

    def _number(self, index: int) -> int:
        return (self._numbers[index] if self._numbers is not None else index) + 1

    def line(self, loc: Sequence[Any]) -> int | None:
        """1-based line of the deepest value found along `loc` (the key's line for mapping entries)."""
        node, line = self._root, self._number(0)
        for part in loc:
            if isinstance(node, dict) and str(part) in node:
                line = self._number(self._where[id(node)][str(part)])
                node = node[str(part)]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line = self._number(self._where[id(node)][part])
                node = node[part]
            else:
                break
        return line


def _read(text: str, track: bool) -> tuple[Any, _Reader]:
    if not text or _odd(text):
        raise Unsupported
    reader = _Reader(*_lines(text))
    # A quoted scalar folded over lines whose trailing spaces were cut is declined (see _Reader.folds_quoted).
    reader.folds_quoted = " \n" not in text
    if track:
        reader.where = {}
    if not reader.count or reader.indents[0] != 0:
        raise Unsupported
    value, end = reader.block(0, 0)
    if end != reader.count:
        raise Unsupported
    return value, reader


def _odd(text: str) -> bool:
    """Whether the text has a character outside the subset (for ASCII text, a fast byte-level check)."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _PLAIN_ASCII))
    return _ODD.search(text) is not None


def _has_comment_line(text: str) -> bool:
    """Whether a line starts with `#` after its indentation (looking only where a `#` is)."""
    at = text.find("#")
    while at >= 0:
        if not text[text.rfind("\n", 0, at) + 1 : at].strip(" "):
            return True
        at = text.find("#", at + 1)
    return False


def _lines(text: str) -> tuple[list[int], list[str], list[bool], list[int] | None]:
    """Each line that is not blank or a comment: its indentation, its text without indentation or trailing
    spaces, whether blank or comment lines come before it (since the previous such line), and its index among
    all lines (None: the same as among these)."""
    raw = text.split("\n")
    if " \n" in text or text.endswith(" "):
        raw = [line.rstrip(" ") for line in raw]
    bodies = [line.lstrip(" ") for line in raw]
    if "" in bodies[:-1] or _has_comment_line(text):
        keep = [n for n, body in enumerate(bodies) if body and body[0] != "#"]
        gaps = [n == 0 or keep[n - 1] != k - 1 for n, k in enumerate(keep)]
        raw, bodies = [raw[k] for k in keep], [bodies[k] for k in keep]
        numbers: list[int] | None = keep
    else:
        if bodies and not bodies[-1]:
            raw, bodies = raw[:-1], bodies[:-1]
        gaps = [False] * len(bodies)
        numbers = None
    if text.startswith(("---", "...", "%")) or "\n---" in text or "\n..." in text or "\n%" in text:
        raise Unsupported  # document markers and directives (at the start of a line)
    return [len(line) - len(body) for line, body in zip(raw, bodies, strict=True)], bodies, gaps, numbers


class _Reader:
    def __init__(
        self, indents: list[int], texts: list[str], gaps: list[bool], numbers: list[int] | None
    ) -> None:
        self.numbers = numbers
        self.indents = indents
        self.texts = texts
        self.gaps = gaps
        self.count = len(texts)
        self.scalars: dict[str, Any] = {}
        self.keys: dict[str, str] = {}
        self.folds_quoted = True
        self.where: dict[int, dict[str, int] | list[int]] | None = None
        """With line tracking: each container's lines (by id), keys' or items' line indexes."""

    def block(self, i: int, indent: int, first: str | None = None) -> tuple[Any, int]:
        """The block node starting at line i (indented `indent`; `first` replaces that line's text)."""
        text = self.texts[i] if first is None else first
        if text == "-" or text.startswith("- "):
            if first is not None:
                raise Unsupported  # a sequence inside a sequence entry's line
            return self.sequence(i, indent)
        return self.mapping(i, indent, first)

    def sequence(self, i: int, indent: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        indents, texts = self.indents, self.texts
        starts: list[int] | None = self.track(out, [])
        while i < self.count and indents[i] == indent:
            text = texts[i]
            if starts is not None and (text == "-" or text.startswith("- ")):
                starts.append(i + 1 if text == "-" and i + 1 < self.count and indents[i + 1] > indent else i)
            if text == "-":
                value, i = self.nested(i + 1, indent, allow_indentless=False)
            elif text.startswith("- "):
                rest = text[2:].lstrip(" ")
                if _KEY.match(rest):
                    value, i = self.mapping(i, indent + len(text) - len(rest), rest)
                else:
                    value, i = self.inline(rest, i, indent)
            else:
                break
            out.append(value)
        if i < self.count and indents[i] > indent:
            raise Unsupported
        return out, i

    def mapping(self, i: int, indent: int, first: str | None = None) -> tuple[dict[Any, Any], int]:
        out: dict[Any, Any] = {}
        indents, texts, count, scalars = self.indents, self.texts, self.count, self.scalars
        match_key = _KEY.match
        key_lines = self.track(out, {})
        while i < count:
            if first is None:
                if indents[i] != indent:
                    if indents[i] > indent:
                        raise Unsupported
                    break
                text = texts[i]
            else:
                text, first = first, None
            match = match_key(text)
            if match is None:
                if text == "-" or text.startswith("- "):
                    break  # an indentless sequence ends here: the caller decides
                raise Unsupported
            name, rest = match.groups()
            key = self.keys.get(name) or self.key(name)
            if key_lines is not None:
                key_lines.setdefault(key, i)  # the first of duplicate keys, as a walk over nodes finds it
            if not rest or rest[0] == "#":
                value, i = self.nested(i + 1, indent, allow_indentless=True)
            elif (
                rest[0] not in _SPECIAL
                and " #" not in rest
                and ": " not in rest
                and rest[-1] != ":"
                and (i + 1 == count or indents[i + 1] <= indent)
            ):  # the common case: a one-line plain scalar
                value = scalars[rest] if rest in scalars else self.scalar(rest)
                i += 1
            else:
                value, i = self.inline(rest, i, indent)
            out[key] = value
        return out, i

    def track(self, container: Any, lines: Any) -> Any:
        """With line tracking, `lines` (filled by the caller) kept as the container's; else None."""
        if self.where is None:
            return None
        self.where[id(container)] = lines
        return lines

    def key(self, name: str) -> str:
        key = self.scalar(name)
        if not isinstance(key, str):
            raise Unsupported  # a key PyYAML reads as a number, boolean or null
        self.keys[name] = key
        return key

    def nested(self, i: int, indent: int, allow_indentless: bool) -> tuple[Any, int]:
        """The value of a key or `-` with nothing after it: a deeper block, an indentless sequence, or null."""
        if i < self.count:
            deeper, text = self.indents[i], self.texts[i]
            if deeper > indent:
                return self.block(i, deeper)
            if allow_indentless and deeper == indent and (text == "-" or text.startswith("- ")):
                return self.sequence(i, indent)
        return None, i

    def inline(self, rest: str, i: int, indent: int) -> tuple[Any, int]:
        """A value written after `key: ` or `- ` on line i; lines deeper than `indent` may continue it."""
        head = rest[0]
        if head == "'":
            return self.single_quoted(rest, i, indent)
        if head == '"':
            return self.double_quoted(rest, i, indent)
        if head in "[{":
            parsed = self.flow_list(rest) if head == "[" else self.flow_mapping(rest)
            if self.where is not None:
                items = parsed[0]
                self.where[id(items)] = [i] * len(items) if head == "[" else dict.fromkeys(items, i)
            return self.after(rest, parsed, i, indent)
        if head in _INDICATORS or rest.startswith("- ") or rest == "-":
            raise Unsupported
        cut = rest.find(" #")
        commented = cut >= 0
        if commented:
            rest = rest[:cut].rstrip(" ")
        _check_plain(rest)
        parts = [rest]
        i += 1
        while i < self.count and self.indents[i] > indent:
            text = self.texts[i]
            if commented or self.gaps[i] or " #" in text or text[0] in _INDICATORS:
                raise Unsupported
            _check_plain(text)
            parts.append(text)
            i += 1
        return self.scalar(" ".join(parts)), i

    def after(self, rest: str, parsed: tuple[Any, int], i: int, indent: int) -> tuple[Any, int]:
        """A value ending at rest[end] on line i: only a comment may follow, and no line deeper than `indent`."""
        value, end = parsed
        tail = rest[end:]
        if tail and not (tail[0] == " " and tail.lstrip(" ").startswith("#")):
            raise Unsupported
        i += 1
        if i < self.count and self.indents[i] > indent:
            raise Unsupported
        return value, i

    def single_quoted(self, rest: str, i: int, indent: int) -> tuple[str, int]:
        text, start = rest, 1
        while True:
            close = text.find("'", start)
            while close >= 0 and text[close + 1 : close + 2] == "'":
                close = text.find("'", close + 2)
            if close >= 0:
                break
            i += 1  # folded over the next line
            if not self.folds_quoted or i >= self.count or self.indents[i] <= indent or self.gaps[i]:
                raise Unsupported
            start = len(text) + 1
            text = f"{text} {self.texts[i]}"
        value, i = self.after(text, (text[1:close], close + 1), i, indent)
        return value.replace("''", "'"), i

    def double_quoted(self, rest: str, i: int, indent: int) -> tuple[str, int]:
        text = rest
        match = _DOUBLE.match(text)
        while match is None:
            i += 1  # folded over the next line: a space, or nothing after an escaped line break
            if not self.folds_quoted or i >= self.count or self.indents[i] <= indent or self.gaps[i]:
                raise Unsupported
            trail = len(text) - len(text.rstrip("\\"))
            text = f"{text[:-1]}{self.texts[i]}" if trail % 2 else f"{text} {self.texts[i]}"
            match = _DOUBLE.match(text)
        body = match.group(1)
        if "\\" in body:
            body = _ESCAPE.sub(_unescape, body)
        return self.after(text, (body, match.end()), i, indent)

    def flow_list(self, rest: str) -> tuple[list[Any], int]:
        """A one-line `[...]` of plain or quoted scalars."""
        close = rest.find("]")
        if close < 0:
            raise Unsupported
        inner = rest[1:close]
        if not inner.strip(" "):
            return [], close + 1
        if inner.rstrip(" ").endswith(","):
            raise Unsupported
        items: list[Any] = []
        at = 0
        while at < len(inner):
            match = _FLOW_LIST_ITEM.match(inner, at)
            if match is None or match.end() == at:
                raise Unsupported
            double, single, plain = match.groups()
            if double is not None:
                items.append(_ESCAPE.sub(_unescape, double) if "\\" in double else double)
            elif single is not None:
                items.append(single.replace("''", "'"))
            else:
                if _FLOW_ODD.search(plain) or (plain[0] == "-" and plain[1:2] in ("", " ")):
                    raise Unsupported
                items.append(self.scalar(plain))
            at = match.end()
        return items, close + 1

    def flow_mapping(self, rest: str) -> tuple[dict[str, Any], int]:
        """A one-line `{key: value, ...}` of plain keys and plain scalars."""
        close = rest.find("}")
        if close < 0:
            raise Unsupported
        inner = rest[1:close]
        if not inner.strip(" "):
            return {}, close + 1
        out: dict[str, Any] = {}
        for item in inner.split(","):
            match = _FLOW_ITEM.match(item)
            if match is None:
                raise Unsupported
            name, value = match.groups()
            if _FLOW_ODD.search(value) or (value[0] == "-" and value[1:2] in ("", " ")):
                raise Unsupported
            out[self.keys.get(name) or self.key(name)] = self.scalar(value)
        return out, close + 1

    def scalar(self, text: str) -> Any:
        """A plain scalar as PyYAML reads it (its implicit resolvers, then SafeConstructor)."""
        found = self.scalars.get(text, self)
        if found is not self:
            return found
        tag = _resolver.resolve(yaml.ScalarNode, text, (True, False))
        if tag == _STR:
            value: Any = text
        else:
            make = SafeConstructor.yaml_constructors.get(tag)
            if make is None or tag.endswith((":merge", ":value")):
                raise Unsupported
            try:
                value = make(_constructor, yaml.ScalarNode(tag, text))
            except (ValueError, OverflowError) as err:  # e.g. an int past Python's 4,300-digit limit
                raise Unsupported from err  # PyYAML reads it again and the caller reports what it raises
        self.scalars[text] = value
        return value


def _check_plain(text: str) -> None:
    if text.endswith(":") or ": " in text:
        raise Unsupported


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) > 1:  # \xXX, \uXXXX, \UXXXXXXXX
        try:
            return chr(int(code[1:], 16))
        except (ValueError, OverflowError):
            raise Unsupported from None
    found = _ESCAPES.get(code)
    if found is None:
        raise Unsupported
    return found
