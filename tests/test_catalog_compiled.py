"""The compiled catalog cache (keyed by the files' content) and error reporting that stays linear in the
number of broken entries."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

import registry.yaml_lines as yaml_lines
from registry import compiled
from registry.catalog import check_catalog, default_catalog_path, load_catalog

SHIPPED = yaml.safe_load(default_catalog_path().read_text())


def _overlay(path: Path, count: int, broken: bool = False, context: int = 4096) -> Path:
    models = []
    for i in range(count):
        entry = copy.deepcopy(SHIPPED["models"][i % len(SHIPPED["models"])])
        entry["id"] = f"test{i}/model-{i}"
        entry["aliases"] = []
        entry["context_length"] = context
        if broken:
            entry["architecture"]["num_layers"] = 0
        models.append(entry)
    path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return path


def _cached_files() -> list[Path]:
    return sorted(compiled.cache_dir().glob("*.pickle"))


def test_a_valid_load_is_compiled_once_and_read_back_equal(tmp_path, berth_home):
    overlay = _overlay(tmp_path / "overlay.yaml", 30)
    first = load_catalog(overlay=overlay)
    assert len(_cached_files()) == 1
    assert str(compiled.cache_dir()).startswith(str(berth_home))
    second = load_catalog(overlay=overlay)
    assert second.models == first.models
    assert second.accelerators == first.accelerators
    assert second.get("test7/model-7").context_length == 4096


def test_changing_the_file_changes_the_key(tmp_path, berth_home):
    overlay = _overlay(tmp_path / "overlay.yaml", 5, context=4096)
    assert load_catalog(overlay=overlay).get("test1/model-1").context_length == 4096
    _overlay(overlay, 5, context=2048)
    assert load_catalog(overlay=overlay).get("test1/model-1").context_length == 2048
    assert len(_cached_files()) == 2


def test_a_damaged_cache_file_is_a_miss(tmp_path, berth_home):
    overlay = _overlay(tmp_path / "overlay.yaml", 5)
    expected = load_catalog(overlay=overlay)
    for path in _cached_files():
        path.write_bytes(b"not a pickle")
    assert load_catalog(overlay=overlay).models == expected.models
    for path in _cached_files():
        path.write_bytes(b"\x80\x05N.")  # a valid pickle of None: not a compiled catalog
    assert load_catalog(overlay=overlay).models == expected.models


def test_broken_files_are_never_cached_and_report_every_entry(tmp_path, berth_home):
    overlay = _overlay(tmp_path / "broken.yaml", 20, broken=True)
    problems = check_catalog(overlay=overlay)
    assert len(problems) == 20
    assert all("greater than 0" in p.message for p in problems)
    assert len({p.line for p in problems}) == 20
    assert _cached_files() == []


def test_the_cache_can_be_turned_off(tmp_path, berth_home, monkeypatch):
    monkeypatch.setenv("BERTH_NO_CATALOG_CACHE", "1")
    load_catalog(overlay=_overlay(tmp_path / "overlay.yaml", 3))
    assert _cached_files() == []


def test_only_the_newest_compiled_catalogs_are_kept(tmp_path, berth_home):
    for n in range(compiled.KEEP + 3):
        load_catalog(overlay=_overlay(tmp_path / "overlay.yaml", 2, context=1024 + n))
    assert len(_cached_files()) == compiled.KEEP


def test_many_broken_entries_compose_the_file_at_most_once_more(tmp_path, monkeypatch):
    """Line numbers for N errors come from one composed document, not N (the old quadratic behaviour)."""
    overlay = _overlay(tmp_path / "broken.yaml", 200, broken=True)
    composed = []
    real = yaml_lines.yaml.compose

    def counting(*args, **kwargs):
        composed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(yaml_lines.yaml, "compose", counting)
    problems = check_catalog(overlay=overlay)
    assert len(problems) == 200
    assert len(composed) <= 1
