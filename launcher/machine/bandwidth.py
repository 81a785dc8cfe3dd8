"""CPU memory bandwidth: measured only on request (a numpy copy), cached per CPU model in the data dir."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from launcher.machine.errors import ProbeError
from registry.userdirs import data_dir

CACHE_NAME = "cpu_bandwidth.json"
#: Bytes copied per round: larger than any last-level cache that matters (EPYC X3D parts aside).
MEASURE_BYTES = 256 * 2**20
MEASURE_ROUNDS = 5
#: Stop measuring rounds once this much time has gone (page-faulting the arrays in is most of it).
MEASURE_BUDGET_S = 1.5
MAX_THREADS = 16
METHOD = "numpy copy of 256 MiB split over threads, read+write bytes, best round"


def cache_path() -> Path:
    """Where measured bandwidths are kept (read at call time: BERTH_HOME / XDG_DATA_HOME apply)."""
    return data_dir() / CACHE_NAME


def cached_bandwidth(cpu_model: str, path: Path | None = None) -> tuple[int | None, str | None]:
    """The bandwidth measured earlier for this CPU model (bytes/s), and a warning if the cache is bad."""
    path = path or cache_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"cannot read the CPU bandwidth cache {path}: {error.strerror or error}"
    try:
        entry = json.loads(text)["cpus"].get(cpu_model)
        if entry is None:
            return None, None
        value = entry["bytes_per_s"]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, None
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None, f"ignored the CPU bandwidth cache {path}: not what Berth writes (berth probe --measure)"


def cached_linear_seconds(cpu_model: str, path: Path | None = None) -> dict[str, float]:
    """The dtype timings measured earlier for this CPU model (dtype -> seconds), or none."""
    path = path or cache_path()
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))["cpus"].get(cpu_model) or {}
        timings = entry.get("linear_seconds") or {}
        return {
            str(k): float(v)
            for k, v in timings.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_bandwidth(
    cpu_model: str,
    bytes_per_s: int,
    path: Path | None = None,
    linear_seconds: dict[str, float] | None = None,
) -> Path:
    """Record a measurement for this CPU model (and its dtype timings), keeping the others; returns the file."""
    path = path or cache_path()
    data: dict[str, Any] = {"version": 1, "cpus": {}}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(old, dict) and isinstance(old.get("cpus"), dict):
            data["cpus"] = old["cpus"]
    except (OSError, ValueError):
        pass
    data["cpus"][cpu_model] = {
        "bytes_per_s": int(bytes_per_s),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": METHOD,
    }
    if linear_seconds:
        data["cpus"][cpu_model]["linear_seconds"] = dict(linear_seconds)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        raise ProbeError(
            f"measured the CPU memory bandwidth but cannot save it to {path}: {error.strerror or error}",
            reading="cpu_bandwidth",
        ) from error
    return path


def measure_bandwidth(
    threads: int,
    size_bytes: int = MEASURE_BYTES,
    rounds: int = MEASURE_ROUNDS,
    budget_s: float = MEASURE_BUDGET_S,
) -> int:
    """Sustained copy bandwidth in bytes/s (bytes read plus bytes written), best of a few rounds."""
    from concurrent.futures import ThreadPoolExecutor  # here: only a measurement needs threads (and logging)

    try:
        import numpy as np
    except ImportError as error:
        raise ProbeError("measuring CPU memory bandwidth needs numpy", reading="cpu_bandwidth") from error
    threads = max(1, min(threads, MAX_THREADS))
    start = time.perf_counter()
    src = np.empty(size_bytes, dtype=np.uint8)
    dst = np.empty_like(src)
    pairs = list(zip(np.array_split(src, threads), np.array_split(dst, threads), strict=True))
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda pair: pair[0].fill(1), pairs))  # fault the source in, in parallel
        for done in range(rounds + 1):  # the first round faults the destination in and is not counted
            began = time.perf_counter()
            list(pool.map(lambda pair: np.copyto(pair[1], pair[0]), pairs))
            took = time.perf_counter() - began
            if done:
                best = min(best, took)
            if done and time.perf_counter() - start > budget_s:
                break
    if not best or best == float("inf"):
        raise ProbeError("the CPU bandwidth measurement took no measurable time", reading="cpu_bandwidth")
    return int(2 * size_bytes / best)
