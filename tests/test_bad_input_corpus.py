"""Issue 15's bad-input corpus (tests/data/bad_inputs/cases.yaml) through the real CLI, each case in a child
process with a 500 MB address space: the expected exit code, a stderr naming the problem in one paragraph,
and never a traceback. The 60 s timeout only guards against a hang; no case asserts on time. `-m "not slow"`
runs the first case of each class (a child takes about 0.5 s; the whole corpus, a few minutes on a busy box)."""

from __future__ import annotations

import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "bad_inputs"
MEMORY_LIMIT_BYTES = 500 * 2**20
HANG_GUARD_S = 60
#: Variables a developer's shell may set that would change what a case means.
CLEARED = ("BERTH_HARDWARE", "BERTH_CATALOG", "BERTH_DEBUG", "XDG_CONFIG_HOME", "XDG_DATA_HOME")


def _cases() -> list[Any]:
    manifest = yaml.safe_load((DATA / "cases.yaml").read_text(encoding="utf-8"))
    params, quick_classes = [], set()
    for case in manifest["cases"]:
        marks = [pytest.mark.xfail(reason=case["xfail"], strict=False)] if case.get("xfail") else []
        if case["class"] in quick_classes:
            marks.append(pytest.mark.slow)  # the quick set runs the first case of each class
        quick_classes.add(case["class"])
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _generated(case: dict[str, Any]) -> str:
    gen = case["gen"]
    return str(gen.get("head", "")) + str(gen["text"]) * int(gen["times"]) + str(gen.get("tail", ""))


def _setup_store(home: Path, how: str) -> None:
    """A store holding chat 1, or a berth.db that is not a database (random bytes, or a store cut short)."""
    from launcher.run.store import Store

    db = home / "berth.db"
    if how == "damaged_db":
        db.write_bytes(random.Random(15).randbytes(64 * 1024))
        return
    with Store(db) as store:
        chat = store.new_chat("openai-community/gpt2", "completion")
        store.add_message(chat, "user", "hello")
        store.add_message(chat, "assistant", "hi there")
    if how == "truncated_db":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3 + 100])


def _prepare(case: dict[str, Any], tmp_path: Path, home: Path) -> tuple[list[str], dict[str, str]]:
    """The argv after `berth` and the child's environment, with the case's files in place in `home`."""
    file = str(DATA / case["file"]) if case.get("file") else ""
    gen = ""
    if case.get("gen"):
        if case["gen"].get("to_file"):
            target = home / "catalog.yaml" if case["gen"].get("overlay") else tmp_path / "generated"
            target = target.with_suffix(case["gen"].get("suffix", target.suffix))
            target.write_text(_generated(case), encoding="utf-8")
            file = str(target)
        else:
            gen = _generated(case)
    if case.get("overlay"):
        (home / "catalog.yaml").write_bytes((DATA / case["overlay"]).read_bytes())
    setup = case.get("setup")
    if setup in ("chat", "damaged_db", "truncated_db"):
        _setup_store(home, setup)
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(PYTHONPATH=str(REPO), BERTH_HOME=str(home), HF_HUB_OFFLINE="1", COLUMNS="100")
    if setup == "home_is_file":
        blocker = tmp_path / "home-file"
        blocker.write_text("not a folder\n", encoding="utf-8")
        env["BERTH_HOME"] = str(blocker)
    env.update({k: str(v) for k, v in case.get("env", {}).items()})
    values = {"file": file, "gen": gen, "home": str(home), "data": str(DATA)}
    args = [str(a).replace("{", "\0{") for a in case["args"]]
    return [_fill(a, values) for a in args], env


def _fill(arg: str, values: dict[str, str]) -> str:
    return re.sub(r"\0\{(\w+)\}", lambda m: values[m.group(1)], arg).replace("\0", "")


def _flat(text: str) -> str:
    return " ".join(text.split()).lower()


def _error_text(stderr: str) -> str:
    """The error paragraph(s): from the line starting 'Error' (or the whole stderr when there is none)."""
    start = stderr.find("Error")
    return stderr[start:] if start >= 0 else stderr


@pytest.mark.parametrize("case", _cases())
def test_bad_input(case: dict[str, Any], tmp_path: Path, berth_home: Path) -> None:
    args, env = _prepare(case, tmp_path, berth_home)
    proc = subprocess.run(
        [sys.executable, "-c", "from launcher.entry import main; main()", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=HANG_GUARD_S,
        preexec_fn=_limit_memory,
    )
    out, err = proc.stdout, proc.stderr
    shown = f"exit {proc.returncode}\n--- stdout\n{out[:3000]}\n--- stderr\n{err[:3000]}"
    assert "Traceback" not in out + err, shown
    expected = case["exit"] if isinstance(case["exit"], list) else [case["exit"]]
    assert proc.returncode in expected, shown
    stream = out if case.get("stream") == "stdout" else err
    assert _flat(case["message"]) in _flat(stream), shown
    if case.get("not_message"):
        assert _flat(case["not_message"]) not in _flat(out + err), shown
    if case.get("paragraphs") != "many":
        assert "\n\n" not in _error_text(err).strip(), shown
    if case.get("max_stderr"):
        assert len(err) <= case["max_stderr"], f"stderr is {len(err)} characters\n{shown}"
