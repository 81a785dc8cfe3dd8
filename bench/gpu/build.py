"""The random-weight models: a card's real architecture in bf16 saved as safetensors, its word-level tokenizer
and prompts of exact token counts. Imports registry, torch, transformers and tokenizers (the last three lazily).
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.schema import ModelCard

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

#: Token ids of the generated tokenizer's specials; the prompt uses ids from FIRST_WORD_ID up.
PAD_ID, UNK_ID, EOS_ID, FIRST_WORD_ID = 0, 1, 2, 3
WARMUP_PROMPT_TOKENS = 16
PROMPT_SEED = 1234


def prompt_text(vocab_size: int, tokens: int, seed: int = PROMPT_SEED) -> str:
    """`tokens` random words of the generated tokenizer: exactly `tokens` token ids, no special tokens."""
    rng = random.Random(seed)
    return " ".join(f"t{rng.randrange(FIRST_WORD_ID, vocab_size)}" for _ in range(tokens))


def save_tokenizer(folder: Path, vocab_size: int) -> None:
    """A word-level tokenizer over the model's whole vocabulary: '<pad>', '<unk>', '</s>', then t3 … t<V-1>."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": PAD_ID, "<unk>": UNK_ID, "</s>": EOS_ID}
    vocab.update({f"t{i}": i for i in range(FIRST_WORD_ID, vocab_size)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bench_tokenizer(backend).save_pretrained(folder)


def bench_tokenizer(source: Tokenizer | Path) -> PreTrainedTokenizerFast:
    """The word-level tokenizer as transformers' fast tokenizer, from a `tokenizers.Tokenizer` or a folder.

    A case hands this to the session and the pipeline rather than what AutoTokenizer makes of the folder:
    for some model types (qwen2) AutoTokenizer rebuilds the family's own byte-level BPE around the vocabulary,
    which splits 't17' into pieces the vocabulary lacks.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = source if isinstance(source, Tokenizer) else Tokenizer.from_file(str(source / "tokenizer.json"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>")


def build_model(card: ModelCard, folder: Path, tiny: bool, result: dict[str, Any]) -> None:
    """Random bf16 weights of the card's real architecture, made on the GPU (CPU in --tiny), as safetensors.

    What it did goes into `result` (JSON): device, seconds to initialise and to save, parameters, bytes.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from registry.verify import build_config

    shutil.rmtree(folder, ignore_errors=True)
    config = build_config(card)
    config.bos_token_id = None
    config.eos_token_id = None  # random weights: no end of text, every reply runs to its token count
    config.pad_token_id = PAD_ID
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    if device == "cuda":
        torch.cuda.synchronize()
    result.update(device=device, init_s=time.perf_counter() - t0, model_class=type(model).__name__)
    result["params"] = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    t0 = time.perf_counter()
    # safetensors in 5 GB shards (the RAM peak while saving stays low); --tiny shards too, to load an index.
    model.save_pretrained(folder, max_shard_size="100KB" if tiny else "5GB")
    del model
    save_tokenizer(folder, card.architecture.vocab_size)
    result["save_s"] = time.perf_counter() - t0
    result["bytes_on_disk"] = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    result["shards"] = len(list(folder.glob("*.safetensors")))
    result["expected_params"] = card.params
