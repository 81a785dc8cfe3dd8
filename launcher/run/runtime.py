"""Which runtime runs a launch, and loading through it: transformers (launcher.run.load) for safetensors, sharding,
bitsandbytes and offload; llama.cpp (launcher.run.llamacpp) for a local GGUF file, run quantized as stored.

Light: torch, transformers and llama_cpp are imported only by the loader that is used. `request_for` puts a
GGUF file's tensor table into the PlanRequest (the planner then chooses llama.cpp, unless transformers is asked
for), so `berth plan`, `berth launch` and the app plan the same thing; `entry_gguf` reads the same table for a
catalog entry added from a local GGUF file, so `berth list` and Browse rows show that llama.cpp plan too.
`plan_source` plans a Hub repository of GGUF files for its best quant file, and `local_gguf_source` downloads
only that file before the launch loads it as a local one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError
from launcher.plan.gguf import GgufWeights, weights_from_header
from launcher.plan.gguf_choice import choose_quant_file
from launcher.plan.ladder import make_plan, plan_or_raise
from launcher.plan.request import Plan, PlanRequest
from launcher.run.source import ModelSource, local_files
from registry.errors import BerthError
from registry.gguf_file import read_gguf_header
from registry.schema import Accelerator, ModelCard

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


def entry_gguf(card: ModelCard) -> GgufWeights | None:
    """The tensor table of the GGUF file a catalog entry added from a local file points at (what `request_for`
    reads when that entry is launched); None for other entries, or when the file is gone or unreadable (the
    launch then says why). Read once per file while its size and modification time stay the same."""
    if card.weight_format != "gguf":
        return None
    path = local_files(card)
    if path is None or not path.is_file():
        return None
    try:
        stat = path.stat()
        return _file_weights(path, stat.st_size, stat.st_mtime_ns)
    except (BerthError, OSError):
        return None


def gguf_entries(cards: Iterable[ModelCard]) -> dict[str, GgufWeights]:
    """`entry_gguf` for every card that has a readable local GGUF file, by id (what `plan_all` takes)."""
    found = {}
    for card in cards:
        weights = entry_gguf(card) if card.weight_format == "gguf" else None
        if weights is not None:
            found[card.id] = weights
    return found


@lru_cache(maxsize=64)
def _file_weights(path: Path, size: int, mtime_ns: int) -> GgufWeights:  # noqa: ARG001 (the cache's key)
    return weights_from_header(read_gguf_header(path), path.name)


def hub_gguf_listing(source: ModelSource) -> list[tuple[str, int]]:
    """The GGUF files (name, bytes) of a Hub repository read on demand that holds only GGUF weights, for
    choose_quant_file; [] for every other source."""
    if source.kind != "hub" or source.hub is None or source.card.weight_format != "gguf":
        return []
    return [(f.name, f.size) for f in source.hub.gguf_files if f.size]


def plan_source(
    source: ModelSource,
    host: HostSnapshot,
    request: PlanRequest,
    accelerators: Sequence[Accelerator] = (),
    explain: bool = True,
) -> Plan | DoesNotFitError:
    """The plan for a source: a Hub GGUF repository runs its best quant file with llama.cpp (the largest that
    fits, planned from the file sizes: launcher.plan.gguf_choice), a local GGUF file its own tensors (read from
    its header), anything else what its card says."""
    files = hub_gguf_listing(source)
    if files:
        picked = choose_quant_file(source.card, files, host, request, accelerators, explain=explain)
        return picked if isinstance(picked, DoesNotFitError) else picked[1]
    return make_plan(source.card, host, request_for(source, request), accelerators, explain=explain)


def local_gguf_source(source: ModelSource, plan: Plan, tqdm_class: Any = None) -> ModelSource:
    """A Hub GGUF repository's source with the plan's quant file (every part of a split file) downloaded into
    the Hugging Face cache: a local GGUF source, loaded and measured like `--gguf FILE`."""
    from launcher.run.download import fetch_gguf

    assert plan.llama_cpp is not None, "a Hub GGUF plan names its quant file"
    path = fetch_gguf(source.card, plan.llama_cpp.file_name, tqdm_class=tqdm_class)
    return replace(source, kind="gguf", path=path)


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
