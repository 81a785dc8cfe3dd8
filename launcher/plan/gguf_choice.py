"""Which quant file of a Hub GGUF repository to run (pure): the largest whose llama.cpp plan fits best.

Given the repository's [(filename, size_bytes)] (H6's Hub listing), every quant file is planned from its size
(`weights_from_size`), largest first. With a GPU the largest file that runs wholly on it wins, else the largest
that fits split between GPU and RAM; without one, the largest that fits in RAM. The plan says which file was
picked and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from launcher.display import gib
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError
from launcher.plan.gguf import QuantFile, quant_files, weights_from_size
from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan, PlanRequest
from registry.schema import Accelerator, ModelCard

#: Preference among the strategies a llama.cpp plan can have: all on the GPU, split, then the CPU alone.
_PREFERENCE = {"gpu": 0, "offload": 1, "cpu": 2}


def choose_quant_file(
    card: ModelCard,
    files: Sequence[tuple[str, int]],
    host: HostSnapshot,
    request: PlanRequest | None = None,
    accelerators: Sequence[Accelerator] = (),
    planner: Callable[..., Plan | DoesNotFitError] = make_plan,
    explain: bool = False,
) -> tuple[QuantFile, Plan] | DoesNotFitError:
    """The quant file to download and its plan, or why none fits. `planner` has make_plan's signature (the
    app passes its own); `explain` asks it for the plan's alternatives and reasons."""
    request = request or PlanRequest()
    candidates = quant_files(files)
    fitting: list[tuple[QuantFile, Plan]] = []
    for candidate in candidates:
        weights = weights_from_size(card, candidate.file_name, candidate.size_bytes)
        result = planner(card, host, replace(request, gguf=weights), accelerators, explain=explain)
        if isinstance(result, Plan):
            fitting.append((candidate, result))
    if not fitting:
        smallest = candidates[-1] if candidates else None
        return DoesNotFitError(
            card.id,
            smallest.size_bytes if smallest else 0,
            host.ram_available_bytes,
            ["a shorter context (--context 2048)", "a smaller quantization, or a machine with more memory"],
            detail=f"tried {', '.join(c.quantization for c in candidates) or 'no GGUF files'}",
        )
    best = min(_PREFERENCE[plan.strategy] for _, plan in fitting)
    chosen, plan = next((q, p) for q, p in fitting if _PREFERENCE[p.strategy] == best)
    larger = [c for c in candidates if c.size_bytes > chosen.size_bytes]
    why = (
        f"quant file: {chosen.file_name} ({chosen.quantization}, {gib(chosen.size_bytes)}), the largest of "
        f"{len(candidates)} that runs {_where(plan)}"
        + (f"; larger ones do not: {', '.join(c.quantization for c in larger)}" if larger else "")
    )
    return chosen, replace(plan, reasons=(why, *plan.reasons))


def _where(plan: Plan) -> str:
    return {"gpu": "wholly on the GPU", "offload": "split between GPU and RAM", "cpu": "in RAM"}[
        plan.strategy
    ]
