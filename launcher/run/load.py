"""Load a model exactly as its plan says, check that it landed there, step down the ladder when memory runs out.

The only launcher module (with session.py) that imports torch and transformers at module level; the CLI imports
it lazily. `from_pretrained_kwargs` turns a Plan into from_pretrained's arguments (dtype, device_map,
offload_folder, quantization_config); `load_model` fetches the files, enforces the safety rules (no remote code
unless asked for this launch, no pickle weights unless allowed), loads with a progress bar through transformers'
tqdm hook, compares `hf_device_map` with the plan, and on out-of-memory frees what was loaded, re-plans without
the failed rung (and with what it learned about that device's memory) and tries again.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from launcher import display
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError
from launcher.plan.ladder import plan_or_raise
from launcher.plan.measured import Measurement
from launcher.plan.placement import RAM_HEADROOM_BYTES
from launcher.plan.request import Plan, PlanRequest
from launcher.run.errors import (
    LoadError,
    MemoryBudgetExceeded,
    OutOfMemoryError,
    RemoteCodeRefusedError,
    UnsafePickleError,
    UnsafeWeightsError,
)
from launcher.run.measure import (
    MemoryGuard,
    MemoryMeter,
    PhasePeak,
    estimated_devices,
    launch_measurement,
    nvml_used_bytes,
)
from launcher.run.source import ModelSource
from registry.errors import short_text
from registry.importer import weight_files
from registry.memory import CUDA_RUNTIME_BYTES
from registry.params import LINEAR_SUBCLASS_FAMILIES
from registry.schema import Accelerator, ModelCard
from registry.userdirs import data_dir

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
#: Share of the memory a device really held when it ran out that the next plan may count on.
LEARNED_MEMORY_FRACTION = 0.9
#: The progress bar transformers opens while it moves weights into the model.
LOADING_BAR = "Loading weights"

Notify = Callable[[str], None]
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class LoadOptions:
    """How to load, beyond what the plan decides."""

    trust_remote_code: bool = False
    """Run code from the model's repository (only when the user asked for this launch)."""
    allow_pickle: bool = False
    """Accept pickle (.bin/.pt) weights when a model has no safetensors."""
    memory_limits: Mapping[int | str, int] | None = None
    """Hard caps enforced while loading: GPU index -> bytes (torch's per-process fraction), 'cpu' -> bytes of
    resident memory the process may add. Going over is handled as running out of memory."""
    offload_dir: Path | None = None
    """Folder for disk-offloaded weights (default: a fresh folder under Berth's data folder)."""
    max_attempts: int = 4
    """Rungs tried before giving up after out-of-memory errors."""
    show_progress: bool = True
    """Draw transformers' progress bars on stderr."""
    on_progress: Progress | None = None
    """Called with (description, done, total) as weights load (for a TUI)."""


@dataclass(frozen=True)
class LoadAttempt:
    """One rung tried: its plan and, when it failed, why."""

    plan: Plan
    error: str | None = None
    seconds: float = 0.0


@dataclass
class LoadedModel:
    """A model in memory, the plan it was loaded with, and what loading really used."""

    source: ModelSource
    card: ModelCard
    plan: Plan
    host: HostSnapshot
    model: Any
    tokenizer: Any
    attempts: tuple[LoadAttempt, ...]
    device_map_differences: tuple[str, ...]
    load_seconds: float
    load_peak: PhasePeak
    meter: MemoryMeter
    files: Path
    offload_dir: Path | None = None
    _cleanup: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def context(self) -> int:
        """Context length the plan reserved memory for."""
        return self.plan.context

    def measurement(
        self,
        tokens_used: int,
        time_to_first_token_s: float | None = None,
        tokens_per_s: float | None = None,
    ) -> Measurement:
        """What this launch used since `meter.phase()` was last called, beside the estimate at `tokens_used`."""
        peak = self.meter.peak()
        estimated = estimated_devices(self.card, self.plan, tokens_used)
        measured = {k: v for k, v in peak.devices.items() if k in estimated}
        nvml = nvml_used_bytes() if self.plan.uses_gpu else {}
        return launch_measurement(
            self,
            tokens_used,
            measured,
            estimated,
            {f"cuda:{i}.nvml_used": v for i, v in nvml.items()},
            time_to_first_token_s,
            tokens_per_s,
            estimated_tokens_per_s=self.plan.speed.decode_tokens_per_s,
        )

    def close(self) -> None:
        """Free the model's memory and remove a temporary offload folder."""
        self.model = None
        self.tokenizer = None
        _free_memory()
        while self._cleanup:
            self._cleanup.pop()()


# --------------------------------------------------------------------------- plan -> from_pretrained


def device_map_argument(plan: Plan) -> dict[str, int | str]:
    """The plan's device map as from_pretrained takes it (whole-model maps stay {'': device})."""
    return dict(plan.device_map)


def from_pretrained_kwargs(
    plan: Plan,
    source: ModelSource,
    options: LoadOptions,
    offload_dir: Path | None = None,
) -> dict[str, Any]:
    """from_pretrained's arguments for this plan: the same choices `berth plan --emit python` prints."""
    kwargs: dict[str, Any] = {
        "dtype": TORCH_DTYPES[plan.precision.dtype],
        "device_map": device_map_argument(plan),
        "trust_remote_code": options.trust_remote_code,
    }
    if "disk" in set(plan.device_map.values()):
        kwargs["offload_folder"] = str(offload_dir) if offload_dir else None
    quant = plan.precision.quant
    if quant is not None:
        from transformers import BitsAndBytesConfig

        if quant == "int8":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=plan.offloaded
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=quant,
                bnb_4bit_compute_dtype=TORCH_DTYPES[plan.precision.dtype],
                bnb_4bit_use_double_quant=True,
            )
    if source.kind == "gguf":
        assert source.path is not None
        kwargs["gguf_file"] = source.path.name
    else:
        kwargs["use_safetensors"] = source.weight_format != "pickle"
    return kwargs


@contextlib.contextmanager
def _plain_linear_for(card: ModelCard, quantized: bool) -> Iterator[None]:
    """Falcon builds FalconLinear (an nn.Linear subclass bitsandbytes skips): use nn.Linear while quantizing."""
    if not quantized or card.model_type not in LINEAR_SUBCLASS_FAMILIES:
        yield
        return
    from transformers.models.falcon import modeling_falcon

    original = modeling_falcon.FalconLinear
    modeling_falcon.FalconLinear = torch.nn.Linear  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        modeling_falcon.FalconLinear = original  # type: ignore[misc]


# --------------------------------------------------------------------------- device map check


def _device_name(device: Any) -> str:
    if isinstance(device, int):
        return f"cuda:{device}"
    text = str(device)
    return f"cuda:{text}" if text.isdigit() else text


def _lookup(device_map: Mapping[str, Any], name: str) -> str | None:
    best: tuple[int, Any] | None = None
    for key, device in device_map.items():
        covers = key == "" or name == key or name.startswith(key + ".")
        if covers and (best is None or len(key) > best[0]):
            best = (len(key), device)
    return _device_name(best[1]) if best is not None else None


def actual_device_map(model: Any) -> dict[str, Any]:
    """Where the model's blocks are: `hf_device_map` when transformers dispatched it, else the one device that
    holds every parameter (transformers sets no map for a single-device load)."""
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        return dict(device_map)
    devices = {p.device for p in model.parameters()} | {b.device for b in model.buffers()}
    if len(devices) == 1:
        device = next(iter(devices))
        return {"": device.index if device.type == "cuda" else device.type}
    return {
        name: next(iter({p.device for p in module.parameters()} or {torch.device("cpu")})).type
        for name, module in model.named_children()
    }


def compare_device_maps(planned: Mapping[str, Any], actual: Mapping[str, Any] | None) -> list[str]:
    """Blocks whose device differs between the plan and where the model was loaded, in words."""
    if not actual:
        return ["transformers reported no device map"]
    names = sorted({k for k in (*planned, *actual) if k}, key=_natural) or [""]
    differences = []
    for name in names:
        want, got = _lookup(planned, name), _lookup(actual, name)
        if want is not None and got is not None and want != got:
            differences.append(f"{name or 'model'}: planned on {want}, loaded on {got}")
    return differences


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------- out of memory


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception means a device ran out of memory."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    if isinstance(error, RuntimeError):
        text = str(error).lower()
        return any(s in text for s in ("out of memory", "can't allocate memory", "not enough memory"))
    return False


def _failed_device(error: BaseException, plan: Plan) -> str:
    if isinstance(error, MemoryBudgetExceeded):
        return error.device
    match = re.search(r"GPU (\d+)", str(error))
    if match:
        return match.group(1)
    if plan.uses_gpu:
        first = next((p.device for p in plan.placements if p.device.startswith("cuda:")), None)
        return first.split(":")[1] if first else "0"  # Apple's GPU (mps) is GPU 0 of its snapshot
    return "cpu"


def _learned_cap(device: str, peak: PhasePeak) -> int:
    """What the failed device can be counted on to hold next time (in the planner's free-memory terms)."""
    if device == "cpu":
        held = peak.devices.get("cpu", 0)
        return int(held * LEARNED_MEMORY_FRACTION) + RAM_HEADROOM_BYTES
    held = peak.devices.get(f"cuda:{device}", 0)
    return int(held * LEARNED_MEMORY_FRACTION) + CUDA_RUNTIME_BYTES


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if _mps_available():
        torch.mps.empty_cache()


def _mps_available() -> bool:
    """Whether this torch can run on Apple's GPU (a macOS arm64 build on Apple silicon)."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


# --------------------------------------------------------------------------- progress


class _Bar:
    """Wraps transformers' "Loading weights" bar: reports progress and enforces the memory guard per tensor."""

    def __init__(self, bar: Any, guard: MemoryGuard, on_progress: Progress | None, desc: str) -> None:
        self._bar = bar
        self._guard = guard
        self._on_progress = on_progress
        self._desc = desc
        self._done = 0

    def _step(self, n: int) -> None:
        self._done += n
        if self._on_progress is not None:
            self._on_progress(self._desc, self._done, getattr(self._bar, "total", None))
        self._guard.check()

    def __iter__(self) -> Iterator[Any]:
        for item in self._bar:
            self._step(1)
            yield item

    def update(self, n: int = 1) -> Any:
        self._step(n)
        return self._bar.update(n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._bar, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bar, name)


@contextlib.contextmanager
def _progress_hook(guard: MemoryGuard, options: LoadOptions) -> Iterator[None]:
    def hook(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kwargs = dict(kwargs)
        if not options.show_progress:
            kwargs["disable"] = True
        kwargs.setdefault("file", sys.stderr)
        bar = factory(*args, **kwargs)
        desc = str(kwargs.get("desc") or "")
        if desc == LOADING_BAR or options.on_progress is not None:
            return _Bar(bar, guard, options.on_progress, desc)
        return bar

    previous = transformers.utils.logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        transformers.utils.logging.set_tqdm_hook(previous)


# --------------------------------------------------------------------------- loading


def check_safety(source: ModelSource, options: LoadOptions) -> None:
    """Refuse remote code without --trust-remote-code and pickle-only weights without --allow-pickle."""
    card = source.card
    if card.remote_code and not options.trust_remote_code:
        raise RemoteCodeRefusedError(card.id)
    if source.kind == "dir" and source.path is not None:
        files = weight_files(source.path)
        if files.format == "pickle" and not options.allow_pickle:
            raise UnsafeWeightsError(card.id, [p.name for p in files.pickle])
    elif source.kind == "hub" and card.weight_format == "pickle" and not options.allow_pickle:
        raise UnsafeWeightsError(card.id, ["pytorch_model*.bin"])


def fetch_files(
    source: ModelSource,
    options: LoadOptions,
    environ: Mapping[str, str] | None = None,
    tqdm_class: Any = None,
) -> Path:
    """The folder transformers loads from: downloaded into the Hub cache, or the local folder as given."""
    if source.kind == "hub":
        from launcher.run.download import fetch

        folder, _ = fetch(source.card, options.allow_pickle, options.trust_remote_code, environ, tqdm_class)
        return folder
    assert source.path is not None
    return source.path.parent if source.kind == "gguf" else source.path


def _apply_gpu_limits(limits: Mapping[int | str, int] | None) -> None:
    if not limits or not torch.cuda.is_available():
        return
    for key, value in limits.items():
        if str(key).isdigit():
            index = int(key)
            total = torch.cuda.get_device_properties(index).total_memory
            torch.cuda.set_per_process_memory_fraction(min(value / total, 1.0), index)


def load_model(
    source: ModelSource,
    host: HostSnapshot,
    request: PlanRequest | None = None,
    options: LoadOptions | None = None,
    accelerators: tuple[Accelerator, ...] | list[Accelerator] = (),
    notify: Notify | None = None,
    files: Path | None = None,
) -> LoadedModel:
    """Plan, fetch, load and check; on out-of-memory step down the ladder. `files` skips fetching."""
    options = options or LoadOptions()
    request = request or PlanRequest()
    say = notify or (lambda _message: None)
    check_safety(source, options)
    if source.kind == "gguf" and request.allow_disk:
        request = replace(request, allow_disk=False)  # transformers cannot disk-offload GGUF weights
    folder = files if files is not None else fetch_files(source, options)
    offload_dir, cleanup = _offload_dir(options)
    _apply_gpu_limits(options.memory_limits)
    meter = MemoryMeter()
    cpu_limit = options.memory_limits.get("cpu") if options.memory_limits else None
    ladder = _Ladder(
        source, host, accelerators, options, folder, offload_dir, meter, MemoryGuard(meter, cpu_limit), say
    )
    start = time.perf_counter()
    try:
        plan, model, load_peak = ladder.load(request)
        tokenizer = _load_tokenizer(source, folder, options)
        differences = tuple(compare_device_maps(plan.device_map, actual_device_map(model)))
        for line in differences:
            say(f"device map differs from the plan: {line}")
        kept_offload_dir: Path | None = offload_dir
        if "disk" not in set(plan.device_map.values()) and cleanup:
            cleanup.pop()()
            kept_offload_dir = None
        loaded = LoadedModel(
            source=source,
            card=source.card,
            plan=plan,
            host=host,
            model=model,
            tokenizer=tokenizer,
            attempts=tuple(ladder.attempts),
            device_map_differences=differences,
            load_seconds=time.perf_counter() - start,
            load_peak=load_peak,
            meter=meter,
            files=folder,
            offload_dir=kept_offload_dir,
        )
        loaded._cleanup.extend(cleanup)
        return loaded
    except BaseException:
        for fn in cleanup:  # nothing loaded: remove the offload folder made for it
            fn()
        raise


@dataclass
class _Ladder:
    """What every try of one load_model call shares: the files, options, meter and offload folder, and the
    tries made so far."""

    source: ModelSource
    host: HostSnapshot
    accelerators: Sequence[Accelerator]
    options: LoadOptions
    folder: Path
    offload_dir: Path
    meter: MemoryMeter
    guard: MemoryGuard
    say: Notify
    attempts: list[LoadAttempt] = field(default_factory=list)

    def load(self, request: PlanRequest) -> tuple[Plan, Any, PhasePeak]:
        """The plan, the model and the load's memory peak of the first try that does not run out of memory,
        stepping down the ladder after each that does (at most `options.max_attempts` tries)."""
        card = self.source.card
        for _ in range(max(self.options.max_attempts, 1)):
            plan = _next_plan(card, self.host, request, self.accelerators, self.attempts)
            _check_devices(card, plan)
            self.say(f"Loading {card.id}: {plan.summary}")
            self.meter.phase()
            began = time.perf_counter()
            try:
                model = _load_once(
                    card, plan, self.source, self.folder, self.options, self.offload_dir, self.guard
                )
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                peak = self.meter.peak()
                request = _after_out_of_memory(error, plan, request, peak, began, self.attempts, self.say)
                continue
            load_peak = self.meter.peak()
            self.attempts.append(LoadAttempt(plan, None, time.perf_counter() - began))
            return plan, model, load_peak
        raise OutOfMemoryError(card.id, [_attempt_line(a) for a in self.attempts])


def _offload_dir(options: LoadOptions) -> tuple[Path, list[Callable[[], None]]]:
    """The folder disk-offloaded weights go to: the one asked for, else a fresh temporary one (with its cleanup)."""
    if options.offload_dir is not None:
        return options.offload_dir, []
    base = data_dir() / "offload"
    base.mkdir(parents=True, exist_ok=True)
    temp = tempfile.TemporaryDirectory(prefix="berth-", dir=base)
    return Path(temp.name), [temp.cleanup]


def _next_plan(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest,
    accelerators: Sequence[Accelerator],
    attempts: list[LoadAttempt],
) -> Plan:
    """The plan for this try; once a try has run out of memory, nothing left to fit is OutOfMemoryError."""
    try:
        return plan_or_raise(card, host, request, accelerators)
    except DoesNotFitError as error:
        if not attempts:
            raise
        raise OutOfMemoryError(
            card.id,
            [_attempt_line(a) for a in attempts] + [f"nothing else fits ({error.detail or error})"],
        ) from None


def _after_out_of_memory(
    error: BaseException,
    plan: Plan,
    request: PlanRequest,
    peak: PhasePeak,
    began: float,
    attempts: list[LoadAttempt],
    say: Notify,
) -> PlanRequest:
    """Free what the failed try left, record it, and return the request one rung down with the device that
    ran out capped at what it held (`peak`)."""
    _free_memory()
    device = _failed_device(error, plan)
    attempts.append(LoadAttempt(plan, _describe_oom(error, device), time.perf_counter() - began))
    cap = _learned_cap(device, peak)
    key: int | str = int(device) if device.isdigit() else device
    caps = dict(request.max_memory or {})
    caps[key] = min(caps.get(key, cap), cap)
    say(
        f"{plan.precision.label} on {_where(plan)} ran out of memory ({attempts[-1].error}); "
        f"freed it and stepping down the ladder, counting on {display.gib(cap)} there"
    )
    return replace(
        request,
        exclude=(*request.exclude, (plan.strategy, plan.precision.label)),
        max_memory=caps,
    )


def _check_devices(card: ModelCard, plan: Plan) -> None:
    """A plan for GPUs this process cannot see (named hardware, a CPU-only torch) cannot be loaded here."""
    if any(p.device == "mps" for p in plan.placements) and not _mps_available():
        raise LoadError(
            card.id,
            "the plan runs on Apple's GPU (mps), but torch here has no MPS backend "
            "(not a Mac with Apple silicon, or a torch build without MPS)",
            hint="drop --hardware to plan for this machine; on a Mac, install torch's macOS arm64 build",
        )
    wanted = [int(p.device.split(":")[1]) for p in plan.placements if p.device.startswith("cuda:")]
    if not wanted:
        return
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [i for i in wanted if i >= visible]
    if missing:
        raise LoadError(
            card.id,
            f"the plan puts layers on GPU {', '.join(map(str, missing))}, but torch here sees "
            + (f"{visible} CUDA GPU(s)" if visible else "no CUDA GPU (a CPU-only torch, or no driver)"),
            hint="drop --hardware to plan for this machine, or install a CUDA build of torch",
        )


def _where(plan: Plan) -> str:
    return " + ".join(p.label for p in plan.placements)


def _attempt_line(attempt: LoadAttempt) -> str:
    return f"{attempt.plan.precision.label} on {_where(attempt.plan)}: {attempt.error or 'loaded'}"


def _describe_oom(error: BaseException, device: str) -> str:
    if isinstance(error, MemoryBudgetExceeded):
        return (
            f"grew by {display.gib(error.used_bytes)}, over the {display.gib(error.limit_bytes)} cap on "
            f"{error.device.upper() if error.device == 'cpu' else error.device}"
        )
    name = "CPU RAM" if device == "cpu" else f"GPU {device}"
    return f"{name}: {str(error).splitlines()[0][:160]}"


def _load_once(
    card: ModelCard,
    plan: Plan,
    source: ModelSource,
    folder: Path,
    options: LoadOptions,
    offload_dir: Path,
    guard: MemoryGuard,
) -> Any:
    auto = AutoModelForMaskedLM if card.task == "fill-mask" else AutoModelForCausalLM
    kwargs = from_pretrained_kwargs(plan, source, options, offload_dir)
    try:
        with _progress_hook(guard, options), _plain_linear_for(card, plan.precision.quant is not None):
            return auto.from_pretrained(str(folder), **kwargs)
    except pickle.UnpicklingError as error:  # torch.load(weights_only=True) refused to build something
        files = [p.name for p in weight_files(folder).pickle]
        raise UnsafePickleError(card.id, files, _unpickling_reason(error)) from None


#: Lines of PyTorch's weights_only refusal that say nothing about this file.
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _unpickling_reason(error: BaseException) -> str:
    """PyTorch's reason for refusing a pickle, in one short line ('… unsupported GLOBAL posix.system …')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    reason = (specific or lines or [type(error).__name__])[0].removeprefix("WeightsUnpickler error:").strip()
    return short_text(reason, 160)


def _load_tokenizer(source: ModelSource, folder: Path, options: LoadOptions) -> Any:
    kwargs: dict[str, Any] = {"trust_remote_code": options.trust_remote_code}
    if source.kind == "gguf":
        assert source.path is not None
        kwargs["gguf_file"] = source.path.name
    try:
        return AutoTokenizer.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as error:
        raise LoadError(
            source.card.id,
            f"the tokenizer of {source.card.id} could not be loaded from {folder}: {error}",
            hint="a model folder needs its tokenizer files (tokenizer.json or vocab files) beside config.json",
        ) from error
