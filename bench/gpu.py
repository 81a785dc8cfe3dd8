"""Berth's memory and speed estimates against one real GPU, on random-weight models built from catalog fields.

What it does (one run, one process per step so a crash or a timeout costs one case, not the run):

1. Builds each model's real architecture from its catalog card (`registry.verify.build_config`) with random
   weights directly on the GPU in bf16, saves it as safetensors with a word-level tokenizer over the model's
   whole vocabulary ("t3 t17 …": one word is one token, so a 2,048-word prompt is 2,048 tokens), and deletes
   the folder once the model's cases are done (disk use peaks at one model: about 30 GB for the 14B).
2. Per case, in a fresh process: reads NVML's used memory before CUDA starts, then runs Berth's own path —
   `probe_host` → `resolve_source(folder)` (the catalog card is kept for planning; differences are recorded) →
   `load_model(source, host, PlanRequest(...))` (plan → from_pretrained as planned) → `open_session(...)`
   (with the word-level tokenizer) → a 2-token warm-up → `session.send(prompt)` with a 2,048-token prompt and
   256 new tokens, greedy, no end-of-text token.
   After loading and after generating it records NVML used (minus the reading before CUDA started), torch's
   allocated / max allocated / reserved / max reserved, and process RSS, beside the plan's estimates (weights,
   KV cache, overhead, total per device), and the estimated against the measured decode tokens/s and time to
   first token.
3. Cases: h2o-danube-1.8b-chat and Mistral-7B-v0.1 in bf16, int8 and nf4 (bitsandbytes); Qwen2.5-14B-Instruct
   under a forced budget (`--gpu-budget-gib`, default 20 GiB of GPU 0, passed as PlanRequest.max_memory):
   the plan Berth picks (int8 at 20 GiB), Berth with quantization ruled out (bf16 with CPU offload), and the
   seed's plain `pipeline("text-generation", dtype=torch.bfloat16, device_map="auto")` given the same
   `max_memory`. The offload cases generate `--compare-new-tokens` (16) tokens: each token copies ~12 GB.
4. Writes `gpu-<GPU name>.json`, `.md` (tables) and `.log` (the steps' output) to $OUT if set, else
   bench/results/, after every step, with the constants in use (registry.memory, launcher.plan.speed,
   launcher.plan.placement, launcher.machine.host) and the constants the measurements imply ("implied").

`--budget-s` (default 480) bounds the run: a step whose rough cost no longer fits is skipped (optional cases —
int8, nf4, Berth's offload — first, keeping time for the later must-run cases), and each process gets a timeout.
Generation also stops after `--max-time-s` (the session's stop, like Ctrl-C), keeping the tokens it made.
`--tiny` runs the same steps on the CPU with 2–4-layer, 64-wide versions of the same cards (int8/nf4 skipped:
they need CUDA and bitsandbytes) in about 35 s: tests/test_bench_gpu.py runs it.

Packages: torch with CUDA, transformers, accelerate, safetensors, tokenizers, nvidia-ml-py, psutil, pyyaml,
jinja2 (all in the device image) plus pydantic (Berth's catalog schema) and bitsandbytes, carried as wheels.
Nothing imports click, textual, rich or huggingface_hub's network code (the models are local folders;
HF_HUB_OFFLINE=1). Download the wheels once, in the repository root (`/.whl/` is git-ignored):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl bitsandbytes==0.50.2 pydantic==2.14.4 pydantic-core==2.50.5 \
      annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0

(46 MB together; bitsandbytes 0.50.2 ships libbitsandbytes_cuda130.so for the image's torch 2.11+cu130.)
The exact device command is in bench/GPU.md.

Run:  PYTHONUNBUFFERED=1 python3 bench/gpu.py --budget-s 480          (GPU)
      PYTHONPATH=. .venv/bin/python bench/gpu.py --tiny --out /tmp/x    (CPU check, ~35 s)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import GiB, TimingStreamer, write_json_atomic

SCHEMA = 1
#: The three models: catalog id, short key, and what a --tiny run shrinks each to (same family and layout).
MODELS: tuple[tuple[str, str, dict[str, int]], ...] = (
    (
        "danube",
        "h2oai/h2o-danube-1.8b-chat",
        {"num_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
         "num_key_value_heads": 1, "vocab_size": 512},
    ),
    (
        "mistral",
        "mistralai/Mistral-7B-v0.1",
        {"num_layers": 3, "hidden_size": 64, "intermediate_size": 224, "num_attention_heads": 4,
         "num_key_value_heads": 1, "vocab_size": 512},
    ),
    (
        "qwen14",
        "Qwen/Qwen2.5-14B-Instruct",
        {"num_layers": 4, "hidden_size": 80, "intermediate_size": 216, "num_attention_heads": 5,
         "num_key_value_heads": 1, "vocab_size": 1024},
    ),
)  # fmt: skip
#: The model compared against the plain pipeline under a forced budget (the others run bf16, int8, nf4).
COMPARE_MODEL = "qwen14"
QUANTS = ("int8", "nf4")
#: Token ids of the generated tokenizer's specials; the prompt uses ids from FIRST_WORD_ID up.
PAD_ID, UNK_ID, FIRST_WORD_ID = 0, 1, 3
WARMUP_PROMPT_TOKENS = 16
PROMPT_SEED = 1234

#: Rough seconds for the budget check on an H100 (kept deliberately pessimistic): a fresh process with torch
#: and CUDA, building a model (init on the GPU + writing safetensors), reading weights, and decode tokens/s.
PROCESS_S = 12.0
BUILD_BYTES_PER_S = 0.8e9
LOAD_BYTES_PER_S = 2.0e9
FLOOR_TOKENS_PER_S: dict[str, float] = {"bf16": 25.0, "int8": 7.0, "nf4": 12.0, "offload": 0.5}
TINY_STEP_S = 12.0


# --------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class Settings:
    """Everything a run is asked to do (from the command line)."""

    tiny: bool
    budget_s: float
    prompt_tokens: int
    new_tokens: int
    compare_new_tokens: int
    max_time_s: float
    gpu_budget_bytes: int
    cpu_budget_bytes: int
    models: tuple[str, ...]
    out_dir: Path
    work_dir: Path


@dataclass(frozen=True)
class Step:
    """One unit of the run: build a model, run one case, or delete a model's folder."""

    name: str
    kind: str  # "build" | "case" | "cleanup"
    model: str
    expect_s: float
    must: bool
    case: Mapping[str, Any] = field(default_factory=dict)


def tiny_card(card: Any, overrides: Mapping[str, int]) -> Any:
    """The same card with a small architecture (and its parameter count), for a CPU run."""
    from registry.params import count_params
    from registry.schema import ModelCard

    data = card.model_dump()
    data["architecture"].update(overrides)
    data.update(params_source="computed", stored_extra_params=0, stored_extra_note=None)
    draft = ModelCard.model_validate(data)
    data["params"] = count_params(draft)
    return ModelCard.model_validate(data)


def bf16_bytes(card: Any) -> int:
    """Bytes of the model's weights in bf16 (what is built and saved)."""
    from registry.memory import Precision, weight_bytes

    return weight_bytes(card, Precision("bfloat16"))


def case_expect_s(weights: int, label: str, new_tokens: int, max_time_s: float, tiny: bool) -> float:
    """Rough wall time of one case process: start, load, prefill and warm-up, decode (capped by max_time)."""
    if tiny:
        return TINY_STEP_S
    decode = min(max_time_s, new_tokens / FLOOR_TOKENS_PER_S[label])
    return PROCESS_S + weights / LOAD_BYTES_PER_S + 5.0 + decode


def compare_budget(settings: Settings, card: Any) -> dict[str, int]:
    """The forced budget of the comparison, per device (the same numbers go to Berth and to the pipeline).

    On a GPU: GPU 0 and the CPU capped. In a --tiny run (CPU only): RAM capped so that Berth must put about
    half the weights on disk, which exercises the offload folder path.
    """
    if not settings.tiny:
        return {"0": settings.gpu_budget_bytes, "cpu": settings.cpu_budget_bytes}
    from launcher.plan.placement import RAM_HEADROOM_BYTES
    from registry.memory import Precision, activation_bytes, kv_cache_bytes, runtime_bytes

    context = settings.prompt_tokens + settings.compare_new_tokens
    half = (bf16_bytes(card) + kv_cache_bytes(card, context)) // 2
    acts = activation_bytes(card, context, 1, Precision("bfloat16").dtype, "cpu")
    return {"cpu": runtime_bytes("cpu") + RAM_HEADROOM_BYTES + acts + half}


def plan_steps(
    settings: Settings, cards: Mapping[str, Any], can_quantize: bool, quant_note: str
) -> tuple[list[Step], list[str]]:
    """The run in order, each step with its rough cost and whether it must run; notes on what is left out.

    Per model: build, its cases, cleanup. danube and mistral: bf16 (must), int8 and nf4 (optional). qwen14
    under the forced budget: Berth's own choice (must), the plain pipeline (must), Berth with quantization
    ruled out, i.e. offload (optional). The offload cases generate `compare_new_tokens`.
    """
    steps: list[Step] = []
    notes: list[str] = []
    for key in settings.models:
        card = cards[key]
        weights = bf16_bytes(card)
        base = {
            "model": key,
            "folder": str(settings.work_dir / "models" / key),
            "card": card.model_dump(mode="json"),
        }

        def case(name: str, label: str, must: bool, new: int, **fields: Any) -> Step:
            expect = case_expect_s(weights, label, new, settings.max_time_s, settings.tiny)  # noqa: B023
            return Step(f"{key}-{name}", "case", key, expect, must, {**base, "new_tokens": new, **fields})  # noqa: B023

        full, short = settings.new_tokens, settings.compare_new_tokens
        if key == COMPARE_MODEL:
            budget = compare_budget(settings, card)
            cases = [
                case("berth-auto", "int8", True, full, mode="berth", quant=None, max_memory=budget),
                case("pipeline", "offload", True, short, mode="pipeline", quant=None, max_memory=budget),
                case(
                    "berth-no-quant", "offload", False, short, mode="berth", quant="none", max_memory=budget
                ),
            ]
        else:
            cases = [case("bf16", "bf16", True, full, mode="berth", quant="none", max_memory=None)]
            for quant in QUANTS:
                if can_quantize:
                    cases.append(case(quant, quant, False, full, mode="berth", quant=quant, max_memory=None))
                else:
                    notes.append(f"{key}-{quant} skipped: {quant_note}")
        build_s = TINY_STEP_S if settings.tiny else PROCESS_S + weights / BUILD_BYTES_PER_S
        steps += [Step(f"{key}-build", "build", key, build_s, True, base), *cases]
        steps.append(Step(f"{key}-cleanup", "cleanup", key, 0.0, True, base))
    return steps, notes


def reserve_s(step: Step, later: Sequence[Step]) -> float:
    """Time an optional step must leave for the must-run steps after it (0 for a must-run step)."""
    return 0.0 if step.must else sum(s.expect_s for s in later if s.must and s.kind != "cleanup")


def should_run(step: Step, later: Sequence[Step], elapsed: float, budget: float) -> bool:
    """Whether a step fits the time left: must-run steps need their own cost; optional ones also leave the
    cost of every later must-run step."""
    if step.kind == "cleanup":
        return True
    return elapsed + step.expect_s + reserve_s(step, later) <= budget


def safe_name(text: str) -> str:
    """A file-name-safe version of a GPU name: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unknown"


# --------------------------------------------------------------------------- summaries (pure)


def _err(estimated: float | None, measured: float | None) -> float | None:
    if estimated is None or not measured:
        return None
    return (estimated - measured) / measured


def _cuda_summary(device: str, load: Mapping[str, Any], gen: Mapping[str, Any], estimate: Mapping[str, Any],
                  cuda_runtime_bytes: int) -> dict[str, Any]:  # fmt: skip
    """One GPU's estimates against its readings, after loading and after generating."""
    weights = next(
        (p["weights_bytes"] for p in estimate.get("placements", []) if p["device"] == device), None
    )
    at_tokens = (estimate.get("at_tokens_excl_runtime") or {}).get(device)
    torch_load = (load.get("torch") or {}).get(device, {})
    torch_gen = (gen.get("torch") or {}).get(device, {})
    nvml_load = (load.get("nvml_used_delta") or {}).get(device)
    nvml_gen = (gen.get("nvml_used_delta") or {}).get(device)
    load_est = None if weights is None else weights + cuda_runtime_bytes
    gen_est = None if at_tokens is None else at_tokens + cuda_runtime_bytes
    return {
        "after_load": {
            "estimated_weights": weights,
            "torch_allocated": torch_load.get("allocated"),
            "error_weights_vs_allocated": _err(weights, torch_load.get("allocated")),
            "torch_max_allocated": torch_load.get("max_allocated"),
            "torch_reserved": torch_load.get("reserved"),
            "estimated_with_runtime": load_est,
            "nvml_used_delta": nvml_load,
            "error_vs_nvml": _err(load_est, nvml_load),
            "nvml_minus_reserved": None
            if nvml_load is None or torch_load.get("reserved") is None
            else nvml_load - torch_load["reserved"],
        },
        "after_generate": {
            "estimated_excl_runtime": at_tokens,
            "torch_max_reserved": torch_gen.get("max_reserved"),
            "error_vs_torch_max_reserved": _err(at_tokens, torch_gen.get("max_reserved")),
            "torch_max_allocated": torch_gen.get("max_allocated"),
            "error_vs_torch_max_allocated": _err(at_tokens, torch_gen.get("max_allocated")),
            "estimated_with_runtime": gen_est,
            "nvml_used_delta": nvml_gen,
            "error_vs_nvml": _err(gen_est, nvml_gen),
        },
    }


def case_summary(case: Mapping[str, Any], cuda_runtime_bytes: int) -> dict[str, Any]:
    """One row: estimated against measured memory (per device, after load and after generating) and speed.

    Errors are (estimated - measured) / measured. On a GPU the estimate with runtime (CUDA_RUNTIME_BYTES added)
    is compared with NVML's used memory less its reading before CUDA started; the estimate without it with
    torch's peaks. The estimate after generating is for the tokens really held (prompt + reply).
    """
    row: dict[str, Any] = {"case": case.get("name"), "status": case.get("status"), "mode": case.get("mode")}
    plan = case.get("plan") or {}
    row["plan"] = plan.get("summary") or (case.get("pipeline") or {}).get("summary")
    gen = case.get("generate") or {}
    load = case.get("load") or {}
    estimate = case.get("estimate") or {}
    at_tokens = estimate.get("at_tokens_excl_runtime") or {}
    placed = {p["device"] for p in estimate.get("placements", [])}
    devices: dict[str, Any] = {}
    for device in sorted(
        placed | set(at_tokens) | set(load.get("torch") or {}) | set(gen.get("torch") or {})
    ):
        if device.startswith("cuda:"):
            devices[device] = _cuda_summary(device, load, gen, estimate, cuda_runtime_bytes)
        elif device == "cpu":
            est, rss = at_tokens.get("cpu"), gen.get("rss_peak")
            devices[device] = {"estimated": est, "rss_peak": rss, "error_vs_rss_peak": _err(est, rss)}
    row["devices"] = devices
    speed_est = plan.get("speed") or {}
    row["decode_tokens_per_s"] = {
        "estimated": speed_est.get("decode_tokens_per_s"),
        "measured": gen.get("tokens_per_s"),
        "error": _err(speed_est.get("decode_tokens_per_s"), gen.get("tokens_per_s")),
    }
    row["time_to_first_token_s"] = {
        "estimated": speed_est.get("time_to_first_token_s"),
        "measured": gen.get("time_to_first_token_s"),
        "error": _err(speed_est.get("time_to_first_token_s"), gen.get("time_to_first_token_s")),
    }
    row["new_tokens"] = gen.get("new_tokens")
    row["load_seconds"] = {"estimated": speed_est.get("load_seconds"), "measured": load.get("seconds")}
    return row


#: The transformers speed profile's figures the GPU run checks, as `constants_in_use` names them.
DECODE = "TRANSFORMERS_BATCH1.gpu_decode"
PREFILL = "TRANSFORMERS_BATCH1.gpu_prefill"
QUANT_FACTORS = "TRANSFORMERS_BATCH1.quant_decode"
PCIE = "TRANSFORMERS_BATCH1.pcie"


def implied_constants(
    cases: Sequence[Mapping[str, Any]], constants: Mapping[str, Any], pcie_bytes_per_s: int | None = None
) -> dict[str, Any]:
    """What the measurements say the speed and runtime constants should be (GPU cases only; per case).

    - TRANSFORMERS_BATCH1.gpu_decode: current x measured/estimated decode tokens/s of the bf16 single-GPU cases.
    - TRANSFORMERS_BATCH1.quant_decode[q]: current x (measured/estimated of the q case) / (measured/estimated
      of the same model's bf16 case), so the bf16 correction is not counted twice.
    - TRANSFORMERS_BATCH1.gpu_prefill: current x estimated/measured time to first token of the bf16 cases (a
      2,048-token prefill is compute-bound on these sizes).
    - CUDA_RUNTIME_BYTES: NVML used (minus before CUDA started) less torch's reserved, after loading.
    - TRANSFORMERS_BATCH1.pcie (rough, GPU time per token ignored): bytes of CPU-offloaded weights copied per token
      over the link's bandwidth, against the measured time per token, for the Berth offload case.
    """
    speed = constants.get("launcher.plan.speed", {})
    eff = speed.get(DECODE)
    mfu = speed.get(PREFILL)
    factors = speed.get(QUANT_FACTORS, {})
    ratio: dict[str, float] = {}
    out: dict[str, dict[str, Any]] = {
        DECODE: {},
        QUANT_FACTORS: {},
        PREFILL: {},
        "CUDA_RUNTIME_BYTES": {},
        PCIE: {},
    }
    for case in cases:
        plan = case.get("plan") or {}
        gen = case.get("generate") or {}
        if case.get("mode") != "berth" or not plan:
            continue
        meas = gen.get("tokens_per_s")
        if plan.get("strategy") == "offload" and meas and pcie_bytes_per_s:
            copied = sum(p["weights_bytes"] for p in case["estimate"]["placements"] if p["device"] == "cpu")
            out[PCIE][case["name"]] = copied * meas / pcie_bytes_per_s
        if plan.get("strategy") not in ("gpu", "quantized"):
            continue
        est = (plan.get("speed") or {}).get("decode_tokens_per_s")
        if est and meas:
            ratio[case["name"]] = meas / est
        load = case.get("load") or {}
        nvml = (load.get("nvml_used_delta") or {}).get("cuda:0")
        reserved = ((load.get("torch") or {}).get("cuda:0") or {}).get("reserved")
        if nvml is not None and reserved is not None:
            out["CUDA_RUNTIME_BYTES"][case["name"]] = nvml - reserved
        if plan.get("precision") == "bf16":
            if eff and case["name"] in ratio:
                out[DECODE][case["name"]] = eff * ratio[case["name"]]
            est_ttft = (plan.get("speed") or {}).get("time_to_first_token_s")
            ttft = gen.get("time_to_first_token_s")
            if mfu and est_ttft and ttft:
                out[PREFILL][case["name"]] = mfu * est_ttft / ttft
    for name, r in ratio.items():
        model, _, quant = name.partition("-")
        if quant in factors and f"{model}-bf16" in ratio:
            out[QUANT_FACTORS].setdefault(quant, {})[name] = factors[quant] * r / ratio[f"{model}-bf16"]
    return out


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GiB:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(report: Mapping[str, Any]) -> str:
    """The report's tables for people (GiB = 2^30 bytes; err = (estimated - measured) / measured)."""
    settings = report["settings"]
    lines = [
        f"# Berth estimates vs measured: {report['gpu']}",
        "",
        f"{report['started']} · torch {report['versions'].get('torch')} · transformers "
        f"{report['versions'].get('transformers')} · bitsandbytes {report['versions'].get('bitsandbytes')} · "
        f"prompt {settings['prompt_tokens']} tokens, {settings['new_tokens']} new · "
        f"elapsed {report.get('elapsed_s', 0):.0f} s. Targets: memory within 5%, decode speed within 25%.",
        "",
        "## GPU memory (GiB)",
        "",
        "NVML Δ: used memory less the reading before the process started CUDA; estimate + runtime adds "
        "CUDA_RUNTIME_BYTES. After generating, the estimate is for the tokens really held.",
        "",
        "| case | plan | device | load: est. weights | torch alloc. | err | est. + runtime | NVML Δ | err | "
        "gen: est. | torch max reserved | err | torch max alloc. | est. + runtime | NVML Δ | err |",
        "|---|---|---|" + "---:|" * 13,
    ]
    cpu_rows = []
    for row in report.get("summary", []):
        for device, d in row["devices"].items():
            if not device.startswith("cuda:"):
                cpu_rows.append((row, device, d))
                continue
            a, g = d["after_load"], d["after_generate"]
            lines.append(
                f"| {row['case']} | {row['plan']} | {device} | {_gib(a['estimated_weights'])} | "
                f"{_gib(a['torch_allocated'])} | {_pct(a['error_weights_vs_allocated'])} | "
                f"{_gib(a['estimated_with_runtime'])} | {_gib(a['nvml_used_delta'])} | {_pct(a['error_vs_nvml'])} | "
                f"{_gib(g['estimated_excl_runtime'])} | {_gib(g['torch_max_reserved'])} | "
                f"{_pct(g['error_vs_torch_max_reserved'])} | {_gib(g['torch_max_allocated'])} | "
                f"{_gib(g['estimated_with_runtime'])} | {_gib(g['nvml_used_delta'])} | {_pct(g['error_vs_nvml'])} |"
            )
    if cpu_rows:
        lines += [
            "",
            "## CPU memory (GiB; process RSS peak while generating)",
            "",
            "| case | plan | est. | RSS peak | err |",
            "|---|---|---:|---:|---:|",
        ]
        for row, _device, d in cpu_rows:
            lines.append(
                f"| {row['case']} | {row['plan']} | {_gib(d['estimated'])} | {_gib(d['rss_peak'])} | "
                f"{_pct(d['error_vs_rss_peak'])} |"
            )
    lines += [
        "",
        "## Speed",
        "",
        "| case | status | plan | new tokens | est. tok/s | meas. tok/s | err | est. TTFT s | meas. TTFT s | err | "
        "load s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.get("summary", []):
        dec, ttft = row["decode_tokens_per_s"], row["time_to_first_token_s"]
        lines.append(
            f"| {row['case']} | {row['status']} | {row['plan']} | {row['new_tokens'] or '-'} | "
            f"{_num(dec['estimated'])} | {_num(dec['measured'])} | {_pct(dec['error'])} | "
            f"{_num(ttft['estimated'], 3)} | {_num(ttft['measured'], 3)} | {_pct(ttft['error'])} | "
            f"{_num(row['load_seconds']['measured'])} |"
        )
    lines += ["", "## Steps", "", "| step | status | seconds | note |", "|---|---|---:|---|"]
    for step in report.get("steps", []):
        note = str(step.get("note") or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {step['name']} | {step['status']} | {_num(step.get('seconds'))} | {note} |")
    implied = report.get("implied") or {}
    if any(implied.values()):
        lines += ["", "## Implied constants", "", "```", json.dumps(implied, indent=1), "```"]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the parent process


def constants_in_use() -> dict[str, dict[str, Any]]:
    """Every upper-case number (or table of numbers) each estimate module defines itself, by module; a
    dataclass of them (an engine's efficiency profile) as NAME.field entries."""
    import inspect

    import launcher.machine.host
    import launcher.plan.ladder
    import launcher.plan.placement
    import launcher.plan.speed
    import registry.memory

    result: dict[str, dict[str, Any]] = {}
    for module in (
        registry.memory,
        launcher.plan.speed,
        launcher.plan.placement,
        launcher.plan.ladder,
        launcher.machine.host,
    ):
        defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*(?::[^=]*)?=", inspect.getsource(module), re.M))
        named: dict[str, Any] = {}
        for name in sorted(defined):
            value = getattr(module, name, None)
            if is_dataclass(value) and not isinstance(value, type):
                named.update({f"{name}.{f.name}": getattr(value, f.name) for f in fields(value)})
            else:
                named[name] = value
        result[module.__name__] = _numbers(named)
    return result


def _numbers(named: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that are numbers or tables of numbers (their keys as strings); booleans left out."""
    values: dict[str, Any] = {}
    for name, value in named.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            continue
        if isinstance(value, dict):
            if not all(isinstance(v, (int, float)) for v in value.values()):
                continue
            value = {str(k): v for k, v in value.items()}
        values[name] = value
    return values


def versions() -> dict[str, str | None]:
    """Installed versions of what the run depends on (read without importing torch)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "bitsandbytes", "safetensors", "tokenizers",
                 "pydantic", "nvidia-ml-py", "huggingface_hub"):  # fmt: skip
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _host_dict(host: Any) -> dict[str, Any]:
    data = asdict(host)
    data["cpu"]["features"] = sorted(data["cpu"]["features"])
    return data


def default_work_dir() -> Path:
    """The folder with the most free space among the usual scratch places (the 14B needs ~31 GB)."""
    candidates = [Path(tempfile.gettempdir()), Path("/var/tmp"), Path.home()]
    best = max(
        (c for c in candidates if c.is_dir() and os.access(c, os.W_OK)),
        key=lambda c: shutil.disk_usage(c).free,
    )
    return best / "berth-gpu-bench"


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        TRANSFORMERS_VERBOSITY="error",
        BERTH_HOME=str(settings.work_dir / "berth-home"),
    )
    if settings.tiny:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_child(
    settings: Settings, spec: Mapping[str, Any], name: str, timeout: float, log: Path
) -> tuple[str, dict[str, Any], str | None]:
    """Run one step in a fresh process; (status, what it recorded, error)."""
    spec_path = settings.work_dir / "steps" / f"{name}.spec.json"
    result_path = settings.work_dir / "steps" / f"{name}.result.json"
    result_path.unlink(missing_ok=True)
    full = {
        **spec,
        "name": name,
        "result_path": str(result_path),
        "tiny": settings.tiny,
        "prompt_tokens": settings.prompt_tokens,
        "max_time_s": settings.max_time_s,
    }
    write_json_atomic(spec_path, full)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
    status, error = "ok", None
    with log.open("a") as handle:
        handle.write(f"\n===== {name} ({datetime.now(timezone.utc).isoformat(timespec='seconds')})\n")
        handle.flush()
        try:
            done = subprocess.run(
                command, stdout=handle, stderr=subprocess.STDOUT, env=child_env(settings), timeout=timeout
            )
            if done.returncode != 0:
                status, error = "failed", f"exit status {done.returncode} (see the log)"
        except subprocess.TimeoutExpired:
            status, error = "timeout", f"killed after {timeout:.0f} s"
    recorded: dict[str, Any] = {}
    if result_path.exists():
        recorded = json.loads(result_path.read_text())
    if recorded.get("error"):
        status, error = "failed", recorded["error"]
    elif status == "ok" and not recorded.get("done"):
        status, error = "failed", "the step ended without recording its figures"
    return status, recorded, error


def run(settings: Settings) -> dict[str, Any]:
    """The whole run: every step in order within the budget; the report is rewritten after each step."""
    from launcher.machine.probe import probe_host
    from registry.catalog import load_catalog

    began = time.perf_counter()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(overlay=False)
    host = probe_host(catalog, environ=child_env(settings))
    gpu_name = host.gpus[0].name if host.gpus and not settings.tiny else None
    stem = f"gpu-{safe_name(gpu_name)}" if gpu_name else "gpu-tiny-CPU"
    out_json = settings.out_dir / f"{stem}.json"
    out_md = settings.out_dir / f"{stem}.md"
    log = settings.out_dir / f"{stem}.log"
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    cards = {}
    for key, model_id, overrides in MODELS:
        if key in settings.models:
            card = catalog.get(model_id)
            cards[key] = tiny_card(card, overrides) if settings.tiny else card
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    can_quantize = bool(gpu_name) and has_bnb
    quant_note = (
        "a --tiny run is CPU-only"
        if settings.tiny
        else "no NVIDIA GPU found"
        if not gpu_name
        else "bitsandbytes is not installed"
    )
    steps, notes = plan_steps(settings, cards, can_quantize, quant_note)
    for note in notes:
        print(f"note: {note}")
    from registry.memory import CUDA_RUNTIME_BYTES

    report: dict[str, Any] = {
        "schema": SCHEMA,
        "gpu": gpu_name or "none (--tiny, CPU)",
        "tiny": settings.tiny,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "budget_s": settings.budget_s,
            "prompt_tokens": settings.prompt_tokens,
            "new_tokens": settings.new_tokens,
            "compare_new_tokens": settings.compare_new_tokens,
            "max_time_s": settings.max_time_s,
            "gpu_budget_bytes": settings.gpu_budget_bytes,
            "cpu_budget_bytes": settings.cpu_budget_bytes,
            "models": {k: cards[k].id for k in cards},
            "work_dir": str(settings.work_dir),
        },
        "versions": versions(),
        "host": _host_dict(host),
        "constants": constants_in_use(),
        "steps": [],
        "cases": [],
        "summary": [],
        "implied": {},
        "notes": notes,
    }

    pcie = host.gpus[0].pcie_bandwidth_bytes_per_s if host.gpus else None

    def save() -> None:
        report["elapsed_s"] = time.perf_counter() - began
        try:  # a bug in the summaries must not lose the raw figures
            report["summary"] = [case_summary(c, CUDA_RUNTIME_BYTES) for c in report["cases"]]
            report["implied"] = implied_constants(report["cases"], report["constants"], pcie)
            text = markdown(report)
        except Exception:
            report["summary_error"] = traceback.format_exc()[-3000:]
            text = f"summary failed; see summary_error in {out_json.name}\n"
        write_json_atomic(out_json, report)
        out_md.write_text(text)

    save()
    for g in host.gpus if gpu_name else ():
        print(
            f"GPU {g.index}: {g.name}, {g.usable_bytes / GiB:.1f} GiB free of {g.total_bytes / GiB:.1f}, "
            f"catalog entry {g.accelerator_id} ({(g.bandwidth_bytes_per_s or 0) / 1e12:.2f} TB/s, "
            f"{g.bf16_tflops} bf16 TFLOP/s)"
        )
    print(
        f"{report['gpu']}: {len([s for s in steps if s.kind != 'cleanup'])} steps, budget {settings.budget_s:.0f} s, "
        f"models in {settings.work_dir} ({shutil.disk_usage(settings.work_dir).free / GiB:.0f} GiB free), "
        f"results in {out_json}"
    )
    broken: set[str] = set()
    for i, step in enumerate(steps):
        elapsed = time.perf_counter() - began
        record: dict[str, Any] = {"name": step.name, "kind": step.kind, "must": step.must}
        if step.kind == "cleanup":
            shutil.rmtree(step.case["folder"], ignore_errors=True)
            continue
        if step.model in broken:
            record.update(status="skipped", note="its model was not built")
        elif not should_run(step, steps[i + 1 :], elapsed, settings.budget_s):
            record.update(status="skipped", note=f"time: {elapsed:.0f} s gone, ~{step.expect_s:.0f} s needed")
        elif step.kind == "build" and not _disk_ok(step, settings):
            record.update(status="skipped", note="not enough free disk for the model's files")
        if "status" in record:
            if step.kind == "build":
                broken.add(step.model)
            report["steps"].append(record)
            print(f"[{elapsed:6.0f} s] {step.name}: skipped ({record['note']})")
            save()
            continue
        left = settings.budget_s - elapsed - reserve_s(step, steps[i + 1 :])
        timeout = max(30.0, min(left, 3 * step.expect_s + 60))
        print(
            f"[{elapsed:6.0f} s] {step.name} (~{step.expect_s:.0f} s, timeout {timeout:.0f} s) ...",
            flush=True,
        )
        t0 = time.perf_counter()
        status, recorded, error = run_child(settings, step.case, step.name, timeout, log)
        record.update(status=status, seconds=time.perf_counter() - t0, note=error)
        report["steps"].append(record)
        if step.kind == "build":
            record["build"] = recorded
            if status != "ok":
                broken.add(step.model)
        else:
            recorded.update(name=step.name, status=status)
            if error:
                recorded["error"] = error
            report["cases"].append(recorded)
        save()
        print(f"[{time.perf_counter() - began:6.0f} s] {step.name}: {status}{f' ({error})' if error else ''}")
        if step.kind == "case":
            try:
                print("    " + _one_line(case_summary(recorded, CUDA_RUNTIME_BYTES)), flush=True)
            except Exception as failure:  # the figures are saved; only this line is lost
                print(f"    (no summary line: {failure!r})")
    shutil.rmtree(settings.work_dir / "models", ignore_errors=True)
    save()
    print(f"done in {report['elapsed_s']:.0f} s: {out_json}, {out_md.name}, {log.name}")
    return report


def _disk_ok(step: Step, settings: Settings) -> bool:
    from registry.schema import ModelCard

    need = int(bf16_bytes(ModelCard.model_validate(step.case["card"])) * 1.05) + 2 * GiB
    return settings.tiny or shutil.disk_usage(settings.work_dir).free >= need


def _one_line(row: Mapping[str, Any]) -> str:
    parts = [str(row.get("plan"))]
    for device, d in row["devices"].items():
        if device.startswith("cuda:"):
            a, g = d["after_load"], d["after_generate"]
            parts.append(
                f"{device} load: est {_gib(a['estimated_with_runtime'])} vs NVML {_gib(a['nvml_used_delta'])} GiB "
                f"({_pct(a['error_vs_nvml'])}); gen: est {_gib(g['estimated_with_runtime'])} vs NVML "
                f"{_gib(g['nvml_used_delta'])} GiB ({_pct(g['error_vs_nvml'])}), torch max reserved "
                f"{_gib(g['torch_max_reserved'])} ({_pct(g['error_vs_torch_max_reserved'])})"
            )
        else:
            parts.append(
                f"{device} est {_gib(d['estimated'])} vs RSS {_gib(d['rss_peak'])} GiB ({_pct(d['error_vs_rss_peak'])})"
            )
    dec, ttft = row["decode_tokens_per_s"], row["time_to_first_token_s"]
    parts.append(
        f"{_num(dec['measured'])} tok/s (est {_num(dec['estimated'])}, {_pct(dec['error'])}), "
        f"TTFT {_num(ttft['measured'], 3)} s (est {_num(ttft['estimated'], 3)})"
    )
    return "; ".join(parts)


# --------------------------------------------------------------------------- the step processes


def prompt_text(vocab_size: int, tokens: int, seed: int = PROMPT_SEED) -> str:
    """`tokens` random words of the generated tokenizer: exactly `tokens` token ids, no special tokens."""
    rng = random.Random(seed)
    return " ".join(f"t{rng.randrange(FIRST_WORD_ID, vocab_size)}" for _ in range(tokens))


def save_tokenizer(folder: Path, vocab_size: int) -> None:
    """A word-level tokenizer over the model's whole vocabulary: '<pad>', '<unk>', '</s>', then t3 … t<V-1>."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": PAD_ID, "<unk>": UNK_ID, "</s>": 2}
    vocab.update({f"t{i}": i for i in range(FIRST_WORD_ID, vocab_size)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bench_tokenizer(backend).save_pretrained(folder)


def bench_tokenizer(source: Any) -> Any:
    """The word-level tokenizer as transformers' fast tokenizer, from a `tokenizers.Tokenizer` or a folder.

    A case hands this to the session and the pipeline rather than what AutoTokenizer makes of the folder:
    for some model types (qwen2) AutoTokenizer rebuilds the family's own byte-level BPE around the vocabulary,
    which splits 't17' into pieces the vocabulary lacks.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = (
        source if isinstance(source, Tokenizer) else Tokenizer.from_file(str(Path(source) / "tokenizer.json"))
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>")


def child_build(spec: Mapping[str, Any], result: dict[str, Any], save: Callable[[], None]) -> None:
    """Random bf16 weights of the card's real architecture, made on the GPU (CPU in --tiny), as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM

    from registry.schema import ModelCard
    from registry.verify import build_config

    card = ModelCard.model_validate(spec["card"])
    folder = Path(spec["folder"])
    shutil.rmtree(folder, ignore_errors=True)
    config = build_config(card)
    config.bos_token_id = None
    config.eos_token_id = None  # random weights: no end of text, every reply runs to its token count
    config.pad_token_id = PAD_ID
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    if device == "cuda":
        torch.cuda.synchronize()
    result.update(device=device, init_s=time.perf_counter() - t0, model_class=type(model).__name__)
    result["params"] = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    t0 = time.perf_counter()
    # safetensors in 5 GB shards (the RAM peak while saving stays low); --tiny shards too, to load an index.
    model.save_pretrained(folder, max_shard_size="100KB" if spec.get("tiny") else "5GB")
    del model
    save_tokenizer(folder, card.architecture.vocab_size)
    result["save_s"] = time.perf_counter() - t0
    result["bytes_on_disk"] = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    result["shards"] = len(list(folder.glob("*.safetensors")))
    result["expected_params"] = card.params


def _torch_gpu(torch: Any) -> dict[str, dict[str, int]]:
    if not torch.cuda.is_available():
        return {}
    readings = {}
    for i in range(torch.cuda.device_count()):
        torch.cuda.synchronize(i)
        readings[f"cuda:{i}"] = {
            "allocated": int(torch.cuda.memory_allocated(i)),
            "max_allocated": int(torch.cuda.max_memory_allocated(i)),
            "reserved": int(torch.cuda.memory_reserved(i)),
            "max_reserved": int(torch.cuda.max_memory_reserved(i)),
        }
    return readings


def _readings(torch: Any, nvml_start: Mapping[int, int], meter: Any) -> dict[str, Any]:
    """Memory now: torch per GPU (peaks since the meter's phase began), NVML used minus before CUDA, RSS."""
    from launcher.run.measure import nvml_used_bytes, rss_bytes

    torch_figures = _torch_gpu(torch)
    nvml = nvml_used_bytes() if torch_figures else {}
    peak = meter.peak().devices
    return {
        "torch": torch_figures,
        "nvml_used": {f"cuda:{i}": v for i, v in nvml.items()},
        "nvml_used_delta": {f"cuda:{i}": v - nvml_start.get(i, 0) for i, v in nvml.items()},
        "rss": rss_bytes(),
        "rss_peak": peak.get("cpu"),
    }


def _max_memory(spec: Mapping[str, Any]) -> dict[int | str, int] | None:
    raw = spec.get("max_memory")
    if not raw:
        return None
    return {int(k) if str(k).isdigit() else k: int(v) for k, v in raw.items()}


def _plan_dict(plan: Any) -> dict[str, Any]:
    return {
        "summary": plan.summary,
        "strategy": plan.strategy,
        "precision": plan.precision.label,
        "dtype": plan.precision.dtype,
        "quant": plan.precision.quant,
        "context": plan.context,
        "speed": asdict(plan.speed),
        "reasons": list(plan.reasons),
        "warnings": list(plan.warnings),
        "device_map_blocks": dict(Counter(str(v) for v in plan.device_map.values())),
    }


def _estimate_dict(card: Any, plan: Any) -> dict[str, Any]:
    from registry.memory import DeviceKind, estimate_memory

    kind: DeviceKind = "cuda" if plan.uses_gpu else "cpu"
    whole = estimate_memory(card, plan.precision, plan.context, plan.batch, device=kind)
    return {
        "placements": [
            {
                "device": p.device,
                "label": p.label,
                "blocks": len(p.blocks),
                "layers": p.layers,
                "weights_bytes": p.weights_bytes,
                "kv_cache_bytes": p.kv_cache_bytes,
                "overhead_bytes": p.overhead_bytes,
                "used_bytes": p.used_bytes,
                "budget_bytes": p.budget_bytes,
            }
            for p in plan.placements
        ],
        "one_device": {**asdict(whole), "total": whole.total, "device": kind},
    }


def _tokenizer_check(tokenizer: Any) -> dict[str, Any]:
    """What AutoTokenizer (inside load_model) made of the folder: its class and whether words stay one token."""
    try:
        ids = tokenizer("t3 t4 t5", add_special_tokens=False)["input_ids"]
    except Exception as error:  # only recorded: the bench tokenizer is used either way
        return {"class": type(tokenizer).__name__, "error": str(error)[:200]}
    return {
        "class": type(tokenizer).__name__,
        "ids_of_t3_t4_t5": list(ids),
        "one_token_per_word": ids == [3, 4, 5],
    }


def _card_differences(card: Any, imported: Any) -> dict[str, list[Any]]:
    """Architecture fields where the card built from the saved folder differs from the catalog card."""
    a, b = card.architecture.model_dump(), imported.architecture.model_dump()
    diffs = {k: [a[k], b[k]] for k in a if a[k] != b[k] and a[k] is not None}
    if card.params != imported.params:
        diffs["params"] = [card.params, imported.params]
    return diffs


def child_case(spec: Mapping[str, Any], result: dict[str, Any], save: Callable[[], None]) -> None:
    """One measured launch: Berth's path (or the plain pipeline), memory after load and after generating."""
    from launcher.run.measure import nvml_used_bytes

    nvml_start = nvml_used_bytes()  # before this process starts CUDA
    import torch

    from launcher.machine.probe import probe_host
    from launcher.run.measure import estimated_devices
    from registry.catalog import load_catalog
    from registry.schema import ModelCard

    card = ModelCard.model_validate(spec["card"])
    folder = Path(spec["folder"])
    prompt_tokens, new_tokens = int(spec["prompt_tokens"]), int(spec["new_tokens"])
    vocab = card.architecture.vocab_size
    text = prompt_text(vocab, prompt_tokens)
    warmup = prompt_text(vocab, WARMUP_PROMPT_TOKENS, seed=PROMPT_SEED + 1)
    result.update(
        model=card.id,
        mode=spec["mode"],
        requested={"dtype": "bfloat16", "quant": spec.get("quant"), "max_memory": spec.get("max_memory")},
        prompt_tokens=prompt_tokens,
        nvml_start={f"cuda:{i}": v for i, v in nvml_start.items()},
    )
    if torch.cuda.is_available():
        result["cuda_device"] = torch.cuda.get_device_name(0)
    max_memory = _max_memory(spec)
    if spec["mode"] == "pipeline":
        _pipeline_case(torch, folder, max_memory, text, warmup, new_tokens, spec, nvml_start, result, save)
        return

    from launcher.plan.request import PlanRequest
    from launcher.run.load import LoadOptions, load_model
    from launcher.run.session import GenerationSettings, open_session
    from launcher.run.source import resolve_source

    catalog = load_catalog(overlay=False)
    host = probe_host(catalog)
    source = resolve_source(str(folder), catalog)
    result["card_differences"] = _card_differences(card, source.card)
    source = replace(source, card=card)
    request = PlanRequest(
        context=prompt_tokens + new_tokens,
        prompt_tokens=prompt_tokens,
        dtype="bfloat16",
        quant=spec.get("quant"),
        max_memory=max_memory,
        device="cpu" if spec.get("tiny") else "auto",
    )
    loaded = load_model(source, host, request, LoadOptions(show_progress=False))
    plan = loaded.plan
    result["berth_tokenizer"] = _tokenizer_check(loaded.tokenizer)
    loaded.tokenizer = bench_tokenizer(folder)
    result["plan"] = _plan_dict(plan)
    result["estimate"] = _estimate_dict(card, plan)
    result["load"] = {
        "seconds": loaded.load_seconds,
        "attempts": [
            {"plan": a.plan.summary, "error": a.error, "seconds": a.seconds} for a in loaded.attempts
        ],
        "device_map_differences": list(loaded.device_map_differences),
        "load_peak": dict(loaded.load_peak.devices),
        **_readings(torch, nvml_start, loaded.meter),
    }
    save()
    session = open_session(
        loaded, None, settings=GenerationSettings(max_new_tokens=new_tokens, temperature=0)
    )
    session.send(warmup, settings=GenerationSettings(max_new_tokens=2, temperature=0))
    session.reset()
    loaded.meter.phase()
    timer = threading.Timer(float(spec["max_time_s"]), session.stop)
    timer.start()
    try:
        reply = session.send(text)
    finally:
        timer.cancel()
    tokens = reply.prompt_tokens + reply.new_tokens
    result["generate"] = {
        "prompt_tokens": reply.prompt_tokens,
        "new_tokens": reply.new_tokens,
        "finish_reason": reply.finish_reason,
        "time_to_first_token_s": reply.time_to_first_token_s,
        "tokens_per_s": reply.tokens_per_s,
        "total_s": reply.total_s,
        **_readings(torch, nvml_start, loaded.meter),
    }
    result["estimate"]["at_tokens_excl_runtime"] = estimated_devices(card, plan, tokens)
    result["measurement"] = asdict(
        loaded.measurement(tokens, reply.time_to_first_token_s, reply.tokens_per_s)
    )
    if reply.prompt_tokens != prompt_tokens:
        result["warning"] = f"the prompt came to {reply.prompt_tokens} tokens, not {prompt_tokens}"
    save()
    loaded.close()


def _pipeline_case(
    torch: Any,
    folder: Path,
    max_memory: Mapping[int | str, int] | None,
    text: str,
    warmup: str,
    new_tokens: int,
    spec: Mapping[str, Any],
    nvml_start: Mapping[int, int],
    result: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """The seed's plain call, with the same max_memory as Berth's budget, timed the same way."""
    from transformers import pipeline

    from launcher.run.load import actual_device_map
    from launcher.run.measure import MemoryMeter

    meter = MemoryMeter()
    model_kwargs: dict[str, Any] = {}
    if max_memory:
        model_kwargs = {
            "max_memory": dict(max_memory),
            "offload_folder": str(folder.parent / "pipeline-offload"),
        }
    t0 = time.perf_counter()
    pipe = pipeline(
        "text-generation",
        model=str(folder),
        tokenizer=bench_tokenizer(folder),
        dtype=torch.bfloat16,
        device_map="auto",
        model_kwargs=model_kwargs,
    )
    load_s = time.perf_counter() - t0
    placed = dict(Counter(str(v) for v in actual_device_map(pipe.model).values()))
    result["pipeline"] = {
        "call": "pipeline('text-generation', model=folder, tokenizer=<the word-level tokenizer>, "
        "dtype=torch.bfloat16, device_map='auto', model_kwargs={'max_memory': ..., 'offload_folder': ...})",
        "dtype": str(next(pipe.model.parameters()).dtype),
        "device_map_blocks": placed,
        "summary": "pipeline bf16 auto: " + ", ".join(f"{k}×{v}" for k, v in placed.items()),
    }
    result["load"] = {
        "seconds": load_s,
        "load_peak": dict(meter.peak().devices),
        **_readings(torch, nvml_start, meter),
    }
    save()
    kwargs = {"do_sample": False, "return_full_text": False}
    pipe(warmup, max_new_tokens=2, **kwargs)
    meter.phase()
    streamer = TimingStreamer()
    started = time.perf_counter()
    pipe(text, max_new_tokens=new_tokens, streamer=streamer, max_time=float(spec["max_time_s"]), **kwargs)
    total = time.perf_counter() - started
    ttft, rate, n = streamer.figures(started)
    result["generate"] = {
        "prompt_tokens": len(text.split()),
        "new_tokens": n,
        "time_to_first_token_s": ttft,
        "tokens_per_s": rate,
        "total_s": total,
        **_readings(torch, nvml_start, meter),
    }
    save()


def child_main(spec_path: Path) -> int:
    """Run one step described by a spec file; what it measures is written to the spec's result file."""
    spec = json.loads(spec_path.read_text())
    result_path = Path(spec["result_path"])
    result: dict[str, Any] = {"name": spec["name"], "done": False}

    def save() -> None:
        write_json_atomic(result_path, result)

    started = time.perf_counter()
    try:
        if spec.get("mode") is None:
            child_build(spec, result, save)
        else:
            child_case(spec, result, save)
        result["done"] = True
    except BaseException as error:
        result["error"] = f"{type(error).__name__}: {str(error)[:2000]}"
        result["traceback"] = traceback.format_exc()[-6000:]
        traceback.print_exc()
    result["seconds"] = time.perf_counter() - started
    save()
    return 0 if result["done"] else 1


# --------------------------------------------------------------------------- command line


def parse_settings(argv: Sequence[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU check with 2-4-layer versions of the cards.")
    parser.add_argument("--budget-s", type=float, default=480.0, help="Wall-clock budget for the whole run.")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="Default 2048 (64 with --tiny).")
    parser.add_argument("--new-tokens", type=int, default=None, help="Default 256 (16 with --tiny).")
    parser.add_argument("--compare-new-tokens", type=int, default=None, help="Offload cases; default 16 (8).")
    parser.add_argument("--max-time-s", type=float, default=60.0, help="Stop any one generation after this.")
    parser.add_argument("--gpu-budget-gib", type=float, default=20.0, help="GPU 0 budget of the comparison.")
    parser.add_argument("--cpu-budget-gib", type=float, default=64.0, help="RAM budget of the comparison.")
    parser.add_argument(
        "--models", default=",".join(k for k, _, _ in MODELS), help="Comma-separated: danube,mistral,qwen14."
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Results folder (default $OUT, else bench/results)."
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="Where models are written (deleted after)."
    )
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = {k for k, _, _ in MODELS}
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = set(models) - known
    if unknown:
        parser.error(
            f"unknown model key(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(known))}"
        )
    tiny = bool(args.tiny)
    out = args.out or (
        Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    )
    if args.work_dir is not None:
        work = args.work_dir
    elif tiny:
        work = Path(tempfile.mkdtemp(prefix="berth-gpu-tiny-"))
    else:
        work = default_work_dir()
    settings = Settings(
        tiny=tiny,
        budget_s=args.budget_s,
        prompt_tokens=args.prompt_tokens or (64 if tiny else 2048),
        new_tokens=args.new_tokens or (16 if tiny else 256),
        compare_new_tokens=args.compare_new_tokens or (8 if tiny else 16),
        max_time_s=args.max_time_s,
        gpu_budget_bytes=int(args.gpu_budget_gib * GiB),
        cpu_budget_bytes=int(args.cpu_budget_gib * GiB),
        models=models,
        out_dir=out,
        work_dir=work,
    )
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    settings, args = parse_settings(argv)
    if args.child is not None:
        return child_main(args.child)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for key, value in child_env(settings).items():
        os.environ.setdefault(key, value)
    try:
        run(settings)
    finally:
        if settings.tiny and args.work_dir is None:
            shutil.rmtree(settings.work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
