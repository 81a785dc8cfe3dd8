"""Berth's memory figures against published peak GPU memory of batch-1 transformers generation: every row of
registry/corpus/peak_memory.yaml, Berth's figure for the same model, dtype, prompt and generated tokens, and the
error. Target (issue 11): median error <= 10%. tests/test_peak_memory_corpus.py checks the same rows.

The published figures are torch.cuda.max_memory_allocated (live tensors), so Berth's comparable figure is the
per-GPU memory launcher/plan/placement.py charges a single GPU less the parts that allocator never reports (the
CUDA runtime floor and the driver's reserve): weights + KV cache at prompt + generated tokens + the prefill's
activations at the prompt + allocator slack. Rows measured as the memory live after generation (the Qwen3
table, see the corpus header) leave the prefill's activations out.

Run: .venv/bin/python -m bench.peak_memory
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench._common import print_table, relative_error, rows_in_catalog
from registry.catalog import Catalog, load_catalog
from registry.memory import ALLOCATOR_SLACK, Precision, activation_bytes, kv_cache_bytes, weight_bytes
from registry.schema import Dtype

CORPUS = Path(__file__).resolve().parent.parent / "registry" / "corpus" / "peak_memory.yaml"
TARGET_MEDIAN = 0.10
UNIT_BYTES = {"GiB": 2**30, "MiB": 2**20}


@dataclass(frozen=True)
class PeakRow:
    """One published peak-memory measurement."""

    model: str
    accelerator: str
    gpus: int
    dtype: Dtype
    runtime: str
    input_tokens: int
    output_tokens: int
    peak: float
    unit: str
    measured_as: str
    """max_memory_allocated (the call's peak) or end_of_generation (what is live once generate returns)."""
    bound: float
    source: str
    quote: str

    @property
    def peak_bytes(self) -> int:
        """The published figure in bytes."""
        return int(self.peak * UNIT_BYTES[self.unit])


def load_rows(path: Path = CORPUS) -> list[PeakRow]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [PeakRow(**row) for row in data["rows"]]


def allocated_peak_bytes(row: PeakRow, catalog: Catalog) -> int:
    """Berth's figure comparable to torch.cuda.max_memory_allocated for this row's generate call."""
    card = catalog.get(row.model)
    acts = activation_bytes(card, row.input_tokens, 1, row.dtype, "cuda")
    return resident_bytes(row, catalog) + acts


def resident_bytes(row: PeakRow, catalog: Catalog) -> int:
    """What stays allocated once generation ends: weights, the full KV cache and allocator slack."""
    card = catalog.get(row.model)
    weights = weight_bytes(card, Precision(row.dtype))
    cache = kv_cache_bytes(card, row.input_tokens + row.output_tokens, 1, row.dtype)
    return weights + cache + slack_bytes(row, catalog)


def slack_bytes(row: PeakRow, catalog: Catalog) -> int:
    """The ALLOCATOR_SLACK share of the figure (fragmentation headroom the planner adds)."""
    card = catalog.get(row.model)
    weights = weight_bytes(card, Precision(row.dtype))
    cache = kv_cache_bytes(card, row.input_tokens + row.output_tokens, 1, row.dtype)
    return int((weights + cache) * ALLOCATOR_SLACK)


def berth_bytes(row: PeakRow, catalog: Catalog) -> int:
    """Berth's figure for what the row measured."""
    if row.measured_as == "end_of_generation":
        return resident_bytes(row, catalog)
    return allocated_peak_bytes(row, catalog)


@dataclass(frozen=True)
class Summary:
    rows: int
    median_error: float
    worst_error: float


def summarize(pairs: Sequence[tuple[PeakRow, int]]) -> Summary:
    errors = [relative_error(est, row.peak_bytes) for row, est in pairs]
    return Summary(len(errors), statistics.median(errors), max(errors))


def evaluate(catalog: Catalog | None = None, path: Path = CORPUS) -> list[tuple[PeakRow, int]]:
    """Every row the catalog can describe, with Berth's figure in bytes."""
    catalog = catalog or load_catalog(overlay=False)
    return [(row, berth_bytes(row, catalog)) for row in rows_in_catalog(load_rows(path), catalog)]


def main() -> None:
    catalog = load_catalog(overlay=False)
    pairs = evaluate(catalog)
    skipped = len(load_rows()) - len(pairs)
    gib = 2**30
    header = f"{'model':<24} {'GPU':<11} {'prompt':>7} {'new':>5} {'measured':>9} {'berth':>9} {'error':>7} {'bound':>6}"
    print_table(
        header,
        (
            f"{row.model.split('/')[-1][:24]:<24} {row.accelerator:<11} {row.input_tokens:>7} "
            f"{row.output_tokens:>5} {row.peak_bytes / gib:>5.2f}GiB {est / gib:>5.2f}GiB "
            f"{(est - row.peak_bytes) / row.peak_bytes:>+7.1%} {row.bound:>6.0%}"
            for row, est in pairs
        ),
        skipped,
    )
    for gpu in sorted({r.accelerator for r, _ in pairs}):
        part = summarize([p for p in pairs if p[0].accelerator == gpu])
        print(f"{gpu}: {part.rows} rows, median error {part.median_error:.1%}, worst {part.worst_error:.1%}")
    inferred = [
        (r, allocated_peak_bytes(r, catalog)) for r, _ in pairs if r.measured_as == "end_of_generation"
    ]
    if inferred:
        part = summarize(inferred)
        under = sum(est < r.peak_bytes for r, est in inferred)
        print(
            f"(the {part.rows} end_of_generation rows against Berth's full prefill peak instead: median error "
            f"{part.median_error:.1%}, worst {part.worst_error:.1%}, {under} below the published figure)"
        )
    live = [(r, est - slack_bytes(r, catalog)) for r, est in pairs]
    signed = sorted((est - r.peak_bytes) / r.peak_bytes for r, est in live)
    print(
        f"(live tensors only, without ALLOCATOR_SLACK, which max_memory_allocated never sees: median "
        f"{statistics.median(signed):+.1%}, range {signed[0]:+.1%} to {signed[-1]:+.1%})"
    )
    s = summarize(pairs)
    print(
        f"all: {s.rows} rows, median error {s.median_error:.1%} (target <= {TARGET_MEDIAN:.0%}), "
        f"worst {s.worst_error:.1%}"
    )


if __name__ == "__main__":
    main()
