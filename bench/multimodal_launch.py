"""Berth's launch of a multimodal repo against plain from_pretrained: what the plan counts, what each loads.

A random-weight Gemma3ForConditionalGeneration / Llama4ForConditionalGeneration (a few hundred MB, bf16, SmolLM2's
tokenizer) is saved as transformers publishes it. Each case runs in a fresh process: (a) Berth's `load_model`
with this machine's CPU-only plan, (b) `AutoModelForCausalLM.from_pretrained(folder, dtype=bfloat16)` as a user
would write it. Printed per case: the plan's weight bytes, the loaded model's class and parameter bytes (resident
memory is not printed: safetensors are memory-mapped, so RSS over a load says little about what the model holds).
Target: Berth's parameter bytes equal the plan's exactly; plain from_pretrained of Gemma 3 holds the vision tower
on top (Llama 4's AutoModelForCausalLM entry already builds the text model alone).

Run: .venv/bin/python -m bench.multimodal_launch
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import ROOT, MiB, smollm2_gguf

TEXT = {
    "hidden_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "max_position_embeddings": 4096,
}
VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 6, "num_attention_heads": 12}


def build(family: str, folder: Path) -> None:
    """Save a random multimodal repo of `family` with SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    special = {
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": 0,
    }
    text = {**TEXT, "vocab_size": len(tokenizer)}
    torch.manual_seed(0)
    if family == "gemma3":
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration

        config: Any = Gemma3Config(
            text_config={**text, "intermediate_size": 2048, "sliding_window": 512},
            vision_config={**VISION, "image_size": 224, "patch_size": 14},
            mm_tokens_per_image=64,
            **special,
        )
        model: Any = Gemma3ForConditionalGeneration(config)
    else:
        from transformers import Llama4Config, Llama4ForConditionalGeneration

        config = Llama4Config(
            text_config={
                **text,
                "intermediate_size": 1024,
                "intermediate_size_mlp": 2048,
                "num_local_experts": 4,
                "attention_chunk_size": 1024,
            },
            vision_config={
                **VISION,
                "image_size": 224,
                "patch_size": 14,
                "vision_output_dim": 1024,
                "projector_input_dim": 1024,
                "projector_output_dim": 512,
            },
            **special,
        )
        model = Llama4ForConditionalGeneration(config)
    model.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def case(kind: str, folder: Path) -> dict[str, Any]:
    """One load in this process: 'berth' (load_model, this machine's plan) or 'plain' (from_pretrained)."""
    import torch
    from transformers import AutoModelForCausalLM

    from launcher.machine.probe import probe_host
    from launcher.plan.request import PlanRequest
    from launcher.run.load import LoadOptions, load_model
    from launcher.run.source import ModelSource
    from registry.catalog import load_catalog
    from registry.importer import card_from_dir

    card = card_from_dir(folder)
    planned = None
    if kind == "berth":
        host = probe_host(load_catalog())
        loaded = load_model(
            ModelSource(card, "dir", folder),
            host,
            PlanRequest(context=512),
            LoadOptions(show_progress=False),
        )
        model = loaded.model
        planned = sum(p.weights_bytes for p in loaded.plan.placements)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16)
    return {
        "class": type(model).__name__,
        "params": sum(p.numel() for p in model.parameters()),
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "planned_weight_bytes": planned,
        "card_text_params": card.params - card.stored_extra_params,
        "card_stored_extra": card.stored_extra_params,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--case":
        print(json.dumps(case(sys.argv[2], Path(sys.argv[3]))))
        return
    for family in ("gemma3", "llama4"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / family
            build(family, folder)
            for kind in ("berth", "plain"):
                run = subprocess.run(
                    [sys.executable, "-m", "bench.multimodal_launch", "--case", kind, str(folder)],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(run.stdout.strip().splitlines()[-1])
                planned = r["planned_weight_bytes"]
                print(
                    f"{family:7} {kind:6} {r['class']:32} params {r['params']:>11,} "
                    f"(card text {r['card_text_params']:,} + extra {r['card_stored_extra']:,}) "
                    f"param bytes {r['param_bytes'] / MiB:8.2f} MiB"
                    + (f", plan {planned / MiB:8.2f} MiB" if planned is not None else "")
                )


if __name__ == "__main__":
    main()
