"""Time the Hub on demand against the test Hub server on 127.0.0.1 (tests/hub_server.py: real HTTP, the
published configs and safetensors headers), so network latency is ~0 and the figures are Berth's and
huggingface_hub's own work:

- reading and deriving each fixture repository cold (model info, config, tokenizer config, every safetensors
  header; the meta-device build for OLMoE), then again with a current cached entry (one model-info request),
  then offline from the cache (no request);
- `berth list --hub "" --limit 8` end to end (search, then read and plan each repository).

Run: .venv/bin/python -m bench.hub
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hub_server import (
    HubServer,
    bert_tensors,
    deepseek_v3_tensors,
    llama_like_tensors,
    olmoe_tensors,
    safetensors_repo,
)

REPOS = {
    "Qwen/Qwen2.5-0.5B-Instruct": (lambda c: llama_like_tensors(c, qkv_bias=True), 1),
    "mistralai/Mistral-7B-v0.1": (llama_like_tensors, 2),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (llama_like_tensors, 19),
    "unsloth/DeepSeek-V3-bf16": (deepseek_v3_tensors, 163),
    "google-bert/bert-base-uncased": (bert_tensors, 1),
    "allenai/OLMoE-1B-7B-0924": (olmoe_tensors, 3),
}


def main() -> None:
    server = HubServer()
    for downloads, (repo, (shapes, shards)) in enumerate(REPOS.items()):
        server.add(safetensors_repo(repo, shapes, shards=shards, downloads=1000 - downloads))
    server.start()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(
            BERTH_HOME=home,
            HF_HUB_CACHE=str(Path(home) / "hf"),
            HF_ENDPOINT=server.url,
            BERTH_HUB_TIMEOUT="30",
        )
        os.environ.pop("HF_HUB_OFFLINE", None)
        from registry.hub_fetch import hub_entry, settings_from_env

        for repo, (_, shards) in REPOS.items():
            asked = len(server.requests)
            start = time.perf_counter()
            entry = hub_entry(repo)
            cold = time.perf_counter() - start
            requests = len(server.requests) - asked
            start = time.perf_counter()
            hub_entry(repo)
            warm = time.perf_counter() - start
            offline = replace(settings_from_env(), offline=True)
            start = time.perf_counter()
            hub_entry(repo, offline)
            cached = time.perf_counter() - start
            print(
                f"{repo:38} {entry.card.params:>16,} params, {shards:>3} shard(s): cold {cold * 1000:7.0f} ms "
                f"({requests} requests), current cache {warm * 1000:5.0f} ms (1 request), offline {cached * 1000:4.1f} ms"
            )
        from launcher.cli import cli

        start = time.perf_counter()
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.suppress(SystemExit),
        ):
            cli(["list", "--hub", "", "--limit", "8", "--hardware", "1xh100"], prog_name="berth")
        print(
            f"berth list --hub '' --limit 8 (all {len(REPOS)} cached, 1 search + 1 request each): "
            f"{(time.perf_counter() - start) * 1000:.0f} ms"
        )
    server.stop()


if __name__ == "__main__":
    main()
