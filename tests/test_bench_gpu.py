"""bench/gpu (`python -m bench.gpu`), the one-shot GPU benchmark: its --tiny run end to end on the CPU (so the script keeps working
between GPU sessions), and its pure helpers (steps, budget, summaries) on a real plan for an H100 with made-up
readings (the GPU half of the report is otherwise only exercised on a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu.cli import parse_settings
from bench.gpu.compare import DECODE, QUANT_FACTORS, case_summary, constants_in_use, implied_constants
from bench.gpu.measure import estimate_record, plan_record
from bench.gpu.report import markdown
from bench.gpu.runner import safe_name
from bench.gpu.steps import MODELS, Settings, plan_steps, should_run, tiny_card
from launcher.plan.advice import named_host
from launcher.plan.ladder import plan_or_raise
from launcher.plan.request import PlanRequest
from launcher.plan.speed import TRANSFORMERS_BATCH1, VLLM_BATCHED
from launcher.run.measure import estimated_devices
from registry.catalog import load_catalog
from registry.memory import CUDA_RUNTIME_BYTES
from registry.schema import ModelCard

ROOT = Path(__file__).resolve().parent.parent
GiB = 2**30


def _settings(tmp_path: Path, *args: str) -> Settings:
    settings, _ = parse_settings(["--work-dir", str(tmp_path), "--out", str(tmp_path / "out"), *args])
    return settings


def _cards(tiny: bool = False) -> dict[str, ModelCard]:
    catalog = load_catalog(overlay=False)
    cards = {key: catalog.get(model_id) for key, model_id, _ in MODELS}
    if tiny:
        cards = {key: tiny_card(cards[key], overrides) for key, _, overrides in MODELS}
    return cards


def test_steps_on_a_gpu_keep_time_for_the_comparison(tmp_path):
    settings = _settings(tmp_path)
    steps, notes = plan_steps(settings, _cards(), can_quantize=True, quant_note="")
    assert notes == []
    names = [s.name for s in steps]
    assert names == [
        "danube-build", "danube-bf16", "danube-int8", "danube-nf4", "danube-cleanup",
        "mistral-build", "mistral-bf16", "mistral-int8", "mistral-nf4", "mistral-cleanup",
        "qwen14-build", "qwen14-berth-auto", "qwen14-pipeline", "qwen14-berth-no-quant", "qwen14-cleanup",
    ]  # fmt: skip
    by_name = {s.name: s for s in steps}
    assert not by_name["mistral-int8"].must and by_name["qwen14-pipeline"].must
    assert by_name["qwen14-pipeline"].spec.max_memory == {"0": 20 * GiB, "cpu": 64 * GiB}
    assert by_name["qwen14-berth-auto"].spec.quant is None  # Berth chooses
    assert by_name["mistral-bf16"].spec.quant == "none"
    # An optional case runs only if the later must-run cases still fit after it.
    i = names.index("mistral-int8")
    later_must = sum(s.expect_s for s in steps[i + 1 :] if s.must)
    step = steps[i]
    assert should_run(step, steps[i + 1 :], 0.0, step.expect_s + later_must)
    assert not should_run(step, steps[i + 1 :], 1.0, step.expect_s + later_must)
    assert should_run(by_name["qwen14-pipeline"], [], 0.0, by_name["qwen14-pipeline"].expect_s)


def test_without_bitsandbytes_the_quantized_cases_are_noted_not_run(tmp_path):
    settings = _settings(tmp_path, "--models", "danube")
    steps, notes = plan_steps(settings, _cards(), can_quantize=False, quant_note="no bitsandbytes")
    assert [s.name for s in steps] == ["danube-build", "danube-bf16", "danube-cleanup"]
    assert notes == ["danube-int8 skipped: no bitsandbytes", "danube-nf4 skipped: no bitsandbytes"]


def test_tiny_cards_keep_the_family_and_shrink():
    catalog = load_catalog(overlay=False)
    for _key, model_id, overrides in MODELS:
        card = catalog.get(model_id)
        tiny = tiny_card(card, overrides)
        assert tiny.model_type == card.model_type and tiny.id == card.id
        assert tiny.architecture.num_layers <= 4 and tiny.params < 10**6


def test_safe_file_names():
    assert safe_name("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"
    assert safe_name("NVIDIA A100-SXM4-80GB (MIG 3g.40gb)") == "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb"


def test_gpu_summary_markdown_and_implied_constants():
    """A Berth bf16 and int8 case of Mistral on an H100 plan, with readings 10% above the estimates."""
    catalog = load_catalog(overlay=False)
    card = catalog.get("mistralai/Mistral-7B-v0.1")
    host = named_host(catalog.accelerator("h100"), 1)
    cases = []
    for name, request in (
        ("mistral-bf16", PlanRequest(context=2304, prompt_tokens=2048, quant="none")),
        ("mistral-int8", PlanRequest(context=2304, prompt_tokens=2048, quant="int8")),
    ):
        plan = plan_or_raise(card, host, request)
        estimate = estimate_record(card, plan)
        estimate["at_tokens_excl_runtime"] = estimated_devices(card, plan, 2304)
        weights = estimate["placements"][0]["weights_bytes"]
        at = estimate["at_tokens_excl_runtime"]["cuda:0"]
        runtime = 600 * 2**20
        cases.append(
            {
                "name": name,
                "mode": "berth",
                "status": "ok",
                "plan": plan_record(plan),
                "estimate": estimate,
                "load": {
                    "seconds": 9.0,
                    "torch": {
                        "cuda:0": {
                            "allocated": weights,
                            "max_allocated": weights,
                            "reserved": weights,
                            "max_reserved": weights,
                        }
                    },
                    "nvml_used_delta": {"cuda:0": weights + runtime},
                },
                "generate": {
                    "new_tokens": 256,
                    "tokens_per_s": plan.speed.decode_tokens_per_s / 2,
                    "time_to_first_token_s": plan.speed.time_to_first_token_s * 2,
                    "torch": {
                        "cuda:0": {
                            "allocated": weights,
                            "max_allocated": at,
                            "reserved": at,
                            "max_reserved": int(at * 1.1),
                        }
                    },
                    "nvml_used_delta": {"cuda:0": int(at * 1.1) + runtime},
                },
            }
        )
    cases.append(
        {
            "name": "qwen14-pipeline",
            "mode": "pipeline",
            "status": "ok",
            "pipeline": {"summary": "pipeline bf16 auto: 0×30, cpu×21"},
            "load": {"seconds": 20.0, "torch": {"cuda:0": {"allocated": 5, "reserved": 6}}},
            "generate": {
                "new_tokens": 16,
                "tokens_per_s": 0.8,
                "time_to_first_token_s": 3.0,
                "torch": {"cuda:0": {"max_reserved": 7, "max_allocated": 6}},
            },
        }
    )
    rows = [case_summary(c, CUDA_RUNTIME_BYTES) for c in cases]
    load = rows[0]["devices"]["cuda:0"]["after_load"]
    assert load["error_weights_vs_allocated"] == 0
    assert load["nvml_minus_reserved"] == 600 * 2**20
    gen = rows[0]["devices"]["cuda:0"]["after_generate"]
    assert gen["error_vs_torch_max_reserved"] == pytest.approx(1 / 1.1 - 1, abs=1e-6)
    # The plan's figures are `berth plan --json`'s, speeds rounded to 3 decimals.
    assert rows[0]["decode_tokens_per_s"]["error"] == pytest.approx(1.0, rel=1e-4)
    assert rows[2]["devices"]["cuda:0"]["after_generate"]["torch_max_reserved"] == 7
    assert rows[2]["decode_tokens_per_s"] == {"estimated": None, "measured": 0.8, "error": None}

    constants = constants_in_use()
    assert constants["registry.memory"]["CUDA_RUNTIME_BYTES"] == CUDA_RUNTIME_BYTES
    speed = constants["launcher.plan.speed"]
    assert speed[DECODE] == TRANSFORMERS_BATCH1.gpu_decode
    assert speed["VLLM_BATCHED.gpu_prefill"] == VLLM_BATCHED.gpu_prefill
    implied = implied_constants(cases, constants)
    assert implied[DECODE]["mistral-bf16"] == pytest.approx(TRANSFORMERS_BATCH1.gpu_decode / 2, rel=1e-4)
    factor = speed[QUANT_FACTORS]["int8"]
    assert factor == TRANSFORMERS_BATCH1.quant_decode["int8"]
    assert implied[QUANT_FACTORS]["int8"]["mistral-int8"] == pytest.approx(factor, rel=1e-4)
    assert implied["CUDA_RUNTIME_BYTES"]["mistral-bf16"] == 600 * 2**20

    report = {
        "gpu": "NVIDIA H100 80GB HBM3",
        "started": "now",
        "versions": {},
        "settings": {"prompt_tokens": 2048, "new_tokens": 256},
        "summary": rows,
        "steps": [{"name": "mistral-bf16", "status": "ok", "seconds": 30.0}],
        "implied": implied,
        "notes": [],
    }
    text = markdown(report)
    assert "| mistral-int8 | int8 on GPU 0" in text and "qwen14-pipeline" in text
    assert "## Implied constants" in text


@pytest.mark.slow
def test_tiny_run_writes_the_report(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu",
            "--tiny",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=ROOT,
    )
    log = out / "gpu-tiny-CPU.log"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu-tiny-CPU.json").read_text())
    assert {"schema", "gpu", "settings", "versions", "host", "constants", "steps", "cases", "summary",
            "implied", "notes", "elapsed_s"} <= set(report)  # fmt: skip
    assert report["tiny"] is True
    cases = {c["name"]: c for c in report["cases"]}
    assert list(cases) == [
        "danube-bf16", "mistral-bf16", "qwen14-berth-auto", "qwen14-pipeline", "qwen14-berth-no-quant",
    ]  # fmt: skip
    failed = {n: c.get("error") for n, c in cases.items() if c["status"] != "ok"}
    assert not failed, f"{failed}\n{log.read_text()[-4000:]}"
    berth = cases["danube-bf16"]
    assert berth["plan"]["precision"] == "bf16" and berth["card_differences"] == {}
    assert berth["generate"]["prompt_tokens"] == 64 and berth["generate"]["new_tokens"] == 16
    assert {"weights_bytes", "kv_cache_bytes", "overhead_bytes", "used_bytes"} <= set(
        berth["estimate"]["placements"][0]
    )
    assert berth["estimate"]["at_tokens_excl_runtime"]["cpu"] > 0 and berth["measurement"]["peak_bytes"] > 0
    assert cases["qwen14-berth-auto"]["plan"]["strategy"] == "disk"  # the RAM cap forces offload
    assert cases["qwen14-pipeline"]["generate"]["tokens_per_s"] > 0
    rows = {r["case"]: r for r in report["summary"]}
    assert rows["danube-bf16"]["devices"]["cpu"]["error_vs_rss_peak"] is not None
    assert rows["mistral-bf16"]["decode_tokens_per_s"]["measured"] > 0
    assert any("int8 skipped" in note for note in report["notes"])
    assert "## Speed" in (out / "gpu-tiny-CPU.md").read_text()
    assert not any((tmp_path / "w" / "models").glob("*")), "model folders are deleted after their cases"
