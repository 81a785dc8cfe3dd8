"""Berth's speed estimates against published measurements: every row of registry/corpus/decode.yaml, the
estimate for the same model, GPUs, dtype, runtime and prompt, and the error. Targets (issue 11): median error
<= 25%, none off by more than 2x. tests/test_predictions_corpus.py checks the same rows; this prints them.

Run: .venv/bin/python -m bench.predictions
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from bench._common import print_table, relative_error, rows_in_catalog
from launcher.machine.hwspec import resolve_host
from launcher.plan.errors import DoesNotFitError
from launcher.plan.ladder import plan_or_raise
from launcher.plan.request import PlanRequest
from launcher.plan.speed import VLLM_CUDA_GRAPHS, compute_seconds, vllm_decode_seconds
from registry.catalog import Catalog, load_catalog
from registry.memory import Precision, active_weight_bytes, kv_cache_bytes
from registry.params import layout
from registry.schema import Dtype

CORPUS = Path(__file__).resolve().parent.parent / "registry" / "corpus" / "decode.yaml"
TARGET_MEDIAN = 0.25
TARGET_WORST = 2.0


@dataclass(frozen=True)
class DecodeRow:
    """One published batch-1 decode measurement."""

    model: str
    accelerator: str
    gpus: int
    dtype: Dtype
    runtime: str
    input_tokens: int
    output_tokens: int
    tokens_per_s: float
    speed_includes_prefill: bool
    bound: float
    source: str
    quote: str
    note: str = ""

    @property
    def mean_context(self) -> int:
        """Tokens in the cache halfway through the timed generation."""
        return self.input_tokens + self.output_tokens // 2


def load_rows(path: Path = CORPUS) -> list[DecodeRow]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [DecodeRow(**row) for row in data["rows"]]


def _transformers(row: DecodeRow, catalog: Catalog) -> tuple[float, float]:
    """(decode tokens/s, time to first token) of Berth's plan for this row on its GPUs."""
    host = resolve_host(f"{row.gpus}x{row.accelerator}", catalog, {})
    request = PlanRequest(
        context=row.mean_context,
        dtype=row.dtype,
        quant="none",
        device="gpu",
        allow_offload=False,
        prompt_tokens=max(row.input_tokens, 1),
    )
    try:
        plan = plan_or_raise(catalog.get(row.model), host, request)
    except DoesNotFitError:
        # Memory is checked by its own corpus; here only speed matters: give the GPUs room for Berth's estimate.
        roomy = tuple(replace(g, total_bytes=g.total_bytes * 5 // 4, free_bytes=None) for g in host.gpus)
        plan = plan_or_raise(catalog.get(row.model), replace(host, gpus=roomy), request)
    return plan.speed.decode_tokens_per_s, plan.speed.time_to_first_token_s


def _vllm(row: DecodeRow, catalog: Catalog) -> tuple[float, float]:
    """(decode tokens/s, time to first token) of a tensor-parallel vLLM replica over the row's GPUs."""
    card = catalog.get(row.model)
    acc = catalog.accelerator(row.accelerator)
    precision = Precision(row.dtype)
    weights = active_weight_bytes(card, precision) / row.gpus
    kv = kv_cache_bytes(card, row.mean_context, 1, row.dtype) / row.gpus
    step = vllm_decode_seconds(
        weights, kv, card.architecture.num_layers, acc.bandwidth_bytes_per_s, row.gpus, VLLM_CUDA_GRAPHS
    )
    active = sum(b.active for b in layout(card).blocks)
    ttft = compute_seconds(
        2 * active * row.input_tokens, acc.bf16_tflops * 1e12, VLLM_CUDA_GRAPHS.gpu_prefill, devices=row.gpus
    )
    return 1 / step, ttft


def estimate(row: DecodeRow, catalog: Catalog) -> float:
    """Berth's figure comparable to the row's: decode tokens/s, or output / (prefill + decode) time when the
    published figure timed the whole call."""
    decode, ttft = (_vllm if row.runtime == "vllm" else _transformers)(row, catalog)
    if not row.speed_includes_prefill:
        return decode
    return row.output_tokens / (ttft + row.output_tokens / decode)


def ratio(estimated: float, measured: float) -> float:
    """How many times off, whichever way (>= 1)."""
    return max(estimated / measured, measured / estimated)


@dataclass(frozen=True)
class Summary:
    rows: int
    median_error: float
    p90_error: float
    worst_ratio: float


def summarize(pairs: Sequence[tuple[DecodeRow, float]]) -> Summary:
    errors = sorted(relative_error(est, row.tokens_per_s) for row, est in pairs)
    p90 = errors[min(len(errors) - 1, round(0.9 * (len(errors) - 1)))]
    worst = max(ratio(est, row.tokens_per_s) for row, est in pairs)
    return Summary(len(errors), statistics.median(errors), p90, worst)


def evaluate(catalog: Catalog | None = None, path: Path = CORPUS) -> list[tuple[DecodeRow, float]]:
    """Every row the catalog can describe, with Berth's estimate."""
    catalog = catalog or load_catalog(overlay=False)
    return [(row, estimate(row, catalog)) for row in rows_in_catalog(load_rows(path), catalog)]


def _line(row: DecodeRow, est: float) -> str:
    err = (est - row.tokens_per_s) / row.tokens_per_s
    gpu = f"{row.gpus}x{row.accelerator}"
    name = row.model.split("/")[-1][:28]
    return (
        f"{name:<28} {gpu:<12} {row.runtime:<12} {row.input_tokens:>7} {row.tokens_per_s:>9.2f} "
        f"{est:>9.2f} {err:>+7.1%}"
    )


def main() -> None:
    pairs = evaluate()
    skipped = len(load_rows()) - len(pairs)
    header = (
        f"{'model':<28} {'GPU':<12} {'runtime':<12} {'prompt':>7} {'measured':>9} {'berth':>9} {'error':>7}"
    )
    print_table(header, (_line(row, est) for row, est in pairs), skipped)
    s = summarize(pairs)
    for runtime in sorted({r.runtime for r, _ in pairs}):
        part = summarize([p for p in pairs if p[0].runtime == runtime])
        print(
            f"{runtime}: {part.rows} rows, median error {part.median_error:.1%}, "
            f"90th percentile {part.p90_error:.1%}, worst {part.worst_ratio:.2f}x"
        )
    print(
        f"all: {s.rows} rows, median error {s.median_error:.1%} (target <= {TARGET_MEDIAN:.0%}), 90th percentile "
        f"{s.p90_error:.1%}, worst {s.worst_ratio:.2f}x off (target <= {TARGET_WORST:.0f}x)"
    )


if __name__ == "__main__":
    main()
