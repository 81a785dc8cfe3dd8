"""Text formatting for people: sizes in GiB/GB, counts, speeds, and plain aligned tables."""

from __future__ import annotations

from collections.abc import Sequence

GIB = 2**30
MIB = 2**20


def gib(n_bytes: int | None, digits: int = 1) -> str:
    """Bytes as GiB (binary, what drivers and `nvidia-smi` show)."""
    if n_bytes is None:
        return "?"
    if abs(n_bytes) < GIB and n_bytes != 0:
        return f"{n_bytes / MIB:.0f} MiB"
    return f"{n_bytes / GIB:.{digits}f} GiB"


def gb(n_bytes: int | None, digits: int = 1) -> str:
    """Bytes as GB (decimal, what GPU boxes quote)."""
    if n_bytes is None:
        return "?"
    return f"{n_bytes / 1e9:.{digits}f} GB"


def params(count: int) -> str:
    """A parameter count as 1.8B / 135M."""
    if count >= 10**12:
        return f"{count / 10**12:.2f}T"
    if count >= 999_500_000:  # 999.9M would round to "1000M"
        value = count / 10**9
        return f"{value:.1f}B" if value < 100 else f"{value:.0f}B"
    if count >= 999_500:
        return f"{count / 10**6:.0f}M"
    return f"{count / 10**3:.0f}K"


def rate(tokens_per_s: float | None) -> str:
    """Tokens per second for a table cell."""
    if tokens_per_s is None:
        return "-"
    if tokens_per_s >= 100:
        return f"{tokens_per_s:.0f}"
    if tokens_per_s >= 1:
        return f"{tokens_per_s:.1f}"
    return f"{tokens_per_s:.2f}"


def seconds(value: float | None) -> str:
    """A duration for people."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """An aligned plain-text table; columns listed in `right` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out)
