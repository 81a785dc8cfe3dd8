"""Helpers the benchmark scripts share: the repository root, a token-timing streamer, atomic JSON writes.

Imported as `bench._common` (the scripts run from the repository root as `python -m bench.NAME`). Nothing
here imports torch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent

MiB = 2**20
GiB = 2**30


class TimingStreamer:
    """A generate() streamer that only records when each new token arrives (no decoding)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        now = time.perf_counter()
        self.times.extend([now] * int(value.numel()))

    def end(self) -> None:
        pass

    def figures(self, started: float) -> tuple[float | None, float | None, int]:
        """(time to first token since `started`, decode tokens/s after the first token, tokens seen)."""
        n = len(self.times)
        if not n:
            return None, None, 0
        first, last = self.times[0], self.times[-1]
        rate = (n - 1) / (last - first) if n > 1 and last > first else None
        return first - started, rate, n


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON through a .tmp file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(temp, path)
