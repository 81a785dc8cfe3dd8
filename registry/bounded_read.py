"""Read a user-named text file with a cap on its size, so `/dev/zero` or a huge file is refused, not swallowed."""

from __future__ import annotations

from pathlib import Path

from registry.errors import InputFileError

#: Largest file Berth reads as input (catalogs, overlays, fleet files, hardware specs): 64 MiB.
MAX_INPUT_BYTES = 64 * 2**20
#: Largest hardware spec or fleet file: far above any real one, far below a memory problem.
MAX_SPEC_BYTES = 16 * 2**20


def read_text_capped(path: Path | str, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the file at `path`, reading at most `limit` bytes; InputFileError (exit 2, one line
    saying what to do) when it is missing, a folder, unreadable, not UTF-8 or larger than `limit`."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not a file") from None
    except (OSError, ValueError) as err:  # ValueError: a NUL character in the path
        raise InputFileError(path, f"cannot read the file ({_reason(err)})") from None
    if len(data) > limit:
        raise InputFileError(
            path,
            f"larger than {_size(limit)}, too large for this kind of file",
            "Pass the right file (a catalog, overlay, fleet file or hardware spec is a small text file).",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            path, f"not UTF-8 text (byte {err.start:,})", "Pass a text file saved as UTF-8."
        ) from None


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit:,} bytes"
