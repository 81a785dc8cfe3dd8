"""Shape figures kept between runs (launcher.run.figures_cache): plans made from kept figures are the plans made
from scratch, in this process and in a fresh `berth list` process, and a damaged or foreign file is only a miss.

The planner and the pickle files are real; BERTH_HOME is the test's own folder."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan import figures, ladder
from launcher.plan.request import PlanRequest
from launcher.plan.rows import plan_all
from launcher.run.figures_cache import figures_file, kept_figures
from registry.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
HOSTS = ("cpu,ram=16GB,disk=200GB", "rtx-4090,ram=64GB,disk=1TB", "2xa100-80gb,ram=512GB")
REQUESTS = (PlanRequest(), PlanRequest(context=32768, batch=2))


def _forget() -> None:
    """This process's shared figures and rung memory, as in a fresh process."""
    figures._layouts.clear()
    figures._figures.clear()
    figures._kept.clear()
    ladder._last_rungs.clear()


def _rows(catalog: Catalog, spec: str, request: PlanRequest) -> list[dict[str, object]]:
    host = parse_hardware_spec(spec, catalog)
    return [row.as_dict() for row in plan_all(catalog, host, request)]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BERTH_HOME", str(tmp_path))
    monkeypatch.delenv("BERTH_NO_CATALOG_CACHE", raising=False)
    _forget()
    yield
    _forget()


def test_kept_figures_give_the_plans_made_from_scratch(catalog: Catalog):
    expected = {}
    for spec in HOSTS:
        for request in REQUESTS:
            _forget()
            expected[spec, request] = _rows(catalog, spec, request)
    _forget()
    with kept_figures():
        for spec in HOSTS:
            for request in REQUESTS:
                _rows(catalog, spec, request)
    assert figures_file().is_file()
    for spec in HOSTS:
        for request in REQUESTS:
            _forget()
            with kept_figures():
                assert figures._kept, "the file's figures were not taken"
                assert _rows(catalog, spec, request) == expected[spec, request], (spec, request)


def test_a_run_that_computes_nothing_new_leaves_the_file_alone(catalog: Catalog):
    with kept_figures():
        _rows(catalog, HOSTS[0], REQUESTS[0])
    path = figures_file()
    stamp = path.stat().st_mtime_ns
    _forget()
    with kept_figures():
        _rows(catalog, HOSTS[0], REQUESTS[0])
    assert path.stat().st_mtime_ns == stamp
    _forget()
    with kept_figures():
        _rows(catalog, HOSTS[0], REQUESTS[1])  # a new context: new figures, the file is rewritten
    assert path.stat().st_mtime_ns != stamp


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pickle", pickle.dumps({"layouts": {}, "figures": {}}), pickle.dumps([1, 2, 3])],
    ids=["empty", "garbage", "a dict", "a list"],
)
def test_a_damaged_or_foreign_file_is_a_miss_and_is_rewritten(catalog: Catalog, content: bytes):
    expected = _rows(catalog, HOSTS[1], REQUESTS[0])
    _forget()
    path = figures_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with kept_figures():
        assert _rows(catalog, HOSTS[1], REQUESTS[0]) == expected
    assert isinstance(pickle.loads(path.read_bytes()), figures.FiguresState)


def test_no_file_when_the_cache_is_off(catalog: Catalog, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BERTH_NO_CATALOG_CACHE", "1")
    with kept_figures():
        _rows(catalog, HOSTS[0], REQUESTS[0])
    assert not figures_file().exists()


def test_a_second_list_process_reads_the_file_and_prints_the_same(tmp_path: Path):
    env = dict(os.environ, BERTH_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    env.pop("BERTH_NO_CATALOG_CACHE", None)
    command = [
        sys.executable,
        "-c",
        "from launcher.entry import main; main()",
        "list",
        "--json",
        "--hardware",
        HOSTS[1],
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    kept = list((tmp_path / "cache" / "figures").glob("*.pickle"))
    assert len(kept) == 1
    stamp = kept[0].stat().st_mtime_ns
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert kept[0].stat().st_mtime_ns == stamp  # read, nothing new to write


def test_the_file_keeps_what_the_last_run_used_first_up_to_the_limit(catalog: Catalog):
    with kept_figures():
        _rows(catalog, HOSTS[0], REQUESTS[0])
    first = set(pickle.loads(figures_file().read_bytes()).figures)
    _forget()
    with kept_figures():
        _rows(catalog, HOSTS[0], REQUESTS[1])  # another context: its figures, and the earlier ones kept
    state = figures.export_figures(limit=len(first))
    assert not set(state.figures) & first  # the run's own figures come first: the earlier ones did not fit
    assert {full[0] for full in state.figures} == set(state.layouts)
    both = pickle.loads(figures_file().read_bytes())
    assert first < set(both.figures)
