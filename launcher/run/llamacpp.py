"""Run a GGUF file with llama.cpp (llama-cpp-python) exactly as its plan says, behind the session interface.

`load_gguf` gives `Llama(...)` the plan's choices (n_gpu_layers, n_ctx, KV cache type, flash attention,
threads = the host's physical cores) and returns a `LlamaCppModel`, which offers what the CLI and the TUI use
of a transformers `LoadedModel` (plan, card, meter, load peak, `measurement`, `close`) plus the session
backend. `LlamaCppBackend` renders the chat with the Jinja template stored in the GGUF file (as
llama-cpp-python's own chat completion does), streams token by token through `Llama.generate` (so the prompt
prefix a previous reply left in the KV cache is reused), and stops after the current token when asked.

Memory is measured as the process's resident growth over what it held before the load (llama.cpp's weights
are memory-mapped file pages, its KV cache and compute buffers plain allocations; on a GPU, NVML's used memory
grows by what llama.cpp put there). llama_cpp is imported only inside functions: without it installed,
loading raises LlamaCppMissingError (one paragraph: how to install it, or how to run the file through
transformers instead).
"""

from __future__ import annotations

import codecs
import contextlib
import importlib.util
import io
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from launcher.machine.host import HostSnapshot
from launcher.plan.ladder import plan_or_raise
from launcher.plan.llamacpp import LLAMACPP_LIBRARY_BYTES, compute_resident_bytes, context_bytes
from launcher.plan.measured import Measurement
from launcher.plan.request import Plan, PlanRequest
from launcher.run.errors import LlamaCppLoadError, LlamaCppMissingError, SessionInputError
from launcher.run.measure import MemoryMeter, PhasePeak, launch_measurement, nvml_used_bytes, rss_bytes
from launcher.run.session import Emit, Finished, FinishReason, Piece, Prompt, Turn
from launcher.run.source import ModelSource
from registry.schema import Task

Notify = Callable[[str], None]
Progress = Callable[[str, int, int | None], None]

#: GGML type ids of the KV cache types the planner chooses (ggml.h: GGML_TYPE_F16 = 1, Q4_0 = 2, Q8_0 = 8).
KV_GGML_TYPES: dict[str, int] = {"f16": 1, "q8_0": 8, "q4_0": 2}
#: Prompt tokens evaluated per step (llama-cpp-python's default, what the planner sizes buffers for).
N_BATCH = 512


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python is installed (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


# --------------------------------------------------------------------------- llama.cpp's log


@dataclass
class _Log:
    """llama.cpp's log lines of the current load (kept for error messages; never printed)."""

    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, text: str) -> None:
        with self.lock:
            self.lines.append(text)
            del self.lines[:-400]

    def tail(self, n: int = 3) -> str:
        with self.lock:
            wanted = [line.strip() for line in self.lines if line.strip()]
        errors = [line for line in wanted if "error" in line.lower() or "failed" in line.lower()]
        return " / ".join((errors or wanted)[-n:])


_LOG = _Log()
_LOG_CALLBACK: Any = None  # the ctypes callback, kept alive while llama.cpp may call it


def _route_log(llama_cpp: Any) -> None:
    """Send llama.cpp's log to Berth's buffer instead of stderr (once per process)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(_level: int, text: bytes, _user_data: Any) -> None:
        _LOG.add(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(callback, None)
    _LOG_CALLBACK = callback


def _import_llama_cpp(model_id: str, file_name: str) -> Any:
    if not llama_cpp_available():
        raise LlamaCppMissingError(model_id, file_name)
    import llama_cpp

    _route_log(llama_cpp)
    return llama_cpp


# --------------------------------------------------------------------------- the loaded model


@dataclass
class LlamaCppModel:
    """A GGUF file loaded in llama.cpp, the plan it was loaded with, and what loading really used."""

    source: ModelSource
    card: Any
    plan: Plan
    host: HostSnapshot
    llama: Any
    load_seconds: float
    load_peak: PhasePeak
    """'cpu': peak process RSS while loading (as for transformers)."""
    meter: MemoryMeter
    files: Path
    baseline_rss: int
    """Resident memory before the load (llama_cpp not yet imported when `library_in_baseline` is False)."""
    library_in_baseline: bool
    gpu_baseline: Mapping[int, int] = field(default_factory=dict)
    """NVML's used memory per GPU before the load."""
    attempts: tuple[Any, ...] = ()
    device_map_differences: tuple[str, ...] = ()
    offload_dir: Path | None = None
    runtime: str = "llama.cpp"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def context(self) -> int:
        """The context llama.cpp was made with (the plan's)."""
        return self.plan.context

    @property
    def model(self) -> Any:
        """The Llama object (None once closed)."""
        return self.llama

    @property
    def tokenizer(self) -> None:
        """llama.cpp tokenizes itself: there is no separate tokenizer object."""
        return None

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template stored in the file, if any."""
        if self.llama is None:
            return None
        template = self.llama.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    def session_task(self) -> Task:
        """chat when the file carries a chat template, else completion."""
        return "chat" if self.card.task == "chat" and self.chat_template else "completion"

    def session_backend(self) -> LlamaCppBackend:
        """The session backend over this model."""
        if self.llama is None:
            raise LlamaCppLoadError(self.card.id, f"{self.card.id} was closed")
        return LlamaCppBackend(self.llama, self.session_task(), self._lock)

    def estimated_growth(self, tokens: int) -> dict[str, int]:
        """The plan's memory per device as this process's growth over the load's start after a prompt of
        `tokens`: on the CPU its tensors, KV cache (allocated whole for the context), the context's own memory,
        the touched part of the compute buffer and, unless they were imported before, llama_cpp's libraries;
        on a GPU everything planned there (NVML's used memory includes the CUDA context and whole buffers)."""
        result: dict[str, int] = {}
        for p in self.plan.placements:
            if p.device != "cpu":
                result[p.device] = p.used_bytes
                continue
            library = 0 if self.library_in_baseline else LLAMACPP_LIBRARY_BYTES
            result["cpu"] = (
                p.weights_bytes
                + p.kv_cache_bytes
                + context_bytes(self.card)
                + compute_resident_bytes(self.card, tokens)
                + library
            )
        return result

    def measured_growth(self) -> dict[str, int]:
        """Growth since the load's start: peak RSS of the current phase less the RSS before loading, and each
        used GPU's NVML reading less its reading before."""
        peak = self.meter.peak().devices.get("cpu", 0)
        result = {"cpu": max(peak - self.baseline_rss, 0)}
        if self.plan.uses_gpu:
            for index, used in nvml_used_bytes().items():
                if f"cuda:{index}" in {p.device for p in self.plan.placements}:
                    result[f"cuda:{index}"] = max(used - self.gpu_baseline.get(index, 0), 0)
        return result

    def measurement(
        self,
        tokens_used: int,
        time_to_first_token_s: float | None = None,
        tokens_per_s: float | None = None,
    ) -> Measurement:
        """What this launch added to the process (peak since `meter.phase()`), beside the plan's estimate.

        llama.cpp allocates the whole KV cache for the context when it loads, so the estimate does not scale
        with `tokens_used` as a transformers cache does."""
        measured = self.measured_growth()
        return launch_measurement(
            self,
            tokens_used,
            measured,
            self.estimated_growth(tokens_used),
            {"cpu.process_peak": self.meter.peak().devices.get("cpu", 0)},
            time_to_first_token_s,
            tokens_per_s,
        )

    def close(self) -> None:
        """Free the model, its context and its KV cache."""
        with self._lock:
            llama, self.llama = self.llama, None
        if llama is not None:
            llama.close()


# --------------------------------------------------------------------------- loading


def llama_kwargs(plan: Plan, path: Path) -> dict[str, Any]:
    """`Llama(...)`'s arguments for this plan: what `berth plan --emit python` prints for a GGUF plan."""
    settings = plan.llama_cpp
    assert settings is not None, "not a llama.cpp plan"
    kv = KV_GGML_TYPES[settings.kv_cache_type]
    return {
        "model_path": str(path),
        "n_gpu_layers": settings.n_gpu_layers,
        "main_gpu": settings.main_gpu,
        "n_ctx": plan.context,
        "n_batch": N_BATCH,
        "n_threads": settings.n_threads,
        "n_threads_batch": settings.n_threads,
        "type_k": kv,
        "type_v": kv,
        "flash_attn": settings.flash_attn,
        "use_mmap": True,
        "verbose": False,
    }


def load_gguf(
    source: ModelSource,
    host: HostSnapshot,
    request: PlanRequest,
    notify: Notify | None = None,
    on_progress: Progress | None = None,
    accelerators: Sequence[Any] = (),
    plan: Plan | None = None,
) -> LlamaCppModel:
    """Plan (unless given) and load a GGUF file into llama.cpp; LlamaCppMissingError without llama-cpp-python."""
    say = notify or (lambda _message: None)
    assert source.path is not None and source.kind == "gguf", "llama.cpp loads local GGUF files"
    plan = plan or plan_or_raise(source.card, host, request, accelerators)
    library_in_baseline = "llama_cpp" in sys.modules
    meter = MemoryMeter()
    baseline = rss_bytes() or 0
    gpu_baseline = nvml_used_bytes() if plan.uses_gpu else {}
    started = time.perf_counter()
    llama_cpp = _import_llama_cpp(source.card.id, source.path.name)
    if plan.uses_gpu and not llama_cpp.llama_supports_gpu_offload():
        say(
            "this llama-cpp-python was built without GPU support, so the plan is redone for the CPU "
            "(reinstall it with CMAKE_ARGS=-DGGML_CUDA=on for NVIDIA GPUs)"
        )
        plan = plan_or_raise(source.card, host, replace(request, device="cpu"), accelerators)
    say(f"Loading {source.card.id} with llama.cpp: {plan.summary}")
    if on_progress is not None:
        on_progress("Loading weights", 0, 1)
    llama = _construct(llama_cpp, source, plan)
    if on_progress is not None:
        on_progress("Loading weights", 1, 1)
    load_peak = meter.peak()
    return LlamaCppModel(
        source=source,
        card=source.card,
        plan=plan,
        host=host,
        llama=llama,
        load_seconds=time.perf_counter() - started,
        load_peak=load_peak,
        meter=meter,
        files=source.path.parent,
        baseline_rss=baseline,
        library_in_baseline=library_in_baseline,
        gpu_baseline=gpu_baseline,
    )


def _construct(llama_cpp: Any, source: ModelSource, plan: Plan) -> Any:
    """`Llama(**llama_kwargs)`, its Python-level prints swallowed, llama.cpp's refusals as LlamaCppLoadError."""
    assert source.path is not None
    kwargs = llama_kwargs(plan, source.path)
    # verbose=False makes llama-cpp-python point file descriptors 1 and 2 at /dev/null while it loads, which
    # would blank a TUI drawing meanwhile: keep verbose on (llama.cpp's log goes to Berth's buffer) and swallow
    # the few lines llama-cpp-python prints itself.
    kwargs["verbose"] = True
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            llama = llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError, OSError) as error:
        detail = _LOG.tail() or str(error)
        raise LlamaCppLoadError(
            source.card.id,
            f"llama.cpp could not load {source.path.name}: {detail}",
            hint="check the file (a partial download?), or try --kv-cache q4_0 or a shorter --context if "
            "memory ran short",
        ) from None
    llama.verbose = False  # no per-reply prints on stderr
    return llama


# --------------------------------------------------------------------------- generation


class LlamaCppBackend:
    """Chat (the GGUF file's template) or plain completion with a llama.cpp model, streamed token by token."""

    def __init__(self, llama: Any, task: Task, lock: threading.Lock | None = None) -> None:
        self.llama = llama
        self.task: Task = task
        self.lock = lock or threading.Lock()
        self._formatter: Any = None

    def check(self, text: str) -> None:  # noqa: ARG002 - the Backend interface
        """Any text will do (llama.cpp models here are chat or completion models)."""
        if self.task == "fill-mask":
            raise SessionInputError("llama.cpp runs chat and completion models, not fill-mask")

    def run(self, prompt: Prompt, stop: threading.Event, emit: Emit) -> Finished:
        """Generate one reply."""
        with self.lock:
            if self.llama is None:
                raise LlamaCppLoadError("model", "the model was closed")
            tokens, dropped = self._encode(prompt)
            return self._generate(tokens, prompt, stop, emit, dropped)

    # ----------------------------------------------------------------- prompt

    def formatter(self) -> Any:
        """llama-cpp-python's Jinja2 chat formatter over the template in the file (what its chat completion
        uses for a GGUF template)."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama = self.llama
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        return self._formatter

    def render(self, messages: Sequence[Turn]) -> list[int]:
        """The prompt tokens of a conversation through the chat template (a system turn a template rejects
        is folded into the first user message)."""
        turns = [{"role": t.role, "content": t.content} for t in messages]
        try:
            result = self.formatter()(messages=turns)
        except Exception:
            if len(turns) < 2 or turns[0]["role"] != "system":
                raise
            system, first = turns[0], turns[1]
            merged = [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}]
            result = self.formatter()(messages=merged + turns[2:])
        tokens: list[int] = self.llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return tokens

    def _encode(self, prompt: Prompt) -> tuple[list[int], int]:
        n_ctx = self.llama.n_ctx()
        if self.task != "chat":
            tokens: list[int] = self.llama.tokenize(prompt.text.encode("utf-8"), add_bos=True, special=False)
            return tokens[-(n_ctx - 1) :], 0
        messages = list(prompt.messages)
        dropped = 0
        while True:
            tokens = self.render(messages)
            first_turn = 1 if messages and messages[0].role == "system" else 0
            fits = len(tokens) + prompt.settings.max_new_tokens <= n_ctx
            if fits or len(messages) - first_turn <= 1:
                if len(tokens) >= n_ctx:
                    raise SessionInputError(
                        f"the message is {len(tokens):,} tokens, more than the {n_ctx:,}-token context"
                    )
                return tokens, dropped
            del messages[first_turn : first_turn + 2]  # the oldest user/assistant exchange
            dropped += 2

    # ----------------------------------------------------------------- tokens

    def _generate(
        self, tokens: list[int], prompt: Prompt, stop: threading.Event, emit: Emit, dropped: int
    ) -> Finished:
        from llama_cpp import llama_vocab_is_eog as is_eog

        llama = self.llama
        vocab = llama._model.vocab
        settings = prompt.settings
        max_new = max(min(settings.max_new_tokens, llama.n_ctx() - len(tokens)), 1)
        llama.set_seed(settings.seed if settings.seed is not None else random.randrange(2**31))
        greedy = settings.temperature <= 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        reason: FinishReason = "length"
        produced = 0
        stream = llama.generate(
            tokens,
            top_k=0,
            top_p=1.0 if greedy else settings.top_p,
            min_p=0.0,
            temp=0.0 if greedy else settings.temperature,
            repeat_penalty=1.0,
        )
        try:
            with contextlib.closing(stream):
                for token in _tokens(stream, stop):
                    now = time.perf_counter()
                    if is_eog(vocab, token):
                        reason = "stop"
                        break
                    produced += 1
                    emit(Piece(decoder.decode(llama.detokenize([token])), 1, now))
                    if stop.is_set():
                        reason = "stopped"
                        break
                    if produced >= max_new:
                        break
        except (
            KeyboardInterrupt
        ):  # Ctrl-C while generating in the main thread: the reply stops, not the program
            stop.set()
            reason = "stopped"
        rest = decoder.decode(b"", final=True)
        if rest:
            emit(Piece(rest, 0, time.perf_counter()))
        if stop.is_set():
            reason = "stopped"
        return Finished(len(tokens), reason, dropped_turns=dropped)


def _tokens(stream: Iterator[int], stop: threading.Event) -> Iterator[int]:
    """The generator's tokens; none at all when stop was set before the first."""
    if stop.is_set():
        return
    yield from stream
