"""How `berth list` and catalog loading scale: a 10,000-model catalog, a 3,000-entry broken overlay and a
30,000-entry valid overlay, generated in a temporary folder from the shipped entries (new ids, no aliases).

Each figure is a `berth` process run as users run it (python -c 'from launcher.entry import main; main()'),
timed by wall clock and by the CPU seconds it used, since on a shared machine wall time includes waiting for a
core. Warm list runs (and llmfit) are repeated (--repeat, default 5) and print the median, with the fastest run
beside it: one run on a shared virtual machine varies by 10-20%. Python's bytecode is cached (in the run's temporary folder) as for an installed berth. "cold" runs with
an empty compiled-catalog cache, "warm" runs again with the cache the cold run wrote.
When llmfit is installed (on PATH, or in /tmp/llmfit-venv), its `fit --json` on its own database is timed in
the same run for comparison. Prints the figures; nothing is asserted.

`--baseline DIR` also times the list runs with the code of another checkout (e.g. a worktree of the commit
before a change), in the same run and on the same generated catalog; `--list-only` skips the validate runs and
the cold list runs.

    python -m bench.list [--models 10000] [--broken 3000] [--overlay 30000] [--baseline DIR] [--list-only]
                         [--repeat 5]

"this machine" lines list for the probed machine (no --hardware): the probe, and the measured speeds in berth's
store, are part of the run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench._common import ROOT

HARDWARE = ("cpu,ram=64GB", "rtx-4090,ram=64GB,disk=1TB")
LLMFIT_CANDIDATES = ("llmfit", "/tmp/llmfit-venv/bin/llmfit")


def _shipped() -> dict:
    return yaml.safe_load((ROOT / "catalog.yaml").read_text())


def _entries(count: int, broken: bool = False) -> list[dict]:
    models = _shipped()["models"]
    out = []
    for i in range(count):
        entry = copy.deepcopy(models[i % len(models)])
        entry["id"] = f"bench{i}/{entry['id'].split('/', 1)[1]}-{i}"
        entry["aliases"] = []
        if broken:
            entry["architecture"]["num_layers"] = 0
        out.append(entry)
    return out


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


#: Where the berth processes keep their compiled bytecode (set by main: a folder of the run's temporary one).
_PYCACHE: dict[str, str] = {}


def _berth(
    args: list[str], home: Path, extra_env: dict[str, str] | None = None, root: Path = ROOT
) -> tuple[float, float, int, str]:
    """(wall s, CPU s, exit code, last line of output) of one `berth ARGS` process (code from `root`).

    Its bytecode is cached as an installed package's is (pip compiles it), in the run's temporary folder
    rather than beside the sources, even where PYTHONDONTWRITEBYTECODE is set."""
    env = dict(os.environ, BERTH_HOME=str(home), PYTHONPATH=str(root), **_PYCACHE, **(extra_env or {}))
    env.pop("BERTH_HARDWARE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # From `root`: `python -c` puts the working folder first on sys.path, before PYTHONPATH.
    return _timed([sys.executable, "-c", "from launcher.entry import main; main()", *args], env, root)


def _timed(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return wall, cpu, proc.returncode, lines[-1][:100] if lines else ""


def _line(
    label: str, result: tuple[float, float, int, str], target: str = "", fastest: float | None = None
) -> None:
    wall, cpu, code, last = result
    goal = f"  (target {target})" if target else ""
    best = f"  fastest {fastest:.2f} s" if fastest is not None else ""
    print(f"{label:<58} {wall:7.2f} s wall {cpu:7.2f} s CPU  exit {code}{goal}{best}")
    if code not in (0, 2):
        print(f"    last line: {last}")


def _repeated(
    run: Callable[[], tuple[float, float, int, str]], times: int
) -> tuple[tuple[float, float, int, str], float]:
    """The median run of `times` (by wall time; CPU seconds of the same run) and the fastest wall time."""
    results = sorted((run() for _ in range(max(1, times))), key=lambda r: r[0])
    return results[len(results) // 2], results[0][0]


def _llmfit(times: int = 1) -> None:
    exe = next((c for c in LLMFIT_CANDIDATES if shutil.which(c) or Path(c).exists()), None)
    if exe is None:
        print("llmfit: not installed (pip install llmfit into a separate venv to compare)")
        return
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    result, fastest = _repeated(lambda: _timed([exe, "--ram", "64G", "fit", "--json"]), times)
    try:
        with tempfile.TemporaryFile("w+") as out:
            subprocess.run(
                [exe, "--ram", "64G", "fit", "--json"], stdout=out, stderr=subprocess.DEVNULL, check=False
            )
            out.seek(0)
            listed = len(json.load(out).get("models", []))
    except (ValueError, OSError):
        listed = -1
    _line(f"llmfit {version} --ram 64G fit --json ({listed:,} models listed)", result, fastest=fastest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--broken", type=int, default=3_000)
    parser.add_argument("--overlay", type=int, default=30_000)
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout to time beside this one"
    )
    parser.add_argument(
        "--list-only", action="store_true", help="skip the validate runs and the cold list runs"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs of each warm list (median printed)")
    args = parser.parse_args()
    shipped = _shipped()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="berth-bench-list-") as tmp:
        folder = Path(tmp)
        _PYCACHE["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        big = _write(
            folder / "catalog-big.yaml",
            {"schema_version": 1, "models": _entries(args.models), "accelerators": shipped["accelerators"]},
        )
        broken = _write(folder / "overlay-broken.yaml", {"models": _entries(args.broken, broken=True)})
        valid = _write(folder / "overlay-valid.yaml", {"models": _entries(args.overlay)})
        shipped_home, big_home, valid_home = folder / "h0", folder / "h1", folder / "h2"
        for home in (shipped_home, big_home, valid_home):
            home.mkdir()
        no_cache = {"BERTH_NO_CATALOG_CACHE": "1"}
        for root in (ROOT, *([args.baseline.resolve()] if args.baseline else [])):
            _berth(
                ["list", "--json", "--hardware", HARDWARE[0]], shipped_home, root=root
            )  # compiles bytecode
        for hw in HARDWARE:
            _line(
                f"list --json, shipped catalog, {hw}",
                _berth(["list", "--json", "--hardware", hw], shipped_home),
            )
        roots = [("", ROOT)] + ([("baseline ", args.baseline.resolve())] if args.baseline else [])
        written: set[Path] = set()
        for hw in HARDWARE:
            cmd = ["--catalog", str(big), "list", "--json", "--hardware", hw]
            for tag, root in roots:
                label = f"{tag}list --json, {args.models:,} models, {hw}"
                if not args.list_only:
                    _line(f"{label}, cold", _berth(cmd, big_home, no_cache, root), "1.0 s")
                if root not in written:
                    _berth(cmd, big_home, root=root)  # writes its compiled catalog (its code's own key)
                    written.add(root)
                warm, fastest = _repeated(lambda: _berth(cmd, big_home, root=root), args.repeat)  # noqa: B023
                _line(f"{label}, warm", warm, "1.0 s", fastest)
        probe_cmd = ["--catalog", str(big), "list", "--json"]
        warm, fastest = _repeated(lambda: _berth(probe_cmd, big_home), args.repeat)
        _line(f"list --json, {args.models:,} models, this machine, warm", warm, "1.0 s", fastest)
        if args.list_only:
            _llmfit(args.repeat)
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
            return
        _line(
            f"catalog validate, {args.broken:,} broken entries",
            _berth(["catalog", "validate", str(broken)], folder / "h0"),
            "2 s",
        )
        shutil.copy(valid, valid_home / "catalog.yaml")
        _line(
            f"catalog validate, {args.overlay:,}-entry valid overlay, cold",
            _berth(["catalog", "validate"], valid_home, no_cache),
            "3 s",
        )
        _berth(["catalog", "validate"], valid_home)
        _line(
            f"catalog validate, {args.overlay:,}-entry valid overlay, warm",
            _berth(["catalog", "validate"], valid_home),
            "3 s",
        )
        _line(
            f"list --json --search qwen3, {args.overlay:,}-entry overlay, warm",
            _berth(["list", "--json", "--search", "qwen3", "--hardware", HARDWARE[0]], valid_home),
            "3 s",
        )
    _llmfit(args.repeat)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
