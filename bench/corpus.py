"""Issue 15's bad-input corpus, timed: every case through the real CLI in a child process (500 MB address
space), with its wall time and peak RSS. Targets: every case clean (expected exit code, no traceback), each
within 5 s and 500 MB. The verdicts are tested in tests/test_bad_input_corpus.py; this prints the figures.

Run: .venv/bin/python -m bench.corpus
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.corpus_cases import CaseRun, load_cases, run_case

TARGET_S = 5.0
TARGET_BYTES = 500 * 2**20


def main() -> None:
    runs: list[tuple[str, bool, CaseRun]] = []
    for case in load_cases():
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch) / "home"
            home.mkdir()
            run = run_case(case, Path(scratch), home)
        expected = case["exit"] if isinstance(case["exit"], list) else [case["exit"]]
        clean = run.returncode in expected and "Traceback" not in run.stdout + run.stderr
        runs.append((case["name"], clean, run))
    slow = [name for name, _, run in runs if run.wall_s > TARGET_S]
    large = [name for name, _, run in runs if run.peak_rss_bytes > TARGET_BYTES]
    unclean = [name for name, clean, _ in runs if not clean]
    slowest = max(runs, key=lambda r: r[2].wall_s)
    largest = max(runs, key=lambda r: r[2].peak_rss_bytes)
    print(f"cases: {len(runs)}; clean (exit code as expected, no traceback): {len(runs) - len(unclean)}")
    print(
        f"slowest: {slowest[0]} {slowest[2].wall_s:.2f} s   target ≤ {TARGET_S:g} s; over it: {slow or 'none'}"
    )
    print(
        f"largest: {largest[0]} {largest[2].peak_rss_bytes / 2**20:.0f} MiB peak RSS   target ≤ 500 MB; "
        f"over it: {large or 'none'}"
    )
    if unclean:
        print(f"not clean: {', '.join(unclean)}")


if __name__ == "__main__":
    main()
