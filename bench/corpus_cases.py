"""Issue 15's bad-input corpus (tests/data/bad_inputs/cases.yaml): each case's files and environment, and one
run of the real CLI in a child process limited to 500 MB of address space, with its wall time and peak RSS.
Shared by tests/test_bad_input_corpus.py (the verdicts) and bench/corpus.py (the time and memory figures).
Nothing here imports torch."""

from __future__ import annotations

import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "bad_inputs"
MEMORY_LIMIT_BYTES = 500 * 2**20
HANG_GUARD_S = 60
#: Variables a developer's shell may set that would change what a case means.
CLEARED = ("BERTH_HARDWARE", "BERTH_CATALOG", "BERTH_DEBUG", "XDG_CONFIG_HOME", "XDG_DATA_HOME")


def limit_memory() -> None:
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


def prepare(case: dict[str, Any], tmp_path: Path, home: Path) -> tuple[list[str], dict[str, str]]:
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


def flat(text: str) -> str:
    return " ".join(text.split()).lower()


def error_text(stderr: str) -> str:
    """The error paragraph(s): from the line starting 'Error' (or the whole stderr when there is none)."""
    start = stderr.find("Error")
    return stderr[start:] if start >= 0 else stderr


def load_cases() -> list[dict[str, Any]]:
    """Every case of the manifest, in file order."""
    manifest = yaml.safe_load((DATA / "cases.yaml").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = manifest["cases"]
    return cases


@dataclass(frozen=True)
class CaseRun:
    """What one case's child process did."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_bytes: int


def run_case(case: dict[str, Any], tmp_path: Path, home: Path) -> CaseRun:
    """Run `berth ARGS` for one case in a child under the memory limit and reap it with wait4, for its own
    peak RSS; a child still running after HANG_GUARD_S is killed (a hang, which the verdict then shows)."""
    args, env = prepare(case, tmp_path, home)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", "from launcher.entry import main; main()", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit_memory,
    )
    assert child.stdout is not None and child.stderr is not None
    streams = [_Drain(child.stdout), _Drain(child.stderr)]
    guard = threading.Timer(HANG_GUARD_S, child.kill)
    guard.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        guard.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    out, err = (drain.text() for drain in streams)
    return CaseRun(child.returncode, out, err, time.perf_counter() - started, usage.ru_maxrss * 1024)


class _Drain(threading.Thread):
    """Reads one pipe to its end (so a chatty child never blocks on a full pipe)."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = b""
        self.start()

    def run(self) -> None:
        self.data = self.pipe.read()
        self.pipe.close()

    def text(self) -> str:
        self.join()
        return self.data.decode("utf-8", errors="replace")
