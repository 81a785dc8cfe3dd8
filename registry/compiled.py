"""A compiled catalog cache: validated models and accelerators stored by the content of the files they came
from, so a large catalog or overlay is parsed and validated once. Imports only the standard library,
registry.gc_pause and registry.schema.

The key is a SHA-256 over the text of every source file (with its path), the Python version and the source of
the modules that decide what a valid entry is; any change to a file or to that code is a new key. Only loads
without problems are stored (errors are always reported from the files themselves). A cache file that cannot
be read, or holds something else, is ignored and rewritten. BERTH_NO_CATALOG_CACHE=1 turns the cache off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

from registry.gc_pause import collector_paused
from registry.schema import Accelerator, ModelCard

#: Compiled catalogs kept; older ones are removed when a new one is written.
KEEP = 4
#: Format of the stored value; bump when it changes.
FORMAT = 1
#: Modules whose code decides what loads: a change to any of them invalidates every compiled catalog.
_CODE = (
    "schema.py",
    "catalog.py",
    "params.py",
    "compiled.py",
    "fast_yaml.py",
    "yaml_halves.py",
    "safe_yaml.py",
)

Compiled = tuple[tuple[ModelCard, ...], tuple[Accelerator, ...]]


def cache_dir() -> Path:
    """Folder of compiled catalogs: $BERTH_HOME/cache, else $XDG_CACHE_HOME/berth (~/.cache/berth)."""
    home = os.environ.get("BERTH_HOME")
    if home:
        return Path(home).expanduser() / "cache" / "catalog"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "berth" / "catalog"


def enabled() -> bool:
    """Whether compiled catalogs are used (BERTH_NO_CATALOG_CACHE unset or 0)."""
    return os.environ.get("BERTH_NO_CATALOG_CACHE", "0") in ("", "0")


def code_digest(folder: Path, names: Sequence[str], version: int) -> bytes:
    """SHA-256 over a format `version`, the Python version and the bytes of each named file under `folder` (a
    file that cannot be read by its name): what a cache of values computed by that code is keyed by."""
    digest = hashlib.sha256(f"{version}:{sys.version}".encode())
    for name in names:
        try:
            digest.update((folder / name).read_bytes())
        except OSError:
            digest.update(name.encode())
    return digest.digest()


def _code_digest() -> bytes:
    return code_digest(Path(__file__).resolve().parent, _CODE, FORMAT)


_CODE_DIGEST: bytes | None = None


def key_for(sources: list[tuple[Path, str]]) -> str:
    """The cache key of these (path, text) sources, in order."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        _CODE_DIGEST = _code_digest()
    digest = hashlib.sha256(_CODE_DIGEST)
    for path, text in sources:
        digest.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
        digest.update(text.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def load(key: str) -> Compiled | None:
    """The compiled catalog stored under `key`, or None (missing, unreadable, or not a compiled catalog)."""
    if not enabled():
        return None
    try:
        data = (cache_dir() / f"{key}.pickle").read_bytes()
        with collector_paused():  # thousands of objects, none of them garbage
            value = pickle.loads(data)  # the user's own cache folder, written by save() below
    except Exception:  # any unreadable cache file is only a miss
        return None
    if not _well_formed(value):
        return None
    return value


def _well_formed(value: object) -> bool:
    if not (isinstance(value, tuple) and len(value) == 2):
        return False
    models, accelerators = value
    return (
        isinstance(models, tuple)
        and isinstance(accelerators, tuple)
        and all(isinstance(m, ModelCard) for m in models)
        and all(isinstance(a, Accelerator) for a in accelerators)
    )


def save(key: str, compiled: Compiled) -> None:
    """Store a compiled catalog under `key` (atomically), keeping the newest KEEP; failures are ignored."""
    if not enabled():
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{key}.pickle"
        temp = folder / f".{key}.{os.getpid()}.tmp"
        temp.write_bytes(pickle.dumps(compiled, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temp, target)
        _prune(folder)
    except OSError:
        return


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)
