"""Catalog entries built from files: model folders (config.json + safetensors headers) and GGUF metadata."""

from __future__ import annotations

import json
import struct

import pytest
from conftest import TINY_FAMILIES

from registry.errors import ImportModelError, UnsupportedArchitectureError
from registry.importer import card_from_dir, card_from_gguf, local_model_id, read_safetensors_header
from registry.params import layout


def _write_safetensors(path, tensors, metadata=None):
    header = {
        name: {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]}
        for name, (dtype, shape) in tensors.items()
    }
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_round_trip_through_a_saved_folder(family, tiny_models):
    from safetensors import safe_open

    folder = tiny_models(family)
    card = card_from_dir(folder)
    assert card.model_type == TINY_FAMILIES[family]["model_type"]
    assert card.task == TINY_FAMILIES[family]["task"]
    assert card.weight_format == "safetensors"
    assert card.id == f"local/{folder.name}"
    stored = 0
    for shard in folder.glob("*.safetensors"):
        with safe_open(str(shard), "np") as handle:
            stored += sum(_numel(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118
    assert card.params == stored
    assert layout(card).total + card.stored_extra_params == card.params


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def test_header_reader_and_tied_embeddings(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    config = {
        "model_type": "llama",
        "num_hidden_layers": 1,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "vocab_size": 10,
        "max_position_embeddings": 64,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config))
    tensors = {
        "model.embed_tokens.weight": ("BF16", [10, 8]),
        "model.layers.0.self_attn.q_proj.weight": ("BF16", [8, 8]),
        "model.layers.0.self_attn.k_proj.weight": ("BF16", [4, 8]),
        "model.layers.0.self_attn.v_proj.weight": ("BF16", [4, 8]),
        "model.layers.0.self_attn.o_proj.weight": ("BF16", [8, 8]),
        "model.layers.0.mlp.gate_proj.weight": ("BF16", [16, 8]),
        "model.layers.0.mlp.up_proj.weight": ("BF16", [16, 8]),
        "model.layers.0.mlp.down_proj.weight": ("BF16", [8, 16]),
        "model.layers.0.input_layernorm.weight": ("BF16", [8]),
        "model.layers.0.post_attention_layernorm.weight": ("BF16", [8]),
        "model.norm.weight": ("BF16", [8]),
    }
    _write_safetensors(folder / "model.safetensors", tensors, {"format": "pt"})
    assert read_safetensors_header(folder / "model.safetensors")["model.norm.weight"].shape == (8,)
    card = card_from_dir(folder)
    assert card.architecture.tie_word_embeddings is True  # no lm_head.weight in the files
    assert card.native_dtype == "bfloat16"
    assert card.task == "completion"
    assert card.params == layout(card).total == sum(_numel(s) for _, s in tensors.values())
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert card_from_dir(folder).task == "chat"


def test_extra_stored_values_are_noted(tmp_path, tiny_models):
    folder = tiny_models("gpt2")
    copy = tmp_path / "gpt2-extra"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    _write_safetensors(copy / "model-extra.safetensors", {"h.0.attn.bias": ("F32", [1, 1, 128, 128])})
    card = card_from_dir(copy)
    assert card.stored_extra_params == 128 * 128
    assert card.stored_extra_note


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(ImportModelError, match=r"config\.json"):
        card_from_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(UnsupportedArchitectureError):
        card_from_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}))
    with pytest.raises(ImportModelError, match="no weight files"):
        card_from_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 4)
    with pytest.raises(ImportModelError, match="not a safetensors file"):
        card_from_dir(tmp_path)


def test_pickle_only_folder_is_counted_from_the_config(tiny_models, tmp_path):
    from conftest import save_tiny_model

    folder = save_tiny_model("gpt2", tmp_path / "pickled", pickle=True)
    card = card_from_dir(folder)
    assert card.weight_format == "pickle"
    assert card.params == layout(card).total and card.params_source == "computed"


@pytest.mark.slow  # reads the real SmolLM2 GGUF
def test_gguf_metadata(smollm2_gguf):
    card = card_from_gguf(smollm2_gguf)
    arch = card.architecture
    assert (card.model_type, card.task, card.weight_format) == ("llama", "chat", "gguf")
    assert (arch.num_layers, arch.hidden_size, arch.num_attention_heads, arch.kv_heads) == (30, 576, 9, 3)
    assert arch.tie_word_embeddings and arch.vocab_size == 49152
    assert card.context_length == 8192
    assert card.params == layout(card).total == 134_515_008
    assert card.id == "local/SmolLM2-135M-Instruct.Q4_1"


def test_local_ids_are_valid_catalog_ids():
    assert local_model_id("My Model (v2)") == "local/My-Model-v2"
    assert local_model_id("///") == "local/model"
