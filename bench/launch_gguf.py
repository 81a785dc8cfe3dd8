"""Berth's llama.cpp launch of the real SmolLM2-135M-Instruct Q4_1 GGUF against llama-cpp-python used directly
and against the model card's transformers bf16 pipeline; and the llama.cpp memory model against measurements.

1. Speed, in one process: Berth (plan for this machine, `launcher.run.runtime.load`, a session that renders the
   file's chat template, streams and writes the history store) and llama-cpp-python used directly with the same
   `Llama(...)` arguments (`berth plan --emit python` prints them) through `create_chat_completion(stream=True)`,
   the same question, greedy, the same number of tokens. Both models start each round from an empty KV cache
   (no prompt prefix reused), rounds alternate which goes first, medians of the per-round ratios are printed.
   Targets: Berth's decode tokens/s >= 0.95x direct use, time to first token <= 1.1x.
2. The model card's pipeline (`pipeline("text-generation", dtype=torch.bfloat16, device_map="auto")` over the
   same weights converted to a bf16 safetensors folder), in a process of its own (torch's and llama.cpp's
   OpenMP pools would share the cores otherwise): Berth+llama.cpp's speed as a ratio of it.
3. Memory, one fresh process per case: the process's resident growth over the load (peak after one reply)
   against the plan's estimate for the same tokens. Target: within 10%.

Run: .venv/bin/python -m bench.launch_gguf [--rounds 7] [--tokens 64]; writes bench/results/launch-gguf.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT, MiB, TimingStreamer, convert, smollm2_gguf

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
QUESTION = "What is the capital of France?"
SYSTEM = "You are a helpful assistant."
CONTEXT = 2048


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------- 1. Berth vs direct


def speed(gguf: Path, rounds: int, tokens: int) -> dict[str, Any]:
    import llama_cpp

    from launcher.machine.probe import probe_host
    from launcher.plan.request import PlanRequest
    from launcher.run.llamacpp import LlamaCppModel, llama_kwargs
    from launcher.run.runtime import load
    from launcher.run.session import GenerationSettings, open_session
    from launcher.run.source import ModelSource
    from launcher.run.store import Store
    from registry.catalog import load_catalog
    from registry.importer import card_from_gguf

    host = probe_host(load_catalog(overlay=False))
    source = ModelSource(card_from_gguf(gguf), "gguf", gguf)
    loaded = load(source, host, PlanRequest(context=CONTEXT))
    assert isinstance(loaded, LlamaCppModel)
    store = Store(Path(tempfile.mkdtemp()) / "bench.db")
    settings = GenerationSettings(max_new_tokens=tokens, temperature=0)
    session = open_session(loaded, store, settings=settings)
    kwargs = llama_kwargs(loaded.plan, gguf)
    direct = llama_cpp.Llama(**kwargs)
    messages: Any = [{"role": "user", "content": PROMPT}]

    def berth_round() -> tuple[float, float, int]:
        session.reset()
        loaded.llama.reset()  # an empty KV cache: the whole prompt is processed, as for `direct`
        reply = session.send(PROMPT)
        assert reply.time_to_first_token_s is not None and reply.tokens_per_s is not None
        return reply.time_to_first_token_s, reply.tokens_per_s, reply.new_tokens

    def direct_round() -> tuple[float, float, int]:
        direct.reset()
        started = time.perf_counter()
        times = []
        chunks: Any = direct.create_chat_completion(messages, stream=True, temperature=0, max_tokens=tokens)
        for chunk in chunks:
            if chunk["choices"][0]["delta"].get("content"):
                times.append(time.perf_counter())
        first, last, n = times[0], times[-1], len(times)
        return first - started, (n - 1) / (last - first), n

    berth_round(), direct_round()  # warm-up
    rows: dict[str, list[tuple[float, float, int]]] = {"berth": [], "direct": []}
    for i in range(rounds):
        order = [("berth", berth_round), ("direct", direct_round)]
        for name, fn in order if i % 2 == 0 else reversed(order):
            rows[name].append(fn())
    pairs = list(zip(rows["berth"], rows["direct"], strict=True))
    summary = {
        "plan": loaded.plan.summary,
        "llama_kwargs": {k: v for k, v in kwargs.items() if k != "model_path"},
        "tokens": tokens,
        "rounds": rounds,
        "load_average": _load_average(),
        "berth": _medians(rows["berth"]),
        "direct": _medians(rows["direct"]),
        "decode_ratio": statistics.median(b[1] / d[1] for b, d in pairs),
        "ttft_ratio": statistics.median(b[0] / d[0] for b, d in pairs),
    }
    direct.close()
    loaded.close()
    return summary


def _medians(rows: list[tuple[float, float, int]]) -> dict[str, Any]:
    return {
        "ttft_s": statistics.median(r[0] for r in rows),
        "tokens_per_s": statistics.median(r[1] for r in rows),
        "new_tokens": [r[2] for r in rows],
        "per_round": [[round(r[0] * 1000, 1), round(r[1], 1)] for r in rows],
    }


# --------------------------------------------------------------------------- 2. the model card's pipeline


def pipeline_speed(gguf: Path, rounds: int, tokens: int) -> dict[str, Any]:
    """In this (fresh) process: the SmolLM2 weights as a bf16 folder, through the model card's pipeline."""
    import torch
    from transformers import pipeline

    folder = convert(gguf, Path(tempfile.mkdtemp()) / "smollm2-bf16")
    pipe = pipeline("text-generation", model=str(folder), dtype=torch.bfloat16, device_map="auto")
    messages = [{"role": "user", "content": PROMPT}]

    def one() -> tuple[float, float, int]:
        streamer = TimingStreamer()
        started = time.perf_counter()
        pipe(messages, max_new_tokens=tokens, do_sample=False, streamer=streamer)
        ttft, rate, n = streamer.figures(started)
        assert ttft is not None and rate is not None
        return ttft, rate, n

    one()  # warm-up
    return {"pipeline": _medians([one() for _ in range(rounds)]), "torch_threads": torch.get_num_threads()}


# --------------------------------------------------------------------------- 3. memory


def measure_one(gguf: Path, context: int, kv_cache: str) -> dict[str, Any]:
    """In this (fresh) process: launch as `berth launch` does, answer one question, compare growth and plan."""
    from launcher.machine.probe import probe_host
    from launcher.plan.request import PlanRequest
    from launcher.run.llamacpp import LlamaCppModel
    from launcher.run.runtime import load
    from launcher.run.session import GenerationSettings, open_session
    from launcher.run.source import ModelSource
    from registry.catalog import load_catalog
    from registry.importer import card_from_gguf

    host = probe_host(load_catalog(overlay=False))
    source = ModelSource(card_from_gguf(gguf), "gguf", gguf)
    loaded = load(source, host, PlanRequest(context=context, kv_cache=kv_cache))  # type: ignore[arg-type]
    assert isinstance(loaded, LlamaCppModel)
    session = open_session(
        loaded, None, system=SYSTEM, settings=GenerationSettings(max_new_tokens=16, temperature=0)
    )
    loaded.meter.phase()
    reply = session.send(QUESTION)
    m = loaded.measurement(reply.prompt_tokens + reply.new_tokens)
    placement = loaded.plan.placements[-1]
    return {
        "context": context,
        "kv_cache": kv_cache,
        "answer": reply.text,
        "measured_mib": round(m.peak_bytes / MiB, 1),
        "estimated_mib": round(m.estimated_bytes / MiB, 1),
        "error": round(m.error, 4),
        "planned": {
            "weights_mib": round(placement.weights_bytes / MiB, 1),
            "kv_cache_mib": round(placement.kv_cache_bytes / MiB, 1),
            "overhead_mib": round(placement.overhead_bytes / MiB, 1),
        },
        "process_peak_mib": round(m.devices["cpu.process_peak"] / MiB, 1),
    }


def _subprocess(args: list[str]) -> dict[str, Any]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    out = subprocess.run(
        [sys.executable, "-m", "bench.launch_gguf", *args], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if out.returncode != 0:
        sys.exit(out.stderr[-3000:])
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


# --------------------------------------------------------------------------- report


def speed_report(speed_figures: dict[str, Any]) -> list[str]:
    b, d = speed_figures["berth"], speed_figures["direct"]
    decode_ok = speed_figures["decode_ratio"] >= 0.95
    ttft_ok = speed_figures["ttft_ratio"] <= 1.1
    return [
        f"SmolLM2-135M-Instruct Q4_1 GGUF, greedy, {speed_figures['tokens']} new tokens, "
        f"{speed_figures['rounds']} rounds; load average during the rounds: {speed_figures['load_average']}",
        f"plan: {speed_figures['plan']}; Llama(...) arguments: {speed_figures['llama_kwargs']}",
        f"berth+llama.cpp   decode {b['tokens_per_s']:.1f} tokens/s, time to first token {b['ttft_s'] * 1000:.0f} ms",
        f"llama-cpp-python  decode {d['tokens_per_s']:.1f} tokens/s, time to first token {d['ttft_s'] * 1000:.0f} ms "
        "(create_chat_completion, stream=True)",
        f"  berth/direct: decode {speed_figures['decode_ratio']:.3f}x (target >= 0.95: "
        f"{'met' if decode_ok else 'NOT met'}), time to first token {speed_figures['ttft_ratio']:.3f}x "
        f"(target <= 1.1: {'met' if ttft_ok else 'NOT met'})",
        "per round (ms to first token, tokens/s):",
        f"  berth  {b['per_round']}",
        f"  direct {d['per_round']}",
    ]


def pipeline_report(speed_figures: dict[str, Any], pipe: dict[str, Any]) -> list[str]:
    b, p = speed_figures["berth"], pipe["pipeline"]
    return [
        f"transformers bf16 pipeline (model card)  decode {p['tokens_per_s']:.1f} tokens/s, time to first token "
        f"{p['ttft_s'] * 1000:.0f} ms ({pipe['torch_threads']} torch threads); per round {p['per_round']}",
        f"  berth+llama.cpp / pipeline: decode {b['tokens_per_s'] / p['tokens_per_s']:.2f}x, "
        f"time to first token {b['ttft_s'] / p['ttft_s']:.2f}x",
    ]


def memory_report(memory: list[dict[str, Any]]) -> list[str]:
    lines = ["memory: the process's resident growth over the load (peak after one reply) against the plan"]
    for m in memory:
        ok = abs(m["error"]) <= 0.10
        lines.append(
            f"  context {m['context']:>5}, KV {m['kv_cache']:<5} measured {m['measured_mib']:6.1f} MiB, "
            f"estimated {m['estimated_mib']:6.1f} MiB, off by {m['error']:+.1%} ({'within' if ok else 'NOT within'} "
            f"10%); planned weights {m['planned']['weights_mib']} + KV {m['planned']['kv_cache_mib']} + overhead "
            f"{m['planned']['overhead_mib']} MiB; answer {m['answer']!r}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--only", choices=["speed", "pipeline", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--context", type=int, default=4096, help=argparse.SUPPRESS)
    parser.add_argument("--kv-cache", default="f16", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "launch-gguf.txt")
    args = parser.parse_args()
    gguf = smollm2_gguf()
    if args.only == "pipeline":
        print(json.dumps(pipeline_speed(gguf, args.rounds, args.tokens)))
        return
    if args.only == "memory":
        print(json.dumps(measure_one(gguf, args.context, args.kv_cache)))
        return
    lines: list[str] = []

    def emit(more: list[str]) -> None:  # each section is printed and saved as soon as it is measured
        lines.extend([*more, ""])
        print("\n".join(more), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines))

    memory = [
        _subprocess(["--only", "memory", "--context", str(c), "--kv-cache", kv])
        for c, kv in ((4096, "f16"), (8192, "q8_0"), (2048, "q4_0"))
    ]
    emit(memory_report(memory))
    figures = speed(gguf, args.rounds, args.tokens)
    emit(speed_report(figures))
    pipe = _subprocess(
        ["--only", "pipeline", "--rounds", str(max(args.rounds // 2, 2)), "--tokens", str(args.tokens)]
    )
    emit(pipeline_report(figures, pipe))


if __name__ == "__main__":
    main()
