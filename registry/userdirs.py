"""Where Berth keeps user files: XDG config and data folders, or BERTH_HOME for both (read at call time)."""

from __future__ import annotations

import os
from pathlib import Path

from registry.paths import expand_user_path


def config_dir() -> Path:
    """Folder of the user's catalog overlay and settings (~/.config/berth or $BERTH_HOME)."""
    home = os.environ.get("BERTH_HOME")
    if home:
        return expand_user_path(home)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return expand_user_path(base) / "berth"


def data_dir() -> Path:
    """Folder of the history and measurements store (~/.local/share/berth or $BERTH_HOME)."""
    home = os.environ.get("BERTH_HOME")
    if home:
        return expand_user_path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return expand_user_path(base) / "berth"


def overlay_path() -> Path:
    """The user's catalog overlay file (it may not exist)."""
    return config_dir() / "catalog.yaml"


def cache_dir() -> Path:
    """Folder of things Berth can rebuild, such as entries derived from the Hub (~/.cache/berth or
    $BERTH_HOME/cache)."""
    home = os.environ.get("BERTH_HOME")
    if home:
        return expand_user_path(home) / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return expand_user_path(base) / "berth"
