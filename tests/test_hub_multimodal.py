"""Hub on demand for multimodal repositories (a text_config beside a vision_config) and for Kimi K2 (DeepSeek-V3
under its own model_type), against the real HTTP server of tests/hub_server.py: the entry is derived with the
language model's layout rules, not counted on the meta device, and its counts are the safetensors headers'
totals (language model + the vision tower and projector stored beside it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from math import prod

import pytest
from hub_server import (
    FakeRepo,
    HubServer,
    deepseek_v3_tensors,
    meta_model_tensors,
    multimodal_repo,
    safetensors_repo,
)
from test_hub import CPU, online, small_catalog  # noqa: F401 (fixtures; `online` serves this module's `hub`)

from registry.importer import TensorInfo, read_safetensors_header

GEMMA3 = "berth-test/tiny-gemma3-mm"
GEMMA3_LEGACY = "berth-test/tiny-gemma3-mm-legacy-names"
LLAMA4 = "berth-test/tiny-llama4-mm"
MISTRAL3 = "berth-test/tiny-mistral3-mm"
KIMI = "berth-test/kimi-k2-layout"


def _renamed(repo: FakeRepo, name: str) -> FakeRepo:
    repo.repo_id = name
    return repo


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    server = HubServer()
    server.add(multimodal_repo(GEMMA3))
    server.add(_renamed(multimodal_repo(GEMMA3, legacy_names=True), GEMMA3_LEGACY))
    server.add(multimodal_repo(LLAMA4))
    server.add(multimodal_repo(MISTRAL3))
    kimi = safetensors_repo("unsloth/DeepSeek-V3-bf16", deepseek_v3_tensors, shards=2)
    config = json.loads(kimi.files["config.json"]) | {"model_type": "kimi_k2"}
    kimi.files["config.json"] = json.dumps(config).encode()
    server.add(_renamed(kimi, KIMI))
    server.start()
    yield server
    server.stop()


def _header_totals(repo: FakeRepo, tmp_path) -> tuple[int, int]:
    """All values in the repository's safetensors header, and those of the parts that are not the language model
    (read back from the file bytes the server serves, with Berth's header reader)."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(repo.big["model.safetensors"][0])
    tensors = read_safetensors_header(path)
    total = sum(t.numel for t in tensors.values())
    beside = sum(
        t.numel
        for n, t in tensors.items()
        if not n.startswith(("language_model.", "model.language_model.", "lm_head."))
    )
    return total, beside


@pytest.mark.usefixtures("online")
@pytest.mark.parametrize(
    ("repo_id", "text_type"),
    [(GEMMA3, "gemma3_text"), (GEMMA3_LEGACY, "gemma3_text"), (LLAMA4, "llama4_text"), (MISTRAL3, "mistral")],
)
def test_multimodal_entry_is_the_language_model_plus_the_stored_parts(
    berth, hub, tmp_path, repo_id, text_type
):
    result = berth("show", repo_id, "--json")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    total, beside = _header_totals(hub.repos[repo_id], tmp_path)
    assert beside > 0
    assert model["model_type"] == text_type
    assert model.get("measured_layout") is None  # the layout rules, not transformers' meta-device build
    assert model["params"] == total
    assert model["stored_extra_params"] == beside
    note = model["stored_extra_note"]
    assert "vision tower" in note and "multimodal projector" in note and f"{beside:,}" in note


@pytest.mark.usefixtures("online")
def test_sparse_gemma3_text_config_takes_the_text_config_class_defaults(berth):
    """google/gemma-3-*-it text_configs list only what differs from Gemma3TextConfig; the rest is its defaults."""
    model = json.loads(berth("show", GEMMA3, "--json").stdout)["model"]
    arch = model["architecture"]
    assert (arch["num_attention_heads"], arch["num_key_value_heads"], arch["head_dim"]) == (8, 4, 256)
    assert arch["vocab_size"] == 262_208 and arch["tie_word_embeddings"] is True
    assert (arch["hidden_size"], arch["num_layers"], arch["sliding_window"]) == (32, 2, 1024)
    assert arch["global_attention_every"] == 6  # 5 local : 1 global, as the catalog's Gemma 3 entries
    assert model["context_length"] == 131_072
    assert model["native_dtype"] == "bfloat16"  # the wrapper's torch_dtype


@pytest.mark.usefixtures("online")
def test_llama4_text_fields_and_context(berth):
    model = json.loads(berth("show", LLAMA4, "--json").stdout)["model"]
    arch = model["architecture"]
    assert (arch["num_experts"], arch["experts_per_token"], arch["attention_chunk_size"]) == (4, 1, 8192)
    assert arch["tie_word_embeddings"] is False
    assert model["context_length"] == 10_485_760


@pytest.mark.usefixtures("online")
def test_multimodal_repository_plans(berth, hub, tmp_path):
    result = berth("plan", GEMMA3, "--hardware", CPU)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Multimodal repository (model_type gemma3): Berth plans its language model (gemma3_text)" in text
    beside = _header_totals(hub.repos[GEMMA3], tmp_path)[1]
    assert (
        f"the vision tower and multimodal projector stored beside it ({beside:,} values) are not in the plan"
        in text
    )


@pytest.mark.usefixtures("online")
def test_kimi_k2_is_planned_with_deepseek_v3_rules_and_keeps_remote_code(berth, hub):
    result = berth("show", KIMI, "--json")  # no --trust-remote-code: planning runs none of its code
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    assert model["model_type"] == "deepseek_v3" and model["remote_code"] is True
    planned_as = json.loads(result.stdout)["hub"]["planned_as"]
    assert (
        "kimi_k2" in planned_as
        and "deepseek_v3 layout rules" in planned_as
        and "--trust-remote-code" in planned_as
    )
    shown = " ".join(berth("plan", KIMI, "--hardware", "8xH200").stdout.split())
    assert "model_type kimi_k2" in shown and "deepseek_v3 layout rules" in shown
    shapes = deepseek_v3_tensors(json.loads(hub.repos[KIMI].files["config.json"]))
    stored = sum(prod(shape) for shape in shapes.values())
    assert model["params"] == stored
    assert model.get("measured_layout") is None
    trusted = berth("show", KIMI, "--json", "--trust-remote-code")
    assert trusted.exit_code == 0, trusted.output
    assert json.loads(trusted.stdout)["model"]["params"] == stored


def test_meta_model_tensors_drop_tied_duplicates():
    """The fixture generator writes one name per tied weight, as save_pretrained does."""
    from hub_server import DATA

    config = json.loads((DATA / GEMMA3.replace("/", "--") / "config.json").read_text())
    names = meta_model_tensors(config)
    assert "model.language_model.embed_tokens.weight" in names and "lm_head.weight" not in names


def test_gemma3_global_layers_read_back_from_layer_types(catalog):
    """transformers writes Gemma 3's pattern as layer_types; the importer reads every-Nth-global back from it
    (and ignores an irregular list)."""
    from registry.hf_config import architecture_fields, config_kwargs

    cards = [c for c in catalog.models if c.model_type == "gemma3_text"]
    assert cards
    for card in cards:
        fields = architecture_fields(card.model_type, config_kwargs(card))
        assert fields.get("global_attention_every") == card.architecture.global_attention_every, card.id
    irregular = {
        "sliding_window": 512,
        "layer_types": ["sliding_attention", "full_attention", "full_attention"],
    }
    assert "global_attention_every" not in architecture_fields("gemma3_text", irregular)


def test_odd_wrapper_configs_are_not_read_as_multimodal():
    """A text_config whose model_type is not a name, or one Berth has no rules for, leaves the config to the
    other paths; a kimi_k2 config without the DeepSeek-V3 class is no twin."""
    from registry.hub_multimodal import text_view

    assert text_view({"model_type": "gemma3", "text_config": {"model_type": ["gemma3_text"]}}, {}) is None
    assert (
        text_view({"model_type": "qwen2_5_vl", "text_config": {"model_type": "qwen2_5_vl_text"}}, {}) is None
    )
    assert text_view({"model_type": "gemma3", "text_config": "gemma3_text"}, {}) is None
    unsplittable = {"text_model.embed.weight": TensorInfo("BF16", (8, 4))}  # no language_model.* names
    assert text_view({"model_type": "gemma3", "text_config": {"hidden_size": 4}}, unsplittable) is None
    assert text_view({"model_type": "gemma3", "text_config": {"hidden_size": 4}}, {}) is not None
    assert text_view({"model_type": "kimi_k2", "architectures": "DeepseekV3ForCausalLM"}, {}) is None
    assert text_view({"model_type": "kimi_k2", "architectures": ["KimiForCausalLM"]}, {}) is None


@pytest.mark.usefixtures("online")
def test_quantized_multimodal_checkpoint_is_refused(berth, hub):
    """The wrapper's quantization_config describes the language model too: refused as for any other model."""
    repo = hub.repos[GEMMA3]
    config = json.loads(repo.files["config.json"]) | {
        "quantization_config": {"quant_method": "awq", "bits": 4}
    }
    quantized = FakeRepo("berth-test/tiny-gemma3-mm-awq", files={"config.json": json.dumps(config).encode()})
    quantized.big = dict(repo.big)
    hub.add(quantized)
    result = berth("show", quantized.repo_id)
    assert result.exit_code == 2, result.output
    assert "pre-quantized" in result.stderr and "awq" in result.stderr
