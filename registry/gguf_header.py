"""Read a GGUF header from a file's first bytes (what the Hub path fetches with HTTP range requests), with
registry.gguf_file's reader; imports registry.gguf_file and registry.importer only."""

from __future__ import annotations

from registry.gguf_file import GgufCutShort, GgufFormatError, gguf_header_from
from registry.importer import GgufTable, gguf_table

#: Largest header read from the first bytes of a file (far above any real model's).
MAX_HEADER_BYTES = 64 << 20


class HeaderTooShort(Exception):
    """The bytes end before the header does; `needed` is a lower bound on the bytes to fetch."""

    def __init__(self, needed: int) -> None:
        self.needed = needed
        super().__init__(f"need at least {needed} bytes")


class NotGgufError(ValueError):
    """The bytes are not a GGUF header Berth can read."""


def parse_gguf_header(data: bytes) -> GgufTable:
    """The metadata scalars, tensor names, vocabulary size and value count a GGUF header declares.

    Raises HeaderTooShort when `data` ends inside the header (fetch more and call again) and NotGgufError when
    the bytes are not GGUF.
    """
    try:
        header = gguf_header_from(data, "the file", len(data), MAX_HEADER_BYTES)
    except GgufCutShort as short:
        raise HeaderTooShort(short.needed) from None
    except GgufFormatError as error:
        raise NotGgufError(error.reason) from None
    return gguf_table(header)
