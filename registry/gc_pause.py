"""A pause of Python's cyclic garbage collector around bulk work; imports only the standard library.

Loading a large catalog or listing it builds hundreds of thousands of objects and frees almost none: each
collection the allocations trigger walks all of them again, for nothing (reference counting still frees
everything that is not in a cycle). The pause ends with the block, restoring the collector as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block (the collector's earlier state is restored after it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
