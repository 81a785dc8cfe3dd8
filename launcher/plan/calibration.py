"""This machine's own launches correct its later estimates (pure; imports launcher.plan only): the ratio of
measured to estimated decode speed over recent launches of the same runtime on the same host, bounded, scales
the estimate for any model, and the plan says "calibrated from N launches here"."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from launcher.plan.measured import Measurement
from launcher.plan.speed import SpeedEstimate

#: A correction never moves an estimate by more than this factor either way: one odd launch (a busy machine,
#: a thermal throttle) must not turn a sound estimate into a wild one.
MAX_FACTOR = 2.0
#: Launches considered, newest first.
MAX_LAUNCHES = 10

#: Strategies that run the same way (and so share a correction): on GPUs alone, on the CPU alone, and each kind
#: of offload or quantization apart.
_RUNTIMES = {
    "gpu": "transformers on GPUs",
    "sharded": "transformers on GPUs",
    "cpu": "transformers on the CPU",
}


def runtime_of(strategy: str) -> str:
    """The runtime a plan's strategy stands for, for grouping launches."""
    return _RUNTIMES.get(strategy, f"transformers, {strategy}")


@dataclass(frozen=True)
class Calibration:
    """A bounded correction factor on decode estimates and the launches behind it."""

    factor: float
    launches: int
    runtime: str


def calibration_for(strategy: str, measurements: Sequence[Measurement]) -> Calibration | None:
    """The correction for plans of this strategy from this host's launches (same runtime, newest first), or
    None when no launch measured both speed and an estimate. The factor is the geometric median of measured /
    estimated, bounded to [1 / MAX_FACTOR, MAX_FACTOR]."""
    runtime = runtime_of(strategy)
    ratios = [
        m.tokens_per_s / m.estimated_tokens_per_s
        for m in measurements
        if runtime_of(m.strategy) == runtime and m.tokens_per_s and m.estimated_tokens_per_s
    ][:MAX_LAUNCHES]
    if not ratios:
        return None
    factor = math.exp(statistics.median(math.log(r) for r in ratios))
    return Calibration(min(max(factor, 1 / MAX_FACTOR), MAX_FACTOR), len(ratios), runtime)


def calibrated(speed: SpeedEstimate, calibration: Calibration | None) -> SpeedEstimate:
    """The estimate scaled by this host's correction, its basis saying so; unchanged without one."""
    if calibration is None:
        return speed
    plural = "launch" if calibration.launches == 1 else "launches"
    return replace(
        speed,
        decode_tokens_per_s=speed.decode_tokens_per_s * calibration.factor,
        basis=f"{speed.basis}; calibrated from {calibration.launches} {plural} here (x{calibration.factor:.2f})",
    )
