"""Read a large catalog's YAML on two cores: the second half of its `models:` list in a forked process (Linux
only; imports the standard library and registry.fast_yaml).

A 30,000-entry overlay is about 20 MB of YAML, two seconds of registry.fast_yaml's line-by-line reading on one
core. Its entries are independent list items, so the text splits at an entry's first line in the middle of
the `models:` list: this process reads the first half as it stands, a forked child reads `models:` plus the
second half and sends its data back pickled, and the two `models` lists are joined. The result equals
fast_yaml.load(text) whenever both halves read: each half is a valid document of the same subset, the split
line starts an entry at the list's own indentation, and a top-level key after the list (`accelerators:`)
belongs to the second half alone. Anything unusual (no single `models:` list, a key in both halves, a half
outside the subset, a child that fails, threads running, another platform) reads the whole text in this
process instead, so callers see exactly fast_yaml.load's result or its Unsupported.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import threading
from typing import Any

from registry.fast_yaml import Unsupported, load

#: Texts shorter than this are read in one process (forking and pickling would cost more than they save).
MIN_SPLIT_CHARS = 4_000_000
#: The `models:` key at the top level, and the first entry line below it (its indentation is the list's).
_MODELS = re.compile(r"^models:[ ]*\n((?:[ ]*\n)*)([ ]*)- ", re.MULTILINE)
#: A line at the top level that is not a list item: a key, a comment or a document marker.
_TOP_LEVEL = re.compile(r"\n[^ \n-]|\n-[^ \n]")


def load_large(text: str) -> Any:
    """fast_yaml.load(text), reading the second half of a large `models:` list in a forked child."""
    halves = _split(text) if _may_fork(text) else None
    if halves is None:
        return load(text)
    first, second = halves
    child = _start(second)
    if child is None:
        return load(text)
    try:
        head = load(first)
    except (Unsupported, RecursionError):
        _reap(child)
        return load(text)
    tail = _finish(child)
    joined = _join(head, tail)
    return load(text) if joined is None else joined


def _may_fork(text: str) -> bool:
    return (
        len(text) >= MIN_SPLIT_CHARS
        and sys.platform == "linux"
        and (os.cpu_count() or 1) > 1
        and threading.active_count() == 1  # forking with other threads running may copy a held lock
    )


def _split(text: str) -> tuple[str, str] | None:
    """The text up to an entry line near the middle of the `models:` list, and `models:` plus the rest."""
    found = list(_MODELS.finditer(text))
    if len(found) != 1:
        return None
    match = found[0]
    marker = "\n" + match.group(2) + "- "
    middle = text.find(marker, max(match.end(), len(text) // 2))
    if middle < 0 or _TOP_LEVEL.search(text, match.end(), middle) is not None:
        return None  # the list ends before the middle: nothing worth splitting
    return text[: middle + 1], "models:\n" + text[middle + 1 :]


def _start(text: str) -> tuple[int, int] | None:
    """Fork a child that reads `text` and writes its pickled data (or None when unsupported) to a pipe."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: read, send, and leave without running the parent's exit handlers
        status = 0
        try:
            os.close(read_end)
            try:
                data: Any = (load(text),)
            except Unsupported:
                data = None
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(data, out, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # nothing may escape a forked child
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _finish(child: tuple[int, int]) -> tuple[Any] | None:
    """The child's data, wrapped in a 1-tuple; None when it could not read its half or failed."""
    pid, read_end = child
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pickle.load(pipe)
    except (EOFError, OSError, pickle.UnpicklingError):
        data = None
    finally:
        _, status = os.waitpid(pid, 0)
    if status != 0 or not isinstance(data, tuple):
        return None
    return data


def _reap(child: tuple[int, int]) -> None:
    pid, read_end = child
    os.close(read_end)
    os.waitpid(pid, 0)


def _join(head: Any, tail: tuple[Any] | None) -> dict[str, Any] | None:
    """The first half's mapping with the second half's models appended and its other keys added; None when
    the halves do not join as one document would read."""
    if tail is None or not isinstance(head, dict) or not isinstance(tail[0], dict):
        return None
    rest = tail[0]
    if not isinstance(head.get("models"), list) or not isinstance(rest.get("models"), list):
        return None
    if any(key in head for key in rest if key != "models"):
        return None  # a key in both halves: one document keeps the last, which this join cannot tell apart
    joined = dict(head)
    joined["models"] = head["models"] + rest["models"]
    for key, value in rest.items():
        if key != "models":
            joined[key] = value
    return joined
