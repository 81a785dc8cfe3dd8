"""How fast this CPU multiplies in each dtype: a batch-1 2048→8192 linear layer timed in fp32, bf16 and fp16
(torch, imported only here and only by `berth probe --measure`); remembered beside the CPU's bandwidth."""

from __future__ import annotations

import time
from typing import Any

from launcher.machine.errors import ProbeError

#: The layer timed: one token through a 2048→8192 projection (weights 64 MiB in fp32: more than a cache holds).
LINEAR_IN, LINEAR_OUT = 2048, 8192
DTYPES = ("float32", "bfloat16", "float16")
#: Calls per dtype after one warm-up; the best is kept (other programs only ever slow a call down).
LINEAR_CALLS = 200
#: Stop timing once this much time has gone (all dtypes together).
LINEAR_BUDGET_S = 5.0
METHOD = f"torch F.linear, batch 1, {LINEAR_IN}->{LINEAR_OUT}, best of up to {LINEAR_CALLS} calls"


def measure_linear(calls: int = LINEAR_CALLS, budget_s: float = LINEAR_BUDGET_S) -> dict[str, float]:
    """Seconds of one batch-1 linear layer per dtype (best call), for the dtypes this torch can run on a CPU.

    The dtypes take turns, call by call, so that load from other programs falls on all of them alike, and
    the best call of each counts (other programs only ever slow a call down)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        raise ProbeError("timing the CPU's dtypes needs torch", reading="cpu_dtypes") from error
    layers: dict[str, tuple[Any, Any]] = {}
    for name in DTYPES:
        dtype = getattr(torch, name)
        weight, x = torch.randn(LINEAR_OUT, LINEAR_IN).to(dtype), torch.randn(1, LINEAR_IN).to(dtype)
        try:
            F.linear(x, weight)  # warm-up: first-call dispatch and page faults
        except RuntimeError:  # a dtype this build has no CPU kernel for
            continue
        layers[name] = (x, weight)
    if not layers:
        raise ProbeError("no dtype could be timed on this CPU", reading="cpu_dtypes")
    best = dict.fromkeys(layers, float("inf"))
    start = time.perf_counter()
    for _ in range(calls):
        for name, (x, weight) in layers.items():
            began = time.perf_counter()
            F.linear(x, weight)
            best[name] = min(best[name], time.perf_counter() - began)
        if time.perf_counter() - start > budget_s:
            break
    return best
