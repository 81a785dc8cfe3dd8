"""Read a GGUF file's header (metadata and tensor table) from its first bytes, without the gguf package or the
weights: what the Hub path needs from a GGUF file it reads with HTTP range requests. Pure; stdlib only."""

from __future__ import annotations

import struct
from math import prod
from typing import Any

from registry.importer import GgufTable

#: Struct codes of the GGUF scalar value types (gguf.GGUFValueType numbering).
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
#: Most tensors or metadata entries a header may declare (far above any real model's).
MAX_ENTRIES = 1_000_000


class HeaderTooShort(Exception):
    """The bytes end before the header does; `needed` is a lower bound on the bytes to fetch."""

    def __init__(self, needed: int) -> None:
        self.needed = needed
        super().__init__(f"need at least {needed} bytes")


class NotGgufError(ValueError):
    """The bytes are not a GGUF header Berth can read."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise HeaderTooShort(end)
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def scalar(self, code: str) -> Any:
        return struct.unpack(code, self.take(struct.calcsize(code)))[0]

    def string(self) -> str:
        length = self.scalar("<Q")
        if length > 2**26:
            raise NotGgufError(f"a string of {length:,} bytes in the header")
        return self.take(length).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.scalar("<I"), self.scalar("<Q")
            if count > 2**26:
                raise NotGgufError(f"an array of {count:,} items in the header")
            for _ in range(count):
                self.value(item_kind)
            return _ArrayLength(count)
        raise NotGgufError(f"unknown metadata value type {kind}")


class _ArrayLength(int):
    """An array value, kept only as its length (tokens, merges …)."""


def parse_gguf_header(data: bytes) -> GgufTable:
    """The metadata scalars, tensor names, vocabulary size and value count a GGUF header declares.

    Raises HeaderTooShort when `data` ends inside the header (fetch more and call again) and NotGgufError when
    the bytes are not GGUF.
    """
    reader = _Reader(data)
    if reader.take(4) != b"GGUF":
        raise NotGgufError("the file does not start with GGUF")
    version = reader.scalar("<I")
    if version not in (2, 3):
        raise NotGgufError(f"GGUF version {version} (Berth reads versions 2 and 3)")
    tensor_count, kv_count = reader.scalar("<Q"), reader.scalar("<Q")
    if tensor_count > MAX_ENTRIES or kv_count > MAX_ENTRIES:
        raise NotGgufError("the header declares more entries than any model has")
    meta: dict[str, Any] = {}
    token_count: int | None = None
    for _ in range(kv_count):
        key = reader.string()
        value = reader.value(reader.scalar("<I"))
        if isinstance(value, _ArrayLength):
            if key == "tokenizer.ggml.tokens":
                token_count = int(value)
            continue
        meta[key] = value
    names: set[str] = set()
    values = 0
    for _ in range(tensor_count):
        names.add(reader.string())
        dims = reader.scalar("<I")
        if dims > 8:
            raise NotGgufError(f"a tensor with {dims} dimensions")
        values += prod(reader.scalar("<Q") for _ in range(dims))
        reader.take(4 + 8)  # type, offset
    return GgufTable(meta=meta, tensor_names=frozenset(names), token_count=token_count, values=values)
