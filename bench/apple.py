"""Berth's Apple silicon estimates against llama.cpp's published figures, printed (no timing here).

- llama.cpp with Metal, LLaMA-2 7B text generation at F16/Q8_0/Q4_0 on M1 to M4 Max and M2 Ultra
  (registry/corpus/apple.yaml, from ggml-org/llama.cpp discussion #4167) against
  launcher/plan/metal_speed.py's estimate: one line per figure, then the median and worst error.
- What `berth list --hardware m4-max,ram=128GB` plans for a few models (runtime, precision, tokens/s).

Run: .venv/bin/python -m bench.apple
"""

from __future__ import annotations

import statistics

import yaml

from bench._common import ROOT
from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.ladder import make_plan
from launcher.plan.metal_speed import LLAMACPP_METAL, metal_decode_tokens_per_s
from launcher.plan.request import Plan
from launcher.plan.unified import gguf_fit
from registry.catalog import load_catalog

MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-32B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
)


def corpus_lines() -> list[str]:
    catalog = load_catalog(overlay=False)
    data = yaml.safe_load((ROOT / "registry/corpus/apple.yaml").read_text(encoding="utf-8"))
    model = data["model"]
    lines, errors = [], []
    for row in data["rows"]:
        acc = catalog.accelerator(row["chip"])
        for quant, measured in row["tg"].items():
            estimate = metal_decode_tokens_per_s(
                model["file_bytes"][quant], model["layers"], acc.bandwidth_bytes_per_s
            )
            error = (estimate - measured) / measured
            errors.append(abs(error))
            lines.append(
                f"{acc.name:<15} {row['gpu_cores']:>3}-core {acc.bandwidth_bytes_per_s / 1e9:>6.1f} GB/s  "
                f"{quant:<5} measured {measured:>6.2f} tok/s  estimate {estimate:>6.2f}  {error:+.1%}"
            )
    lines.append(
        f"{LLAMACPP_METAL.engine}: decode {LLAMACPP_METAL.decode} of peak, "
        f"{LLAMACPP_METAL.layer_overhead_s * 1e6:.0f} µs per layer; {len(errors)} figures, "
        f"median error {statistics.median(errors):.1%}, worst {max(errors):.1%}"
    )
    return lines


def plan_lines(spec: str = "m4-max,ram=128GB") -> list[str]:
    catalog = load_catalog(overlay=False)
    host = parse_hardware_spec(spec, catalog)
    lines = [
        f"{spec}: GPU may use {host.gpus[0].total_bytes / 2**30:.0f} GiB of {host.ram_total_bytes / 2**30:.0f} GiB"
    ]
    for model_id in MODELS:
        card = catalog.get(model_id)
        result = make_plan(card, host, explain=False)
        if isinstance(result, Plan):
            lines.append(
                f"  {model_id}: {result.summary}, {result.speed.decode_tokens_per_s:.1f} tok/s (torch mps)"
            )
            continue
        fit = gguf_fit(card, host)
        how = fit.describe() if fit else "nothing fits"
        lines.append(f"  {model_id}: does not fit on mps; {how}")
    return lines


def main() -> None:
    for line in [*corpus_lines(), "", *plan_lines()]:
        print(line)


if __name__ == "__main__":
    main()
