"""registry.yaml_halves reads a large catalog in two processes and gives exactly what fast_yaml.load gives,
or its Unsupported, for the shipped catalog's entries and for texts made to trip the split."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from registry import yaml_halves
from registry.fast_yaml import Unsupported, load

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def split_small_texts(monkeypatch):
    """Split texts of any size, so the tests stay small."""
    monkeypatch.setattr(yaml_halves, "MIN_SPLIT_CHARS", 0)


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load((ROOT / "catalog.yaml").read_text())


def _forks(monkeypatch) -> list[int]:
    """Count the forks load_large makes (the real fork still runs)."""
    calls: list[int] = []
    real = yaml_halves.os.fork

    def counted() -> int:
        pid = real()
        if pid:
            calls.append(pid)
        return pid

    monkeypatch.setattr(yaml_halves.os, "fork", counted)
    return calls


#: Run in a fresh interpreter: the test process may have threads left by other tests, and load_large forks
#: only where no other thread runs.
_IN_HALVES = """
import sys, yaml
from registry import yaml_halves
from registry.fast_yaml import load
yaml_halves.MIN_SPLIT_CHARS = 0
forks = []
real = yaml_halves.os.fork
def counted():
    pid = real()
    if pid:
        forks.append(pid)
    return pid
yaml_halves.os.fork = counted
text = open(sys.argv[1]).read()
shipped = yaml.safe_load(text)
halves = yaml_halves.load_large(text)
assert halves == load(text) == shipped, "halves differ from one read"
assert list(halves) == list(shipped), "top-level key order"
assert len(forks) == 1, forks
print("ok")
"""


@pytest.mark.parametrize("indentless", [False, True])
def test_a_catalog_read_in_halves_equals_one_read(shipped, tmp_path, indentless):
    text = yaml.safe_dump(shipped, sort_keys=False)
    if indentless:  # PyYAML writes indentless lists
        assert "\n- id:" in text
    else:  # indented, as people often write them
        text = yaml.dump(shipped, Dumper=_IndentedDumper, sort_keys=False)
        assert "\n  - id:" in text
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _IN_HALVES, str(path)], env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


class _IndentedDumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def test_a_key_in_both_halves_reads_as_one_document(shipped, monkeypatch):
    body = yaml.safe_dump({"models": shipped["models"][:40]}, sort_keys=False)
    text = "schema_version: 1\n" + body + "schema_version: 1\n"
    assert yaml_halves.load_large(text) == load(text)


def test_a_second_half_outside_the_subset_raises_as_one_read_does(shipped):
    body = yaml.safe_dump({"models": shipped["models"][:40]}, sort_keys=False)
    text = body + "extra: &anchor 1\nagain: *anchor\n"
    with pytest.raises(Unsupported):
        load(text)
    with pytest.raises(Unsupported):
        yaml_halves.load_large(text)


def test_a_quoted_value_that_spans_the_split_line_is_read_whole(shipped):
    models = shipped["models"][:40]
    body = yaml.safe_dump({"models": models}, sort_keys=False)
    middle = body.find("\n- ", len(body) // 2)
    # A double-quoted description whose second line looks like the next entry's first line.
    text = body[:middle] + '\n  description: "first line\n- id: not/an-entry"' + body[middle:]
    try:
        expected = load(text)
    except Unsupported:
        with pytest.raises(Unsupported):
            yaml_halves.load_large(text)
        return
    assert yaml_halves.load_large(text) == expected


def test_no_fork_while_other_threads_run(shipped, monkeypatch):
    forks = _forks(monkeypatch)
    text = yaml.safe_dump(shipped, sort_keys=False)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert yaml_halves.load_large(text) == shipped
    finally:
        stop.set()
        worker.join()
    assert forks == []


def test_a_list_that_ends_before_the_middle_is_read_in_one_process(shipped, monkeypatch):
    forks = _forks(monkeypatch)
    models = yaml.safe_dump({"models": shipped["models"][:3]}, sort_keys=False)
    text = models + yaml.safe_dump({"accelerators": shipped["accelerators"]}, sort_keys=False)
    assert yaml_halves.load_large(text) == load(text)
    assert forks == []
