"""Berth's estimates against the readings: per-case error rows and the constants the readings imply, from the
report's JSON (pure; the only import is the estimate modules, read for their constants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

#: The transformers speed profile's figures the GPU run checks, as `constants_in_use` names them.
DECODE = "TRANSFORMERS_BATCH1.gpu_decode"
PREFILL = "TRANSFORMERS_BATCH1.gpu_prefill"
QUANT_FACTORS = "TRANSFORMERS_BATCH1.quant_decode"
PCIE = "TRANSFORMERS_BATCH1.pcie"


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


def implied_constants(
    cases: Sequence[Mapping[str, Any]], constants: Mapping[str, Any], pcie_bytes_per_s: int | None = None
) -> dict[str, Any]:
    """What the measurements say the speed and runtime constants should be (GPU cases only; per case).

    - TRANSFORMERS_BATCH1.gpu_decode: current x measured/estimated decode tokens/s of the bf16 single-GPU
      cases.
    - TRANSFORMERS_BATCH1.quant_decode[q]: current x (measured/estimated of the q case) / (measured/estimated
      of the same model's bf16 case), so the bf16 correction is not counted twice.
    - TRANSFORMERS_BATCH1.gpu_prefill: current x estimated/measured time to first token of the bf16 cases (a
      2,048-token prefill is compute-bound on these sizes).
    - CUDA_RUNTIME_BYTES: NVML used (minus before CUDA started) less torch's reserved, after loading.
    - TRANSFORMERS_BATCH1.pcie (rough, GPU time per token ignored): bytes of CPU-offloaded weights copied per
      token over the link's bandwidth, against the measured time per token, for the Berth offload case.
    """
    speed = constants.get("launcher.plan.speed", {})
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
        if case.get("mode") == "berth" and case.get("plan"):
            _implied_by_case(case, speed, pcie_bytes_per_s, ratio, out)
    for name, r in ratio.items():
        model, _, quant = name.partition("-")
        if quant in factors and f"{model}-bf16" in ratio:
            out[QUANT_FACTORS].setdefault(quant, {})[name] = factors[quant] * r / ratio[f"{model}-bf16"]
    return out


def _implied_by_case(
    case: Mapping[str, Any],
    speed: Mapping[str, Any],
    pcie_bytes_per_s: int | None,
    ratio: dict[str, float],
    out: dict[str, dict[str, Any]],
) -> None:
    """One Berth case's share of implied_constants: into `out` per constant, its measured/estimated decode
    speed into `ratio` (single-GPU cases)."""
    name, plan, gen = case["name"], case["plan"], case.get("generate") or {}
    estimated = plan.get("speed") or {}
    meas = gen.get("tokens_per_s")
    if plan.get("strategy") == "offload" and meas and pcie_bytes_per_s:
        copied = sum(p["weights_bytes"] for p in case["estimate"]["placements"] if p["device"] == "cpu")
        out[PCIE][name] = copied * meas / pcie_bytes_per_s
    if plan.get("strategy") not in ("gpu", "quantized"):
        return
    est = estimated.get("decode_tokens_per_s")
    if est and meas:
        ratio[name] = meas / est
    load = case.get("load") or {}
    nvml = (load.get("nvml_used_delta") or {}).get("cuda:0")
    reserved = ((load.get("torch") or {}).get("cuda:0") or {}).get("reserved")
    if nvml is not None and reserved is not None:
        out["CUDA_RUNTIME_BYTES"][name] = nvml - reserved
    if plan.get("precision") != "bf16":
        return
    eff, mfu = speed.get(DECODE), speed.get(PREFILL)
    if eff and name in ratio:
        out[DECODE][name] = eff * ratio[name]
    est_ttft, ttft = estimated.get("time_to_first_token_s"), gen.get("time_to_first_token_s")
    if mfu and est_ttft and ttft:
        out[PREFILL][name] = mfu * est_ttft / ttft


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
