"""Model-shape figures kept between runs, so a large `berth list` does not size every shape again. Imports the
standard library, registry.compiled (the cache folder and switch) and launcher.plan.figures.

A shape's layout, per-block weights and KV cache follow from its architecture fields alone (the shape key) and
from the code that computes them; the file is named by a digest of that code and of the Python version, so a
change to either starts a new file. The file is the user's own cache, like the compiled catalog; one that cannot
be read, or holds something else, is ignored and rewritten. BERTH_NO_CATALOG_CACHE=1 turns this off too."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher.plan import figures
from registry import compiled
from registry.gc_pause import collector_paused

#: Format of the stored value; bump when it changes.
FORMAT = 1
#: The files whose code decides the figures (relative to the repository root).
_CODE = (
    "registry/params.py",
    "registry/memory.py",
    "registry/layers.py",
    "registry/schema.py",
    "launcher/plan/figures.py",
    "launcher/run/figures_cache.py",
)
#: Files of other code versions kept beside the current one.
KEEP = 2


def figures_file() -> Path:
    """Where this code's figures are kept."""
    digest = compiled.code_digest(Path(__file__).resolve().parents[2], _CODE, FORMAT)
    return compiled.cache_dir().parent / "figures" / f"{digest.hex()[:32]}.pickle"


@contextmanager
def kept_figures() -> Iterator[None]:
    """Plan with the figures earlier runs computed, and keep what this run adds."""
    if not compiled.enabled():
        yield
        return
    path = figures_file()
    _load(path)
    before = figures.figures_count()
    yield
    if figures.figures_count() != before:
        _save(path)


def _load(path: Path) -> None:
    try:
        data = path.read_bytes()
        with collector_paused():
            state = pickle.loads(data)  # the user's own cache folder, written by _save below
    except Exception:  # any unreadable cache file is only a miss
        return
    if isinstance(state, figures.FiguresState):
        figures.import_figures(state)


def _save(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps(figures.export_figures(), protocol=pickle.HIGHEST_PROTOCOL)
        temp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        temp.write_bytes(data)
        os.replace(temp, path)
        others = sorted(path.parent.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in others[KEEP:]:
            old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return
