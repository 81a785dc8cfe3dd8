"""Berth's memory and speed estimates against one real GPU, on random-weight models built from catalog fields.

What it does (one run, one process per step so a crash or a timeout costs one case, not the run):

1. Builds each model's real architecture from its catalog card (`registry.verify.build_config`) with random
   weights directly on the GPU in bf16, saves it as safetensors with a word-level tokenizer over the model's
   whole vocabulary ("t3 t17 …": one word is one token, so a 2,048-word prompt is 2,048 tokens), and deletes
   the folder once the model's cases are done (disk use peaks at one model: about 30 GB for the 14B).
2. Per case, in a fresh process: reads NVML's used memory before CUDA starts, then runs Berth's own path —
   `probe_host` → `resolve_source(folder)` (the catalog card is kept for planning; differences are recorded) →
   `load_model(source, host, PlanRequest(...))` (plan → from_pretrained as planned) → `open_session(...)`
   (with the word-level tokenizer) → a 2-token warm-up → `session.send(prompt)` with a 2,048-token prompt and
   256 new tokens, greedy, no end-of-text token.
   After loading and after generating it records NVML used (minus the reading before CUDA started), torch's
   allocated / max allocated / reserved / max reserved, and process RSS, beside the plan's estimates (weights,
   KV cache, overhead, total per device), and the estimated against the measured decode tokens/s and time to
   first token.
3. Cases: h2o-danube-1.8b-chat and Mistral-7B-v0.1 in bf16, int8 and nf4 (bitsandbytes); Qwen2.5-14B-Instruct
   under a forced budget (`--gpu-budget-gib`, default 20 GiB of GPU 0, passed as PlanRequest.max_memory):
   the plan Berth picks (int8 at 20 GiB), Berth with quantization ruled out (bf16 with CPU offload), and the
   seed's plain `pipeline("text-generation", dtype=torch.bfloat16, device_map="auto")` given the same
   `max_memory`. The offload cases generate `--compare-new-tokens` (16) tokens: each token copies ~12 GB.
4. Writes `gpu-<GPU name>.json`, `.md` (tables) and `.log` (the steps' output) to $OUT if set, else
   bench/results/, after every step, with the constants in use (registry.memory, launcher.plan.speed,
   launcher.plan.placement, launcher.machine.host) and the constants the measurements imply ("implied").

`--budget-s` (default 480) bounds the run: a step whose rough cost no longer fits is skipped (optional cases —
int8, nf4, Berth's offload — first, keeping time for the later must-run cases), and each process gets a timeout.
Generation also stops after `--max-time-s` (the session's stop, like Ctrl-C), keeping the tokens it made.
`--tiny` runs the same steps on the CPU with 2–4-layer, 64-wide versions of the same cards (int8/nf4 skipped:
they need CUDA and bitsandbytes) in about 35 s: tests/test_bench_gpu.py runs it.

Packages: torch with CUDA, transformers, accelerate, safetensors, tokenizers, nvidia-ml-py, psutil, pyyaml,
jinja2 (all in the device image) plus pydantic (Berth's catalog schema) and bitsandbytes, carried as wheels.
Nothing imports click, textual, rich or huggingface_hub's network code (the models are local folders;
HF_HUB_OFFLINE=1). Download the wheels once, in the repository root (`/.whl/` is git-ignored):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl bitsandbytes==0.50.2 pydantic==2.14.4 pydantic-core==2.50.5 \
      annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0

(46 MB together; bitsandbytes 0.50.2 ships libbitsandbytes_cuda130.so for the image's torch 2.11+cu130.)
The exact device command is in bench/GPU.md.

Modules, one job each: `steps` (what to run, in what order, within the time budget), `build` (the
random-weight models and their tokenizer), `measure` (one case's memory and speed, in its own process),
`child` (a step's process), `compare` (estimates against readings, pure), `report` (the JSON and the
tables), `runner` (the parent process), `cli` (the command line).

Run, in the repository root:
      PYTHONUNBUFFERED=1 python3 -m bench.gpu --budget-s 480    (GPU)
      .venv/bin/python -m bench.gpu --tiny --out /tmp/x          (CPU check, ~35 s)
"""
