"""One measured case, in its own process: Berth's path (or the plain pipeline) loaded and generating, with
memory read after loading and after generating, beside the plan as `berth plan --json` serialises it.

Imports registry, launcher.machine, launcher.plan and launcher.run; torch and transformers lazily.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import TimingStreamer
from bench.gpu.build import PROMPT_SEED, WARMUP_PROMPT_TOKENS, bench_tokenizer, prompt_text
from bench.gpu.steps import Job
from launcher.plan.report import measured_to_dict, plan_to_dict
from launcher.plan.request import Plan
from registry.schema import ModelCard

if TYPE_CHECKING:
    from transformers import Pipeline, PreTrainedTokenizerBase

    from launcher.run.load import LoadedModel
    from launcher.run.measure import MemoryMeter

#: Writes the case's figures so far (a crash later keeps them).
Save = Callable[[], None]


def torch_readings() -> dict[str, dict[str, int]]:
    """torch's allocated / max allocated / reserved / max reserved bytes per GPU ({} without CUDA)."""
    import torch

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


def readings(nvml_start: Mapping[int, int], meter: MemoryMeter) -> dict[str, Any]:
    """Memory now: torch per GPU (peaks since the meter's phase began), NVML used minus before CUDA, RSS."""
    from launcher.run.measure import nvml_used_bytes, rss_bytes

    torch_figures = torch_readings()
    nvml = nvml_used_bytes() if torch_figures else {}
    return {
        "torch": torch_figures,
        "nvml_used": {f"cuda:{i}": v for i, v in nvml.items()},
        "nvml_used_delta": {f"cuda:{i}": v - nvml_start.get(i, 0) for i, v in nvml.items()},
        "rss": rss_bytes(),
        "rss_peak": meter.peak().devices.get("cpu"),
    }


def plan_record(plan: Plan) -> dict[str, Any]:
    """The plan as `berth plan --json` prints it, plus its one-line summary, precision label and the number
    of blocks placed on each device."""
    return {
        **plan_to_dict(plan),
        "summary": plan.summary,
        "precision": plan.precision.label,
        "device_map_blocks": dict(Counter(str(v) for v in plan.device_map.values())),
    }


def estimate_record(card: ModelCard, plan: Plan) -> dict[str, Any]:
    """The plan's estimate per device (`berth plan --json`'s devices, with each one's total) and for the
    whole model on one device."""
    from registry.memory import DeviceKind, estimate_memory

    kind: DeviceKind = "cuda" if plan.uses_gpu else "cpu"
    whole = estimate_memory(card, plan.precision, plan.context, plan.batch, device=kind)
    devices = plan_to_dict(plan)["devices"]
    return {
        "placements": [
            {**d, "used_bytes": p.used_bytes} for d, p in zip(devices, plan.placements, strict=True)
        ],
        "one_device": {**asdict(whole), "total": whole.total, "device": kind},
    }


def tokenizer_check(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
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


def card_differences(card: ModelCard, imported: ModelCard) -> dict[str, list[Any]]:
    """Architecture fields where the card built from the saved folder differs from the catalog card."""
    a, b = card.architecture.model_dump(), imported.architecture.model_dump()
    diffs = {k: [a[k], b[k]] for k in a if a[k] != b[k] and a[k] is not None}
    if card.params != imported.params:
        diffs["params"] = [card.params, imported.params]
    return diffs


def run_case(job: Job, result: dict[str, Any], save: Save) -> None:
    """One measured launch: Berth's path (or the plain pipeline), memory after load and after generating."""
    from launcher.run.measure import nvml_used_bytes

    nvml_start = nvml_used_bytes()  # before this process starts CUDA
    import torch

    spec = job.spec
    result.update(
        model=spec.card.id,
        mode=spec.mode,
        requested={"dtype": "bfloat16", "quant": spec.quant, "max_memory": spec.max_memory},
        prompt_tokens=job.prompt_tokens,
        nvml_start={f"cuda:{i}": v for i, v in nvml_start.items()},
    )
    if torch.cuda.is_available():
        result["cuda_device"] = torch.cuda.get_device_name(0)
    if spec.mode == "pipeline":
        pipeline_case(job, nvml_start, result, save)
    else:
        berth_case(job, nvml_start, result, save)


def _berth_load(job: Job, result: dict[str, Any]) -> LoadedModel:
    """Berth's own path to a loaded model: probe, resolve the folder (planning with the catalog card), load."""
    from launcher.machine.probe import probe_host
    from launcher.plan.request import PlanRequest
    from launcher.run.load import LoadOptions, load_model
    from launcher.run.source import resolve_source
    from registry.catalog import load_catalog

    spec = job.spec
    catalog = load_catalog(overlay=False)
    host = probe_host(catalog)
    source = resolve_source(spec.folder, catalog)
    result["card_differences"] = card_differences(spec.card, source.card)
    request = PlanRequest(
        context=job.prompt_tokens + spec.new_tokens,
        prompt_tokens=job.prompt_tokens,
        dtype="bfloat16",
        quant=spec.quant,
        max_memory=spec.device_max_memory(),
        device="cpu" if job.tiny else "auto",
    )
    loaded = load_model(replace(source, card=spec.card), host, request, LoadOptions(show_progress=False))
    result["berth_tokenizer"] = tokenizer_check(loaded.tokenizer)
    loaded.tokenizer = bench_tokenizer(Path(spec.folder))
    return loaded


def berth_case(job: Job, nvml_start: Mapping[int, int], result: dict[str, Any], save: Save) -> None:
    """Berth's path: load_model as planned, a session, a 2-token warm-up, then the prompt and the reply."""
    from launcher.run.measure import estimated_devices
    from launcher.run.session import GenerationSettings, open_session

    spec, card = job.spec, job.spec.card
    loaded = _berth_load(job, result)
    plan = loaded.plan
    result["plan"] = plan_record(plan)
    result["estimate"] = estimate_record(card, plan)
    result["load"] = {
        "seconds": loaded.load_seconds,
        "attempts": [
            {"plan": a.plan.summary, "error": a.error, "seconds": a.seconds} for a in loaded.attempts
        ],
        "device_map_differences": list(loaded.device_map_differences),
        "load_peak": dict(loaded.load_peak.devices),
        **readings(nvml_start, loaded.meter),
    }
    save()
    vocab = card.architecture.vocab_size
    session = open_session(
        loaded, None, settings=GenerationSettings(max_new_tokens=spec.new_tokens, temperature=0)
    )
    warmup = prompt_text(vocab, WARMUP_PROMPT_TOKENS, seed=PROMPT_SEED + 1)
    session.send(warmup, settings=GenerationSettings(max_new_tokens=2, temperature=0))
    session.reset()
    loaded.meter.phase()
    timer = threading.Timer(job.max_time_s, session.stop)
    timer.start()
    try:
        reply = session.send(prompt_text(vocab, job.prompt_tokens))
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
        **readings(nvml_start, loaded.meter),
    }
    result["estimate"]["at_tokens_excl_runtime"] = estimated_devices(card, plan, tokens)
    measured = loaded.measurement(tokens, reply.time_to_first_token_s, reply.tokens_per_s)
    result["measurement"] = measured_to_dict(measured)
    if reply.prompt_tokens != job.prompt_tokens:
        result["warning"] = f"the prompt came to {reply.prompt_tokens} tokens, not {job.prompt_tokens}"
    save()
    loaded.close()


def pipeline_case(job: Job, nvml_start: Mapping[int, int], result: dict[str, Any], save: Save) -> None:
    """The seed's plain call, with the same max_memory as Berth's budget, timed the same way."""
    import torch
    from transformers import pipeline

    from launcher.run.load import actual_device_map
    from launcher.run.measure import MemoryMeter

    folder = Path(job.spec.folder)
    max_memory = job.spec.device_max_memory()
    meter = MemoryMeter()
    model_kwargs: dict[str, Any] = {}
    if max_memory:
        model_kwargs = {"max_memory": max_memory, "offload_folder": str(folder.parent / "pipeline-offload")}
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
        **readings(nvml_start, meter),
    }
    save()
    _pipeline_generate(pipe, job, meter, nvml_start, result)
    save()


def _pipeline_generate(
    pipe: Pipeline, job: Job, meter: MemoryMeter, nvml_start: Mapping[int, int], result: dict[str, Any]
) -> None:
    """A 2-token warm-up, then the prompt and the reply through the pipeline, timed by a streamer."""
    vocab = job.spec.card.architecture.vocab_size
    text = prompt_text(vocab, job.prompt_tokens)
    kwargs = {"do_sample": False, "return_full_text": False}
    pipe(prompt_text(vocab, WARMUP_PROMPT_TOKENS, seed=PROMPT_SEED + 1), max_new_tokens=2, **kwargs)
    meter.phase()
    streamer = TimingStreamer()
    started = time.perf_counter()
    pipe(text, max_new_tokens=job.spec.new_tokens, streamer=streamer, max_time=job.max_time_s, **kwargs)
    total = time.perf_counter() - started
    ttft, rate, n = streamer.figures(started)
    result["generate"] = {
        "prompt_tokens": len(text.split()),
        "new_tokens": n,
        "time_to_first_token_s": ttft,
        "tokens_per_s": rate,
        "total_s": total,
        **readings(nvml_start, meter),
    }
