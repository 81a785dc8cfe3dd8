"""vLLM KV-cache capacity: Berth's per-GPU budget against vLLM's own startup logs (registry/corpus/vllm_kv.yaml).

Every row whose model the catalog has is sized by launcher.fleet.sizing.size_replica, the function
`berth fleet plan` sizes replicas with, at the row's GPU, tensor-parallel size, gpu_memory_utilization,
max_model_len and block size; the table compares weights, activation peak and available KV memory per GPU
and the KV tokens. Targets (issue 11): KV tokens median error <= 5%, worst <= 15%. The verdict is tested in
tests/test_vllm_kv_corpus.py; this prints the figures.

Run: .venv/bin/python -m bench.kv_capacity
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from launcher.fleet.sizing import Load, model_weights, native_fleet_quant, size_replica
from launcher.fleet.types import EngineSettings, NodeGroup, ReplicaEstimate, Shape
from registry.catalog import Catalog, load_catalog
from registry.errors import BerthError
from registry.memory import CacheLayout, kv_bytes_per_token_per_layer

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "registry" / "corpus" / "vllm_kv.yaml"
CATALOG = ROOT / "catalog.yaml"
GIB = 2**30
MEDIAN_TARGET = 0.05
WORST_TARGET = 0.15


@dataclass(frozen=True)
class KvRow:
    """One corpus row against Berth's estimate for it (None where the catalog lacks the model)."""

    row: dict[str, Any]
    reference_tokens: int
    estimate: ReplicaEstimate | None

    @property
    def error(self) -> float:
        """Relative error of the estimated KV tokens against vLLM's."""
        assert self.estimate is not None
        return self.estimate.kv_cache_tokens / self.reference_tokens - 1.0


def load_rows(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The corpus rows, as written."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data["rows"])


def _reference_tokens(row: dict[str, Any], per_token: int) -> int:
    """The quoted token count, else vLLM's arithmetic on the quoted available memory: whole blocks."""
    if row.get("kv_tokens"):
        return int(row["kv_tokens"])
    block = int(row["block_size"])
    available = int(float(row["available_kv_gib"]) * GIB)
    return available // (per_token * block) * block


def evaluate_row(row: dict[str, Any], catalog: Catalog) -> KvRow | None:
    """Size the row's replica the way `berth fleet plan` does; None when the catalog lacks the model."""
    try:
        card = catalog.get(row["model"])
    except BerthError:
        return None
    if card.id != row["model"]:
        return None
    tp = int(row.get("tensor_parallel_size", 1))
    acc = catalog.accelerator(row["accelerator"])
    group = NodeGroup("corpus", acc, tp, 1, 10**13, 64, acc.interconnect == "nvlink")
    engine = EngineSettings(
        gpu_memory_utilization=float(row["gpu_memory_utilization"]),
        block_size=int(row["block_size"]),
        block_size_set=True,
        max_num_seqs=row.get("max_num_seqs"),
        max_num_batched_tokens=row.get("max_num_batched_tokens"),
    )
    weights = model_weights(card, row["dtype"], row.get("quantization") or native_fleet_quant(card))
    estimate = size_replica(
        weights, Shape(tp, 1), group, Load(context=int(row["max_model_len"])), engine
    ).estimate
    vllm = CacheLayout(tensor_parallel=tp, runtime="vllm")
    per_token = (
        kv_bytes_per_token_per_layer(card.architecture, row["dtype"], vllm) * card.architecture.num_layers
    )
    return KvRow(row, _reference_tokens(row, per_token), estimate)


def evaluate(catalog: Catalog | None = None, path: Path = CORPUS) -> tuple[list[KvRow], list[dict[str, Any]]]:
    """(checked rows, rows skipped because the catalog lacks their model)."""
    catalog = catalog or load_catalog(CATALOG, overlay=False)
    checked: list[KvRow] = []
    skipped: list[dict[str, Any]] = []
    for row in load_rows(path):
        result = evaluate_row(row, catalog)
        if result is None:
            skipped.append(row)
        else:
            checked.append(result)
    return checked, skipped


def _logged(row: dict[str, Any], key: str, width: int) -> str:
    """A logged GiB figure, or a dash where the source did not give it."""
    value = row.get(key)
    return f"{float(value):{width}.2f}" if value is not None else f"{'-':>{width}}"


def _line(r: KvRow) -> str:
    est = r.estimate
    assert est is not None
    row = r.row
    return (
        f"{row['model'][:34]:34} {row['accelerator']:9} tp{row.get('tensor_parallel_size', 1)} "
        f"{row['max_model_len']:>6} {_logged(row, 'weights_gib', 6)} {est.weights_bytes_per_rank / GIB:6.2f} "
        f"{_logged(row, 'activation_gib', 5)} {est.activation_bytes_per_rank / GIB:5.2f} "
        f"{float(row['available_kv_gib']):6.2f} {est.kv_cache_bytes_per_rank / GIB:6.2f} "
        f"{r.reference_tokens:>9,} {est.kv_cache_tokens:>9,} {r.error:+7.1%}"
    )


def main() -> None:
    checked, skipped = evaluate()
    print("vLLM KV capacity per GPU: vLLM's startup log (log) against Berth's fleet sizing (est); GiB")
    print(
        f"{'model':34} {'gpu':9} tp  {'ctx':>6} {'W log':>6} {'W est':>6} {'A log':>5} {'A est':>5} "
        f"{'KV log':>6} {'KV est':>6} {'tok log':>9} {'tok est':>9} {'error':>7}"
    )
    for r in checked:
        print(_line(r))
    errors = [abs(r.error) for r in checked]
    if errors:
        median, worst = statistics.median(errors), max(errors)
        print(
            f"rows {len(checked)}; KV tokens |error| median {median:.1%} (target <= {MEDIAN_TARGET:.0%}), "
            f"worst {worst:.1%} (target <= {WORST_TARGET:.0%})"
        )
    for row in skipped:
        print(f"skipped (not in catalog.yaml yet): {row['model']} tp{row.get('tensor_parallel_size', 1)}")


if __name__ == "__main__":
    main()
