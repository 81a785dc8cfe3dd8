"""Which runtime runs a launch, and loading through it: transformers (launcher.run.load) for safetensors, sharding,
bitsandbytes and offload; llama.cpp (launcher.run.llamacpp) for a local GGUF file, run quantized as stored.

Light: torch, transformers and llama_cpp are imported only by the loader that is used. `request_for` puts a
GGUF file's tensor table into the PlanRequest (the planner then chooses llama.cpp, unless transformers is asked
for), so `berth plan`, `berth launch` and the app plan the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.machine.host import HostSnapshot
from launcher.plan.gguf import weights_from_header
from launcher.plan.ladder import plan_or_raise
from launcher.plan.request import Plan, PlanRequest
from launcher.run.source import ModelSource
from registry.gguf_file import read_gguf_header
from registry.schema import Accelerator

if TYPE_CHECKING:
    from typing import TypeAlias

    from launcher.run.llamacpp import LlamaCppModel
    from launcher.run.load import LoadedModel, LoadOptions

    #: A model loaded by either runtime: both have plan, card, meter, load_peak, measurement() and close().
    Loaded: TypeAlias = LoadedModel | LlamaCppModel


def request_for(source: ModelSource, request: PlanRequest) -> PlanRequest:
    """The request with the GGUF file's weights when the source is a local GGUF file (read from its header)."""
    if source.kind != "gguf" or source.path is None or request.gguf is not None:
        return request
    weights = weights_from_header(read_gguf_header(source.path), source.path.name)
    return replace(request, gguf=weights)


def plan_for(
    source: ModelSource, host: HostSnapshot, request: PlanRequest, accelerators: Sequence[Accelerator] = ()
) -> Plan:
    """The plan a launch of this source loads with (DoesNotFitError when nothing fits)."""
    return plan_or_raise(source.card, host, request_for(source, request), accelerators)


def load(
    source: ModelSource,
    host: HostSnapshot,
    request: PlanRequest,
    options: LoadOptions | None = None,
    accelerators: Sequence[Accelerator] = (),
    notify: Callable[[str], None] | None = None,
    files: Path | None = None,
) -> Loaded:
    """Plan and load with the runtime the plan chooses; both results open sessions with `open_session`."""
    request = request_for(source, request)
    plan = plan_or_raise(source.card, host, request, accelerators)
    if plan.runtime == "llama.cpp":
        from launcher.run.llamacpp import load_gguf

        progress: Any = options.on_progress if options is not None else None
        return load_gguf(source, host, request, notify, progress, accelerators, plan)
    from launcher.run.load import load_model

    return load_model(source, host, request, options, tuple(accelerators), notify, files)
