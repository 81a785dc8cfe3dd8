"""Serve the Hub stand-in (tests/hub_server.py: real HTTP on 127.0.0.1, published configs and safetensors headers)
with a few repositories of each kind, to look at the app's Hub source by hand; prints the URL and the command.

Among them: catalog repositories, two that are not in the catalog, a gated one, one that needs its own code, one
that answers after 4 s (to watch rows arrive) and an encoder (not text generation, never listed). Ctrl-C stops it.
bench/results/tui-hub-source.txt was captured against it in tmux (120 × 36 and 80 × 24).

Run: .venv/bin/python -m bench.hub_standin
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hub_server import (
    HubServer,
    bert_tensors,
    deepseek_v3_tensors,
    llama_like_tensors,
    qwen_copy,
    safetensors_repo,
)


def standin() -> HubServer:
    """The server with its repositories (not started)."""
    server = HubServer()
    server.add(qwen_copy("Qwen/Qwen2.5-0.5B-Instruct", downloads=9_100_000))
    server.add(
        safetensors_repo("mistralai/Mistral-7B-v0.1", llama_like_tensors, shards=2, downloads=4_200_000)
    )
    server.add(
        safetensors_repo(
            "mistralai/Mixtral-8x7B-Instruct-v0.1", llama_like_tensors, shards=3, downloads=1_300_000
        )
    )
    server.add(qwen_copy("acme/Tiny-Qwen-Chat", downloads=812_000))
    server.add(safetensors_repo("unsloth/DeepSeek-V3-bf16", deepseek_v3_tensors, shards=4, downloads=450_000))
    server.add(qwen_copy("gated-org/Gated-Chat", downloads=120_000, gated=True))
    server.add(qwen_copy("custom/Remote-Chat", model_type="my_arch", downloads=9_500))
    server.add(qwen_copy("slow/Slow-Chat", downloads=950, delay_s=4.0))
    server.add(safetensors_repo("google-bert/bert-base-uncased", bert_tensors, pipeline_tag="fill-mask"))
    return server


def main() -> None:
    server = standin().start()
    print(f"Hub stand-in at {server.url}")
    print(
        f"Open the app on it: HF_ENDPOINT={server.url} BERTH_HOME=$(mktemp -d) HF_HUB_CACHE=$(mktemp -d) "
        "PYTHONPATH=$PWD .venv/bin/python -c 'from launcher.entry import main; main()' tui --hardware rtx-4090"
        "   (then press u)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
