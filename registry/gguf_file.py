"""Read a GGUF file's header (metadata and tensor table) fast, with the standard library only.

The gguf package's reader builds an object for every element of the tokenizer arrays (about 6 s for a 50k-token
vocabulary on a small CPU); the planner needs only the scalar metadata, each tensor's name, type and size, and
the quantization name. Arrays are skipped (their length is kept). Tensor sizes come from the GGML block sizes
below (values from gguf-py's GGML_QUANT_SIZES, llama.cpp's ggml.h order), or from the tensor offsets for a type
this table does not know.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from registry.errors import ImportModelError

GGUF_MAGIC = b"GGUF"
#: Alignment of the tensor data when general.alignment is absent (GGUF spec).
DEFAULT_ALIGNMENT = 32
#: Headers larger than this are refused (the biggest vocabularies take a few tens of MB).
MAX_HEADER_BYTES = 512 * 2**20

#: GGML tensor type id -> (name, weights per block, bytes per block); from gguf-py's constants.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

#: llama.cpp's general.file_type (enum llama_ftype) -> the quantization name people know (Q4_K_M …).
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

# GGUF value types: id -> struct format for the scalars
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

Scalar = int | float | bool | str


@dataclass(frozen=True)
class GgufArray:
    """A metadata array, left unread: its element type and length."""

    element_type: int
    length: int


@dataclass(frozen=True)
class GgufTensor:
    """One tensor of the file: name, GGML type name, shape and bytes."""

    name: str
    type_name: str
    shape: tuple[int, ...]
    n_bytes: int
    offset: int


@dataclass(frozen=True)
class GgufHeader:
    """What a GGUF file says about itself without reading its weights."""

    version: int
    metadata: Mapping[str, Scalar | GgufArray]
    tensors: tuple[GgufTensor, ...]
    data_offset: int
    file_bytes: int

    @property
    def tensor_bytes(self) -> int:
        """Bytes of all tensor data."""
        return sum(t.n_bytes for t in self.tensors)

    @property
    def quantization(self) -> str:
        """The file's quantization name (Q4_K_M, Q8_0 …): general.file_type, else the commonest tensor type."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and not isinstance(file_type, bool) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        weight: dict[str, int] = {}
        for tensor in self.tensors:
            if len(tensor.shape) >= 2:
                weight[tensor.type_name] = weight.get(tensor.type_name, 0) + tensor.n_bytes
        return max(weight, key=lambda name: weight[name]) if weight else "unknown"

    def string(self, key: str) -> str | None:
        """A string metadata value, or None."""
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None


class GgufFormatError(ImportModelError):
    """Bytes that are not a GGUF header Berth reads; `reason` says why without naming the file."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class GgufCutShort(GgufFormatError):
    """The bytes end before the header does; `needed` is a lower bound on the bytes that hold it."""

    def __init__(self, where: Path | str, needed: int) -> None:
        self.needed = needed
        super().__init__(
            f"{where} is not a readable GGUF file (its header is cut short)", "its header is cut short"
        )


def _unreadable(where: Path | str, reason: str) -> GgufFormatError:
    return GgufFormatError(f"{where} is not a readable GGUF file ({reason})", reason)


class _Reader:
    """Parses the header straight from a memory map of the file (only the header's pages are read), or from
    the first bytes of a file fetched elsewhere."""

    def __init__(self, data: mmap.mmap | bytes, path: Path | str, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.data = data
        self.path = path
        self.max_bytes = max_bytes
        self.pos = 0

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.max_bytes:
            raise _unreadable(self.path, "its header is cut short")
        if self.pos + n > len(self.data):
            raise GgufCutShort(self.path, self.pos + n)

    def unpack(self, fmt: str) -> Scalar:
        size = struct.calcsize(fmt)
        self.need(size)
        value: Scalar = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def u32(self) -> int:
        return int(self.unpack("<I"))

    def u64(self) -> int:
        return int(self.unpack("<Q"))

    def string(self) -> str:
        length = self.u64()
        self.need(length)
        text = bytes(self.data[self.pos : self.pos + length]).decode("utf-8", errors="replace")
        self.pos += length
        return text

    def value(self, kind: int) -> Scalar | GgufArray:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            element, length = self.u32(), self.u64()
            self.skip_array(element, length)
            return GgufArray(element, length)
        raise _unreadable(self.path, f"unknown value type {kind}")

    def skip_array(self, element: int, length: int) -> None:
        if element in _SCALARS:
            size = struct.calcsize(_SCALARS[element]) * length
            self.need(size)
            self.pos += size
        elif element == _STRING:
            unpack_from, data = struct.unpack_from, self.data
            for _ in range(length):
                self.need(8)
                self.pos += 8 + unpack_from("<Q", data, self.pos)[0]
            self.need(0)
        elif element == _ARRAY:
            for _ in range(length):
                inner, count = self.u32(), self.u64()
                self.skip_array(inner, count)
        else:
            raise _unreadable(self.path, f"unknown array type {element}")


def read_gguf_header(path: Path | str) -> GgufHeader:
    """The header of a GGUF file (v2 or v3); ImportModelError when it is not one."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 4:
                raise ImportModelError(f"{path} is not a GGUF file (it is {size} bytes long)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return gguf_header_from(data, path, size)
    except OSError as error:
        raise ImportModelError(f"cannot read {path}: {error.strerror or error}") from None


def gguf_header_from(
    data: mmap.mmap | bytes, where: Path | str, file_bytes: int, max_bytes: int = MAX_HEADER_BYTES
) -> GgufHeader:
    """The header at the start of `data`, the first bytes of a file of `file_bytes` (`where` names it in
    errors). GgufCutShort when `data` ends inside the header; GgufFormatError when the bytes are not GGUF."""
    reader = _Reader(data, where, max_bytes)
    reader.need(4)
    if bytes(data[:4]) != GGUF_MAGIC:
        reason = "it does not start with 'GGUF'"
        raise GgufFormatError(f"{where} is not a GGUF file ({reason})", reason)
    reader.pos = 4
    version = reader.u32()
    if version not in (2, 3):
        reason = f"version {version}; Berth reads versions 2 and 3"
        raise GgufFormatError(f"{where} is GGUF {reason}", reason)
    n_tensors, n_kv = reader.u64(), reader.u64()
    if n_tensors > 10**6 or n_kv > 10**6:
        raise _unreadable(where, f"{n_tensors} tensors, {n_kv} keys")
    metadata: dict[str, Scalar | GgufArray] = {}
    for _ in range(n_kv):
        key = reader.string()
        metadata[key] = reader.value(reader.u32())
    raw: list[tuple[str, int, tuple[int, ...], int]] = []
    for _ in range(n_tensors):
        name = reader.string()
        n_dims = reader.u32()
        if n_dims > 8:
            raise _unreadable(where, f"a tensor of {n_dims} dimensions")
        dims = tuple(reader.u64() for _ in range(n_dims))
        raw.append((name, reader.u32(), dims, reader.u64()))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    align = alignment if isinstance(alignment, int) and alignment > 0 else DEFAULT_ALIGNMENT
    data_offset = -(-reader.pos // align) * align
    return GgufHeader(version, metadata, _tensors(raw, file_bytes - data_offset), data_offset, file_bytes)


def _tensors(raw: list[tuple[str, int, tuple[int, ...], int]], data_bytes: int) -> tuple[GgufTensor, ...]:
    """Each tensor's bytes from its type's block size, else up to the next tensor's offset."""
    offsets = [*sorted({offset for _, _, _, offset in raw}), max(data_bytes, 0)]
    following = {offsets[i]: offsets[i + 1] for i in range(len(offsets) - 1)}
    tensors = []
    for name, kind, dims, offset in raw:
        elements = 1
        for dim in dims:
            elements *= dim
        known = GGML_TYPES.get(kind)
        if known is not None:
            type_name, block, block_bytes = known
            n_bytes = -(-elements // block) * block_bytes
        else:
            type_name, n_bytes = f"type {kind}", max(following.get(offset, offset) - offset, 0)
        tensors.append(GgufTensor(name, type_name, dims, n_bytes, offset))
    return tuple(tensors)
