"""Entries derived from the Hub, cached as JSON in the user's cache folder (one file per repository and asked-for
revision), so that HF_HUB_OFFLINE=1 and later runs use them; imports registry only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from registry.hub_card import HubEntry, RepoRef
from registry.userdirs import cache_dir

#: Largest cache file read back (an entry is a few kB).
MAX_ENTRY_BYTES = 1 << 20


def hub_cache_dir() -> Path:
    """Where derived Hub entries are kept."""
    return cache_dir() / "hub"


def entry_path(ref: RepoRef) -> Path:
    """The cache file of a repository at the asked-for revision (`main` when none was asked for)."""
    owner, name = ref.repo_id.split("/", 1)
    revision = (ref.revision or "main").replace("/", "%2F")
    return hub_cache_dir() / f"{owner}--{name}" / f"{revision}.json"


def read_entry(ref: RepoRef) -> HubEntry | None:
    """The cached entry, or None when there is none or it cannot be used (a damaged file is ignored)."""
    path = entry_path(ref)
    try:
        if path.stat().st_size > MAX_ENTRY_BYTES:
            return None
        return HubEntry.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def write_entry(ref: RepoRef, entry: HubEntry) -> Path:
    """Store the entry (atomically: a crash leaves the old file or the new one, never half of one)."""
    path = entry_path(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".entry-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(entry.model_dump_json(indent=1))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
