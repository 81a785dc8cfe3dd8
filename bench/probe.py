"""Time the probe and the catalog load: the figures the tests once asserted on the clock, printed instead.

- `probe_host` (NVML, psutil, /proc; no measurement): median of 20 in-process runs, target under 50 ms.
- `berth probe --measure` (the one-off CPU memory bandwidth copy, cached afterwards): one run, target under 2 s.
- `load_catalog(overlay=False)` of the shipped catalog: median of 20 runs, target under 0.1 s (it is part of
  every `berth list`, which is held to 0.3 s by bench/cli.py).

Run: .venv/bin/python -m bench.probe
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable

from launcher.machine.probe import probe_host
from registry.catalog import load_catalog

RUNS = 20


def median_seconds(run: Callable[[], object], runs: int = RUNS) -> float:
    """Median wall time of `runs` calls after one warm-up."""
    run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    catalog = load_catalog(overlay=False)
    probe = median_seconds(lambda: probe_host(catalog))
    print(f"probe_host (no measurement), median of {RUNS}: {probe * 1000:.1f} ms   target < 50 ms")
    with tempfile.TemporaryDirectory() as home:
        os.environ["BERTH_HOME"] = home  # a fresh cache: the measurement really runs
        start = time.perf_counter()
        host = probe_host(catalog, measure=True)
        measured = time.perf_counter() - start
    bandwidth = host.cpu.memory_bandwidth_bytes_per_s / 1e9
    print(f"probe --measure, one run: {measured:.2f} s ({bandwidth:.1f} GB/s measured)   target < 2 s")
    load = median_seconds(lambda: load_catalog(overlay=False))
    print(f"load_catalog (shipped, no overlay), median of {RUNS}: {load * 1000:.1f} ms   target < 100 ms")


if __name__ == "__main__":
    main()
