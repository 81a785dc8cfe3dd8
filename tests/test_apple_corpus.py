"""Berth's llama.cpp-on-Metal decode estimate against llama.cpp's published Apple silicon figures
(registry/corpus/apple.yaml, from ggml-org/llama.cpp discussion #4167), and the MPS rung against them."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.ladder import plan_or_raise
from launcher.plan.metal_speed import metal_decode_tokens_per_s
from registry.catalog import Catalog

CORPUS = Path(__file__).parents[1] / "registry" / "corpus" / "apple.yaml"
#: Largest and median relative error allowed between estimate and measurement.
MAX_ERROR = 0.10
MEDIAN_ERROR = 0.05


def corpus() -> dict[str, Any]:
    return yaml.safe_load(CORPUS.read_text(encoding="utf-8"))


def measurements(catalog: Catalog) -> list[tuple[str, str, float, float]]:
    """(chip, quant, measured tokens/s, Berth's estimate) for every figure of the corpus."""
    data = corpus()
    model = data["model"]
    out = []
    for row in data["rows"]:
        bandwidth = catalog.accelerator(row["chip"]).bandwidth_bytes_per_s
        for quant, measured in row["tg"].items():
            estimate = metal_decode_tokens_per_s(model["file_bytes"][quant], model["layers"], bandwidth)
            out.append((row["chip"], quant, measured, estimate))
    return out


def test_the_corpus_names_chips_berth_knows(catalog: Catalog):
    chips = {row["chip"] for row in corpus()["rows"]}
    assert chips == {"m1", "m2", "m4", "m3-pro", "m2-pro", "m4-pro", "m2-max", "m4-max", "m2-ultra"}
    assert all(catalog.accelerator(c).vendor == "apple" for c in chips)


def test_llamacpp_metal_estimates_match_the_published_figures(catalog: Catalog):
    rows = measurements(catalog)
    assert len(rows) == 31
    errors = {(chip, quant, measured): abs(est - measured) / measured for chip, quant, measured, est in rows}
    worst = max(errors, key=lambda k: errors[k])
    assert errors[worst] <= MAX_ERROR, f"{worst}: off by {errors[worst]:.0%}"
    assert statistics.median(errors.values()) <= MEDIAN_ERROR


def test_estimates_follow_bandwidth_not_gpu_cores(catalog: Catalog):
    """M2 Ultra 60- and 76-core GPUs share 800 GB/s: same estimate; measured Q4_0 differs by 6% only."""
    rows = [r for r in corpus()["rows"] if r["chip"] == "m2-ultra" and "build" not in r]
    assert [r["gpu_cores"] for r in rows] == [60, 76]
    assert abs(rows[0]["tg"]["Q4_0"] / rows[1]["tg"]["Q4_0"] - 1) < 0.07
    estimates = {(c, q, m): e for c, q, m, e in measurements(catalog) if c == "m2-ultra"}
    assert estimates[("m2-ultra", "Q4_0", 88.64)] == estimates[("m2-ultra", "Q4_0", 94.27)]


@pytest.mark.parametrize("chip", ["m2", "m2-pro", "m2-max", "m4-max", "m2-ultra"])
def test_torch_mps_is_not_planned_faster_than_llamacpp_f16(catalog: Catalog, chip: str):
    """The MPS rung (transformers, fp16/bf16) cannot beat llama.cpp's F16 Metal kernels on the same chip: its
    estimate for a 7B model stays below llama.cpp's measured F16 speed (scaled to the model's size)."""
    data = corpus()
    measured = next(r["tg"]["F16"] for r in data["rows"] if r["chip"] == chip)
    card = catalog.get("meta-llama/Llama-2-7b-hf")
    plan = plan_or_raise(card, parse_hardware_spec(f"{chip},ram=64GB", catalog))
    assert plan.device_map == {"": "mps"}
    scaled = measured * data["model"]["params"] / card.params
    assert plan.speed.decode_tokens_per_s <= scaled * 1.05
