"""A pause of Python's cyclic garbage collector around bulk work; imports only the standard library.

Loading a large catalog or listing it builds hundreds of thousands of objects and frees almost none: each
collection the allocations trigger walks all of them again, for nothing (reference counting still frees
everything that is not in a cycle). The pause ends with the block, restoring the collector as it was.

A command-line process (launcher.entry.main, not a test runner or a library caller) also calls
`freeze_bulk_work()`: then what an outermost paused block leaves behind is moved to the collector's permanent
generation (gc.freeze), since it lives until the short-lived command ends. Otherwise the first collections after
the block would walk every object it built once more, and the interpreter's final collection once again."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze = False


def freeze_bulk_work() -> None:
    """From now on, objects left by an outermost paused block are frozen (see the module's docstring)."""
    global _freeze
    _freeze = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block (the collector's earlier state is restored after it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _freeze:
                gc.freeze()
            gc.enable()
