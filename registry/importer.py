"""Build a catalog entry from files on disk: a model folder (config.json + safetensors headers) or a GGUF file.

No torch: parameter counts come from the safetensors headers' tensor shapes (the JSON at the start of each file)
or from the GGUF tensor table (registry.gguf_file's reader), and architecture fields from config.json through
`hf_config`'s mapping.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from registry.errors import ImportModelError, UnsupportedArchitectureError
from registry.gguf_file import GgufArray, GgufHeader, read_gguf_header
from registry.hf_config import architecture_fields, context_length_of
from registry.params import FAMILIES, layout, supported_model_types
from registry.paths import expand_user_path
from registry.schema import Dtype, ModelCard, ParamsSource, Task, WeightFormat

#: Largest safetensors header Berth reads (the format itself caps it at 100 MB).
MAX_HEADER_BYTES = 100 * 2**20
#: Files that hold pickled weights: loading them runs Python's unpickler, which can execute code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

_SAFETENSORS_DTYPES: dict[str, Dtype] = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
_CONFIG_DTYPES: dict[str, Dtype] = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
    "fp32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
}
#: config.json keys params.py reads from `config_extras`, per family.
_EXTRA_KEYS: dict[str, tuple[str, ...]] = {
    "falcon": ("multi_query", "parallel_attn", "new_decoder_architecture", "bias", "num_ln_in_parallel_attn"),
    "mpt": ("expansion_ratio",),
    "bert": ("type_vocab_size",),
    "gpt2": ("n_positions",),
    "glm4_moe": ("use_qk_norm",),
    "llama4_text": ("interleave_moe_layer_step", "intermediate_size_mlp"),
    "qwen3_next": ("shared_expert_intermediate_size", "decoder_sparse_step"),
}
#: GGUF `general.architecture` -> transformers model_type, for the families Berth can size.
GGUF_ARCHITECTURES: dict[str, str] = {
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "phi3": "phi3",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "starcoder2": "starcoder2",
    "stablelm": "stablelm",
    "gpt2": "gpt2",
}
#: GGUF general.file_type values whose tensors are plain floats (others are quantized blocks).
_GGUF_FILE_TYPES: dict[int, Dtype] = {0: "float32", 1: "float16", 32: "bfloat16"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file, from its header."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of values."""
        return prod(self.shape)


@dataclass(frozen=True)
class WeightFiles:
    """The weight files a model folder holds, by kind."""

    safetensors: tuple[Path, ...]
    pickle: tuple[Path, ...]

    @property
    def format(self) -> WeightFormat | None:
        """safetensors when there are any, else pickle when there are any, else None."""
        if self.safetensors:
            return "safetensors"
        if self.pickle:
            return "pickle"
        return None


def read_safetensors_header(path: Path | str) -> dict[str, TensorInfo]:
    """Tensor names, dtypes and shapes from a safetensors file's header (8-byte length, then JSON)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw_length = handle.read(8)
            if len(raw_length) != 8:
                raise ImportModelError(f"{path} is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", raw_length)
            if length > MAX_HEADER_BYTES:
                raise ImportModelError(f"{path} is not a safetensors file (header of {length:,} bytes)")
            header = json.loads(handle.read(length))
    except OSError as error:
        raise ImportModelError(f"cannot read {path}: {error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ImportModelError(f"{path} is not a safetensors file (the header is not JSON)") from None
    if not isinstance(header, dict):
        raise ImportModelError(f"{path} is not a safetensors file (the header is not a mapping)")
    tensors: dict[str, TensorInfo] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            tensors[name] = TensorInfo(str(info["dtype"]), tuple(int(n) for n in info["shape"]))
        except (KeyError, TypeError, ValueError):
            raise ImportModelError(f"{path}: tensor {name!r} has no dtype/shape in the header") from None
    return tensors


def weight_files(folder: Path | str) -> WeightFiles:
    """The safetensors and pickle weight files at the top of a model folder."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    safetensors = tuple(p for p in files if p.suffix == ".safetensors" and not _is_side_file(p.name))
    pickle = tuple(p for p in files if p.suffix in PICKLE_SUFFIXES and not _is_side_file(p.name))
    return WeightFiles(safetensors, pickle)


def _is_side_file(name: str) -> bool:
    """Weights that are not the model's own (adapters, optimizer state, training arguments)."""
    return name.startswith(("adapter_", "optimizer", "training_args", "scheduler", "rng_state"))


def has_chat_template(folder: Path | str) -> bool:
    """Whether the tokenizer files define a chat template (tokenizer_config.json or a chat_template file)."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = _read_json(folder / "tokenizer_config.json", required=False)
    return bool(config and config.get("chat_template"))


def local_model_id(name: str) -> str:
    """A catalog-style id for a model that is not on the Hub: local/<name>, with unusable characters replaced."""
    slug = re.sub(r"[^\w.\-]+", "-", name).strip("-.") or "model"
    return f"local/{slug}"


def card_from_dir(folder: Path | str, model_id: str | None = None) -> ModelCard:
    """A catalog entry for a local model folder (config.json plus safetensors or pickle weights)."""
    folder = expand_user_path(folder)
    if not folder.is_dir():
        raise ImportModelError(f"{folder} is not a folder")
    config = _read_json(folder / "config.json", required=True)
    assert config is not None
    _plannable_model_type(config, str(folder))
    files = weight_files(folder)
    if files.format is None:
        raise ImportModelError(f"{folder} has no weight files (*.safetensors or pytorch_model*.bin)")
    tensors: dict[str, TensorInfo] = {}
    for path in files.safetensors:
        tensors.update(read_safetensors_header(path))
    return card_from_config(
        config,
        tensors,
        ConfigOrigin(
            model_id=model_id or local_model_id(folder.name),
            where=str(folder),
            weight_format=files.format,
            chat_template=has_chat_template(folder),
            source=str(folder),
            description=f"imported from {folder}",
        ),
    )


@dataclass(frozen=True)
class ConfigOrigin:
    """Where a config.json and its tensors came from, and what the files around them say."""

    model_id: str
    where: str
    """How messages name the config (a folder, or repo@revision)."""
    weight_format: WeightFormat
    chat_template: bool
    source: str
    description: str
    license: str | None = None
    """The licence where the config does not say (the Hub's model info)."""


def card_from_config(
    config: dict[str, Any], tensors: dict[str, TensorInfo], origin: ConfigOrigin
) -> ModelCard:
    """A catalog entry from a config.json mapping and the safetensors headers' tensors (no file access): the
    one derivation `catalog add` (a folder) and the Hub on demand (a repository) share."""
    model_type = _plannable_model_type(config, origin.where)
    fields = _dir_fields(model_type, config, tensors)
    context = context_length_of(model_type, config)
    if context is None:
        raise ImportModelError(f"{origin.where}: config.json gives no context length")
    return config_card(config, tensors, origin, model_type, fields, context, remote_code=False)


def config_card(
    config: dict[str, Any],
    tensors: dict[str, TensorInfo],
    origin: ConfigOrigin,
    model_type: str,
    fields: dict[str, Any],
    context: int,
    **extra: Any,
) -> ModelCard:
    """The entry for a config.json with these architecture `fields` and `context`, its parameters counted from
    the tensors; `extra` adds entry fields (remote_code, measured_layout)."""
    base: dict[str, Any] = {
        "id": origin.model_id,
        "family": model_type,
        "model_type": model_type,
        "task": _config_task(config, model_type, origin.chat_template),
        "license": str(config.get("license") or origin.license or "unknown"),
        "native_dtype": _config_dtype(config) or _majority_dtype(tensors) or "float32",
        "context_length": context,
        "params": 1,
        "params_source": "computed",
        "weight_format": origin.weight_format,
        "source": origin.source,
        "description": origin.description,
        **extra,
    }
    stored = sum(t.numel for t in tensors.values()) or None
    return _with_counts(_card(base, fields, origin.where), stored, "hub-safetensors")


def _plannable_model_type(config: dict[str, Any], where: str) -> str:
    """config.json's model_type, refused unless Berth knows the family and the weights are unquantized."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise ImportModelError(f"{where}: config.json has no model_type")
    if model_type not in FAMILIES:
        raise UnsupportedArchitectureError(model_type, supported_model_types())
    quantization = config.get("quantization_config")
    if quantization:
        method = quantization.get("quant_method", "unknown") if isinstance(quantization, dict) else "unknown"
        raise ImportModelError(
            f"{where} holds a pre-quantized checkpoint ({method}); Berth plans from unquantized weights"
        )
    return model_type


def _dir_fields(model_type: str, config: dict[str, Any], tensors: dict[str, TensorInfo]) -> dict[str, Any]:
    """Architecture fields from config.json; tied embeddings inferred from the tensors when config is silent."""
    fields = architecture_fields(model_type, config)
    if "tie_word_embeddings" not in fields:
        fields["tie_word_embeddings"] = not tensors or not any(n.endswith("lm_head.weight") for n in tensors)
    extras = {k: config[k] for k in _EXTRA_KEYS.get(model_type, ()) if k in config}
    if extras:
        fields["config_extras"] = extras
    return fields


def _config_task(config: dict[str, Any], model_type: str, chat_template: bool) -> Task:
    """fill-mask for masked-LM heads, chat when the tokenizer has a chat template, completion otherwise."""
    architectures = config.get("architectures") or []
    if any("MaskedLM" in str(a) for a in architectures) or model_type == "bert":
        return "fill-mask"
    return "chat" if chat_template else "completion"


def card_from_gguf(path: Path | str, model_id: str | None = None) -> ModelCard:
    """A catalog entry for a GGUF file, from its metadata and tensor table (weights load dequantized)."""
    path = expand_user_path(path)
    if not path.is_file():
        raise ImportModelError(f"{path} is not a file")
    table = gguf_table(read_gguf_header(path))
    return card_from_gguf_table(
        table,
        model_id or local_model_id(path.stem),
        str(path),
        source=str(path),
        description=f"imported from {path.name}",
    )


@dataclass(frozen=True)
class GgufTable:
    """What a GGUF file's header holds that Berth reads: scalar metadata, tensor names, vocabulary size and the
    number of values in all tensors."""

    meta: dict[str, Any]
    tensor_names: frozenset[str]
    token_count: int | None
    values: int


def gguf_table(header: GgufHeader) -> GgufTable:
    """The part of a GGUF header Berth builds a catalog entry from (arrays are kept only as the token count)."""
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    return GgufTable(
        meta={key: value for key, value in header.metadata.items() if not isinstance(value, GgufArray)},
        tensor_names=frozenset(t.name for t in header.tensors),
        token_count=tokens.length if isinstance(tokens, GgufArray) else None,
        values=sum(prod(t.shape) for t in header.tensors),
    )


def card_from_gguf_table(
    table: GgufTable, model_id: str, where: str, source: str, description: str
) -> ModelCard:
    """A catalog entry from a GGUF header (no file access): shared by local files and GGUF files on the Hub."""
    meta = table.meta
    arch, model_type = _gguf_architecture(where, meta)
    fields = _gguf_fields(table, arch, model_type)
    context = meta.get(f"{arch}.context_length")
    if not isinstance(context, int):
        raise ImportModelError(f"{where} gives no {arch}.context_length")
    file_type = meta.get("general.file_type")
    base: dict[str, Any] = {
        "id": model_id,
        "family": str(meta.get("general.basename") or model_type),
        "model_type": model_type,
        "task": "chat" if meta.get("tokenizer.chat_template") else "completion",
        "license": str(meta.get("general.license") or "unknown"),
        # transformers dequantizes GGUF blocks to float32 unless told otherwise
        "native_dtype": _GGUF_FILE_TYPES.get(file_type, "float32")
        if isinstance(file_type, int)
        else "float32",
        "context_length": context,
        "params": 1,
        "params_source": "computed",
        "weight_format": "gguf",
        "source": source,
        "description": description,
    }
    return _with_counts(_card(base, fields, where), table.values, "computed")


def _gguf_architecture(path: Path | str, meta: dict[str, Any]) -> tuple[str, str]:
    """The file's general.architecture and the transformers model_type Berth sizes it as."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ImportModelError(f"{path} has no general.architecture")
    model_type = GGUF_ARCHITECTURES.get(arch)
    if model_type is None:
        raise ImportModelError(
            f"{path} is a '{arch}' GGUF; Berth can size GGUF files of {', '.join(sorted(GGUF_ARCHITECTURES))}"
        )
    return arch, model_type


def _gguf_fields(table: GgufTable, arch: str, model_type: str) -> dict[str, Any]:
    """Architecture fields from the GGUF metadata (`{arch}.…` keys) and tensor names; missing ones left out."""
    meta, names = table.meta, table.tensor_names
    vocab = meta.get(f"{arch}.vocab_size")
    if vocab is None:
        vocab = table.token_count
    fields: dict[str, Any] = {
        "num_layers": meta.get(f"{arch}.block_count"),
        "hidden_size": meta.get(f"{arch}.embedding_length"),
        "intermediate_size": meta.get(f"{arch}.feed_forward_length"),
        "num_attention_heads": meta.get(f"{arch}.attention.head_count"),
        "num_key_value_heads": meta.get(f"{arch}.attention.head_count_kv"),
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in names,
        "sliding_window": meta.get(f"{arch}.attention.sliding_window"),
    }
    key_length = meta.get(f"{arch}.attention.key_length")
    hidden, heads = fields["hidden_size"], fields["num_attention_heads"]
    numbers = isinstance(key_length, int) and isinstance(hidden, int) and isinstance(heads, int) and heads
    if numbers and (key_length * heads != hidden or model_type in ("qwen3", "gemma2", "gemma3_text")):
        fields["head_dim"] = key_length
    if model_type == "gpt2":
        for key in ("num_key_value_heads", "sliding_window"):
            fields.pop(key)
    return {k: v for k, v in fields.items() if v is not None}


def _card(base: dict[str, Any], fields: dict[str, Any], where: Path | str) -> ModelCard:
    try:
        return ModelCard.model_validate({**base, "architecture": fields})
    except ValueError as error:
        first = str(error).splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or str(error)
        raise ImportModelError(f"{where}: cannot describe this model ({detail})") from None


def _with_counts(card: ModelCard, stored: int | None, source: ParamsSource) -> ModelCard:
    """Fill in the parameter count: the files' total where known, with what transformers does not build."""
    built = layout(card).total
    if stored is None:
        return card.model_copy(update={"params": built, "params_source": "computed"})
    extra = max(stored - built, 0)
    update: dict[str, Any] = {"params": built + extra, "params_source": source if extra else "computed"}
    if extra:
        update["stored_extra_params"] = extra
        update["stored_extra_note"] = "values in the files that transformers does not build as parameters"
    return card.model_copy(update=update)


def _read_json(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise ImportModelError(f"{path} not found: a model folder needs config.json")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImportModelError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise ImportModelError(f"{path} is not a JSON object")
    return data


def _config_dtype(config: dict[str, Any]) -> Dtype | None:
    value = config.get("dtype") or config.get("torch_dtype")
    return _CONFIG_DTYPES.get(str(value).removeprefix("torch.")) if value else None


def _majority_dtype(tensors: dict[str, TensorInfo]) -> Dtype | None:
    counts: Counter[str] = Counter()
    for info in tensors.values():
        counts[info.dtype] += info.numel
    for dtype, _ in counts.most_common():
        if dtype in _SAFETENSORS_DTYPES:
            return _SAFETENSORS_DTYPES[dtype]
    return None
