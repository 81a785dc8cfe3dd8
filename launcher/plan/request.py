"""What a plan is asked for (PlanRequest) and what it answers (Plan): the planner's types, no decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from launcher.plan.placement import Placement, Strategy
from launcher.plan.speed import SpeedEstimate
from registry.memory import Precision, Quant
from registry.schema import Dtype

#: Context used when the request gives none (capped at the model's maximum).
DEFAULT_CONTEXT = 4096
#: Below this decode speed (one token every 10 s) an offload plan is not offered unless asked for.
MIN_USABLE_TOKENS_PER_S = 0.1


@dataclass(frozen=True)
class PlanRequest:
    """What the user asks for; None means 'choose for me'."""

    context: int | None = None
    batch: int = 1
    dtype: Dtype | None = None
    quant: Quant | Literal["none"] | None = None
    """Force a bitsandbytes quantization, or 'none' to rule quantization out."""
    gpus: tuple[int, ...] | None = None
    """Use only these GPU indexes (node 0)."""
    device: Literal["auto", "gpu", "cpu"] = "auto"
    allow_offload: bool = True
    """Whether layers may live in RAM or on disk behind the GPUs."""
    allow_disk: bool = True
    allow_slow: bool = False
    """Offer offload plans slower than MIN_USABLE_TOKENS_PER_S."""
    prompt_tokens: int | None = None
    """Prompt length behind the time-to-first-token estimate."""
    max_memory: Mapping[int | str, int] | None = None
    """Memory this process may use per device (GPU index, 'cpu', 'disk'), in place of what the host reports
    free when that is more: how a user caps a launch, and what the loader learns after running out of memory."""
    exclude: tuple[tuple[Strategy, str], ...] = ()
    """Rungs to skip, as (strategy, precision label) pairs: the loader's way down the ladder after one ran out
    of memory on this machine."""


@dataclass(frozen=True)
class Plan:
    """How to run one model on one host."""

    model_id: str
    strategy: Strategy
    precision: Precision
    context: int
    batch: int
    placements: tuple[Placement, ...]
    speed: SpeedEstimate
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    host_label: str
    device_map: dict[str, int | str] = field(default_factory=dict)
    """accelerate device map: block name -> GPU index, 'cpu' or 'disk'."""

    @property
    def required_bytes(self) -> int:
        """Memory the plan uses over all devices."""
        return sum(p.used_bytes for p in self.placements)

    @property
    def max_memory(self) -> dict[int | str, int]:
        """Per-device weight budgets matching the device map (for from_pretrained's max_memory)."""
        budgets: dict[int | str, int] = {}
        for p in self.placements:
            key: int | str = int(p.device.split(":")[1]) if p.device.startswith("cuda:") else p.device
            budgets[key] = max(p.weights_budget_bytes, p.weights_bytes)
        return budgets

    @property
    def uses_gpu(self) -> bool:
        """Whether any block runs on a GPU (CUDA and ROCm devices are cuda:N in torch; Apple's GPU is mps)."""
        return any(p.device.startswith("cuda:") or p.device == "mps" for p in self.placements)

    @property
    def offloaded(self) -> bool:
        """Whether some weights live in RAM or on disk behind a GPU, or on disk behind the CPU."""
        devices = {p.device for p in self.placements}
        return "disk" in devices or (self.uses_gpu and "cpu" in devices)

    @property
    def summary(self) -> str:
        """One line: strategy, precision, devices."""
        gpus = [p.device.split(":")[1] for p in self.placements if p.device.startswith("cuda:")]
        parts = []
        if len(gpus) == 1:
            parts.append(f"GPU {gpus[0]}")
        elif gpus:
            parts.append(f"GPUs {gpus[0]}–{gpus[-1]}" if len(gpus) > 2 else f"GPUs {', '.join(gpus)}")
        parts += [p.label for p in self.placements if not p.device.startswith("cuda:")]
        return f"{self.precision.label} on {' + '.join(parts)}"
