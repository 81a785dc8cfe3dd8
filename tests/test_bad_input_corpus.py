"""Issue 15's bad-input corpus (tests/data/bad_inputs/cases.yaml) through the real CLI, each case in a child
process with a 500 MB address space: the expected exit code, a stderr naming the problem in one paragraph,
and never a traceback. The 60 s timeout only guards against a hang; no case asserts on time. `-m "not slow"`
runs the first case of each class (a child takes about 0.5 s; the whole corpus, a few minutes on a busy box)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.corpus_cases import error_text, flat, load_cases, run_case


def _cases() -> list[Any]:
    params, quick_classes = [], set()
    for case in load_cases():
        marks = [pytest.mark.xfail(reason=case["xfail"], strict=False)] if case.get("xfail") else []
        if case["class"] in quick_classes:
            marks.append(pytest.mark.slow)  # the quick set runs the first case of each class
        quick_classes.add(case["class"])
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


@pytest.mark.parametrize("case", _cases())
def test_bad_input(case: dict[str, Any], tmp_path: Path, berth_home: Path) -> None:
    run = run_case(case, tmp_path, berth_home)
    out, err = run.stdout, run.stderr
    shown = f"exit {run.returncode}\n--- stdout\n{out[:3000]}\n--- stderr\n{err[:3000]}"
    assert "Traceback" not in out + err, shown
    expected = case["exit"] if isinstance(case["exit"], list) else [case["exit"]]
    assert run.returncode in expected, shown
    stream = out if case.get("stream") == "stdout" else err
    assert flat(case["message"]) in flat(stream), shown
    if case.get("not_message"):
        assert flat(case["not_message"]) not in flat(out + err), shown
    if case.get("paragraphs") != "many":
        assert "\n\n" not in error_text(err).strip(), shown
    if case.get("max_stderr"):
        assert len(err) <= case["max_stderr"], f"stderr is {len(err)} characters\n{shown}"
