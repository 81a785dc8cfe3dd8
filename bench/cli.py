"""Time `berth list --json` as a whole process: the real catalog, then generated catalogs of growing size.

Prints the median of 10 runs after a warm-up. Targets: under 0.3 s for the shipped catalog on the CI machine,
and growth no worse than linear in the number of models. Run: .venv/bin/python -m bench.cli
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNS = 10


def time_command(args: list[str], env: dict[str, str]) -> float:
    """Median wall time of RUNS runs after one warm-up."""
    subprocess.run(args, env=env, capture_output=True, check=True)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(args, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generated_catalog(size: int, path: Path) -> Path:
    """A catalog of `size` models copied from the shipped ones under new ids."""
    base = yaml.safe_load((ROOT / "catalog.yaml").read_text())
    models = base["models"]
    out = []
    for i in range(size):
        entry = dict(models[i % len(models)])
        entry["id"] = f"bench/model-{i}"
        entry["aliases"] = []
        out.append(entry)
    path.write_text(yaml.safe_dump({"models": out, "accelerators": base["accelerators"]}, sort_keys=False))
    return path


def main() -> None:
    berth = [str(Path(sys.executable).parent / "berth")]
    env = dict(os.environ, BERTH_HARDWARE="rtx-4090,ram=64GB")
    with tempfile.TemporaryDirectory() as tmp:
        env["BERTH_HOME"] = tmp
        real = time_command([*berth, "list", "--json"], env)
        print(f"berth list --json, shipped catalog: median {real * 1000:.0f} ms (target < 300 ms)")
        previous = None
        for size in (100, 1000, 10_000):
            path = generated_catalog(size, Path(tmp) / f"catalog-{size}.yaml")
            seconds = time_command([*berth, "--catalog", str(path), "list", "--json"], env)
            per_model = seconds / size * 1e3
            growth = f", x{seconds / previous:.1f} for x10 models" if previous else ""
            print(
                f"berth list --json, {size:>6} models: median {seconds:.2f} s ({per_model:.2f} ms/model{growth})"
            )
            previous = seconds


if __name__ == "__main__":
    main()
