"""Time from starting `berth tui` to an interactive Browse screen, in a pseudo-terminal.

The app is run with the hidden `--ready-file` option: once the Browse table is planned and drawn it writes
the file and exits. The figure is the time from spawning the process to the file appearing (interpreter
start, imports, catalog, probe, first paint, planning every model). Median of RUNS runs after a warm-up,
for this machine (probed) and for named hardware. Target: under 1 s. Run: .venv/bin/python -m bench.tui_startup
"""

from __future__ import annotations

import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TARGET_S = 1.0


def one_run(args: list[str], env: dict[str, str], ready: Path) -> float:
    """Seconds from spawn to the ready file (the app drawn and planned)."""
    ready.unlink(missing_ok=True)
    primary, secondary = pty.openpty()
    code = "import sys; sys.argv[0] = 'berth'; from launcher.entry import main; main()"
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--ready-file", str(ready)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    elapsed = None
    try:
        while process.poll() is None or elapsed is None:
            if elapsed is None and ready.exists() and ready.read_text().strip():
                elapsed = time.perf_counter() - start
            readable, _, _ = select.select([primary], [], [], 0.002)
            if readable:
                os.read(primary, 65536)
            if process.poll() is not None and elapsed is None:
                if ready.exists() and ready.read_text().strip():
                    elapsed = time.perf_counter() - start
                else:
                    raise RuntimeError(f"berth exited with {process.returncode} before it was ready")
        process.wait(timeout=10)
    finally:
        os.close(primary)
        os.close(secondary)
    return elapsed


def measure(label: str, args: list[str], env: dict[str, str], ready: Path) -> float:
    one_run(args, env, ready)  # warm-up: file system caches, bytecode
    times = [one_run(args, env, ready) for _ in range(RUNS)]
    median = statistics.median(times)
    verdict = "ok" if median < TARGET_S else "OVER TARGET"
    print(
        f"{label:<32} median {median * 1000:5.0f} ms  (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; "
        f"target < {TARGET_S * 1000:.0f} ms: {verdict})"
    )
    return median


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, BERTH_HOME=tmp, TERM=os.environ.get("TERM", "xterm-256color"))
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("BERTH_HARDWARE", None)
        ready = Path(tmp) / "ready"
        print(f"berth tui to an interactive Browse screen, {RUNS} runs each, {os.cpu_count()} CPUs")
        measure("this machine (probed)", ["tui"], env, ready)
        measure("named hardware (2xa100-80gb)", ["tui", "--hardware", "2xa100-80gb"], env, ready)


if __name__ == "__main__":
    main()
