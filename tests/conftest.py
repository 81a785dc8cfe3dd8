"""Shared fixtures: the user's directory points at tmp_path, and the shipped catalog loads once."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.catalog import Catalog, load_catalog


@pytest.fixture(autouse=True)
def berth_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own BERTH_HOME so nothing touches the real user's files."""
    home = tmp_path / "berth-home"
    home.mkdir()
    monkeypatch.setenv("BERTH_HOME", str(home))
    monkeypatch.delenv("BERTH_HARDWARE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The shipped catalog without any overlay."""
    return load_catalog(overlay=False)
