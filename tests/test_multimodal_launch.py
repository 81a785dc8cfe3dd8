"""Multimodal repos (Gemma 3, Llama 4) launch as the language model their plan counts: tiny random-weight
Gemma3ForConditionalGeneration / Llama4ForConditionalGeneration checkpoints, saved as transformers publishes them,
loaded through berth's launch path whole in RAM and split between RAM and disk, answering, holding exactly the text
model's parameters with the checkpoint's own language-model weights."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_SPECIALS, TINY_VOCAB, cpu_host, save_tiny_tokenizer
from safetensors import safe_open

from launcher.plan.errors import DoesNotFitError
from launcher.plan.ladder import plan_or_raise
from launcher.plan.request import Plan, PlanRequest
from launcher.run.load import LoadOptions, load_model
from launcher.run.multimodal import text_only_arguments
from launcher.run.session import GenerationSettings, open_session
from launcher.run.source import ModelSource
from registry.importer import card_from_dir
from registry.multimodal import is_text_weight, text_model_config
from registry.schema import ModelCard

GREEDY = GenerationSettings(max_new_tokens=6, temperature=0)
TEXT = {
    "vocab_size": TINY_VOCAB,
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 256,
}
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
SPECIAL_IDS: dict[str, Any] = {
    "eos_token_id": TINY_SPECIALS.index("</s>"),
    "bos_token_id": TINY_SPECIALS.index("<s>"),
    "pad_token_id": 0,
}


def _gemma3() -> Any:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(
        text_config={**TEXT, "intermediate_size": 128, "sliding_window": 16},
        vision_config={**VISION, "image_size": 28, "patch_size": 14},
        mm_tokens_per_image=4,
        **SPECIAL_IDS,
    )
    return Gemma3ForConditionalGeneration(config)


def _llama4() -> Any:
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    text = {
        **TEXT,
        "intermediate_size": 64,
        "intermediate_size_mlp": 128,
        "num_local_experts": 2,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "attention_chunk_size": 32,
    }
    vision = {
        **VISION,
        "image_size": 28,
        "patch_size": 14,
        "vision_output_dim": 64,
        "projector_input_dim": 64,
        "projector_output_dim": 64,
    }
    return Llama4ForConditionalGeneration(Llama4Config(text_config=text, vision_config=vision, **SPECIAL_IDS))


BUILDERS: dict[str, Callable[[], Any]] = {"gemma3": _gemma3, "llama4": _llama4}


@pytest.fixture(scope="module")
def multimodal(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Folder of a tiny random multimodal repo per family (weights, config, chat tokenizer), built once."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            torch.manual_seed(0)
            folder = tmp_path_factory.mktemp(f"tiny-{family}")
            BUILDERS[family]().save_pretrained(folder)
            save_tiny_tokenizer(folder, chat=True)
            built[family] = folder
        return built[family]

    return get


@contextlib.contextmanager
def _transformers_log() -> Iterator[list[str]]:
    """Every warning transformers logs while inside."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("transformers")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            tensors.update({key: handle.get_tensor(key) for key in handle.keys()})  # noqa: SIM118
    return tensors


def _text_param_count(folder: Path) -> int:
    """Parameters of the text model transformers builds from the repo's text_config (on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder).get_text_config()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _split_plan(card: ModelCard) -> tuple[Plan, int]:
    """The plan (and its RAM cap) just under what a whole-in-RAM load needs, so layers split RAM / disk."""
    host = cpu_host()

    def plan(cap: int) -> Plan | None:
        try:
            return plan_or_raise(card, host, PlanRequest(context=64, max_memory={"cpu": cap}))
        except DoesNotFitError:
            return None

    low, high = 1, 8 * 2**30
    while high - low > 1:
        middle = (low + high) // 2
        found = plan(middle)
        low, high = (low, middle) if found is not None and found.strategy == "cpu" else (middle, high)
    whole = plan(high)
    assert whole is not None
    # A third of the weights less than the whole-in-RAM cap: the embedding stays in RAM, some layers go to disk.
    cap = high - whole.placements[0].weights_bytes // 3
    split = plan(cap)
    assert split is not None
    return split, cap


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_the_card_plans_the_language_model_and_counts_the_vision_tower_apart(family, multimodal):
    folder = multimodal(family)
    config = json.loads((folder / "config.json").read_text())
    card = card_from_dir(folder)
    assert card.model_type == {"gemma3": "gemma3_text", "llama4": "llama4_text"}[family]
    stored = _checkpoint(folder)
    text_values = sum(t.numel() for k, t in stored.items() if is_text_weight(k))
    assert card.params == sum(t.numel() for t in stored.values())
    assert card.stored_extra_params == card.params - text_values > 0
    assert "multimodal" in (card.stored_extra_note or "")
    assert text_model_config(config) is not None and text_model_config(config["text_config"]) is None
    assert card.architecture.num_layers == TEXT["num_hidden_layers"]


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_launch_loads_only_the_language_model_and_answers(family, multimodal):
    from transformers import Gemma3ForCausalLM, Llama4ForCausalLM

    text_class: Any = {"gemma3": Gemma3ForCausalLM, "llama4": Llama4ForCausalLM}[family]
    ignored_before = text_class._keys_to_ignore_on_load_unexpected
    folder = multimodal(family)
    card = card_from_dir(folder)
    source = ModelSource(card, "dir", folder)
    with _transformers_log() as log:
        loaded = load_model(source, cpu_host(), PlanRequest(context=64), LoadOptions(show_progress=False))
    try:
        model = loaded.model
        assert loaded.plan.device_map == {"": "cpu"} and loaded.device_map_differences == ()
        assert type(model).__name__ == {"gemma3": "Gemma3ForCausalLM", "llama4": "Llama4ForCausalLM"}[family]
        count = sum(p.numel() for p in model.parameters())
        assert count == _text_param_count(folder) == card.params - card.stored_extra_params
        # What the plan counted for the weights is what loaded, to the byte.
        held = sum(p.numel() * p.element_size() for p in model.parameters())
        assert held == loaded.plan.placements[0].weights_bytes
        # The vision tower is left unread without a warning per tensor, and the class is as it was.
        assert not any("UNEXPECTED" in line or "vision_" in line for line in log), log
        assert text_class._keys_to_ignore_on_load_unexpected == ignored_before
        # The language model's weights are the checkpoint's (renamed), not freshly initialised.
        stored = _checkpoint(folder)
        state = model.state_dict()
        for name in (
            "model.layers.1.self_attn.q_proj.weight",
            "model.embed_tokens.weight",
            "model.norm.weight",
        ):
            assert torch.equal(state[name], stored[f"language_model.{name}"].to(state[name].dtype))
        reply = open_session(loaded, settings=GREEDY).send("the cat sat on the mat")
        assert reply.error is None and reply.new_tokens >= 1
    finally:
        loaded.close()


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_a_plan_split_between_ram_and_disk_loads_as_planned(family, multimodal):
    folder = multimodal(family)
    card = card_from_dir(folder)
    plan, cap = _split_plan(card)
    layers = {k: v for k, v in plan.device_map.items() if k.startswith("model.layers.")}
    assert set(layers.values()) == {"cpu", "disk"}, plan.device_map
    loaded = load_model(
        ModelSource(card, "dir", folder),
        cpu_host(),
        PlanRequest(context=64, max_memory={"cpu": cap}),
        LoadOptions(show_progress=False),
    )
    try:
        assert loaded.plan.device_map == plan.device_map
        assert loaded.device_map_differences == ()
        assert loaded.model.hf_device_map == plan.device_map
        count = sum(p.numel() for p in loaded.model.parameters())
        assert count == card.params - card.stored_extra_params
        reply = open_session(loaded, settings=GREEDY).send("the cat sat on the mat")
        assert reply.error is None and reply.new_tokens >= 1
    finally:
        loaded.close()


def test_other_folders_load_as_before(tiny_models, multimodal):
    plain = tiny_models("mistral")
    assert text_only_arguments(plain, card_from_dir(plain)) == {}
    gemma = multimodal("gemma3")
    arguments = text_only_arguments(gemma, card_from_dir(gemma))
    assert type(arguments["config"]).__name__ == "Gemma3TextConfig"
    # A card that plans the whole multimodal model (not the text model) is left to from_pretrained.
    whole = card_from_dir(gemma).model_copy(update={"model_type": "gemma3"})
    assert text_only_arguments(gemma, whole) == {}


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_berth_launch_of_a_multimodal_folder_answers(family, multimodal, berth):
    folder = multimodal(family)
    result = berth(
        "launch",
        str(folder),
        "--hardware",
        "cpu,ram=16GB,disk=100GB",
        "--no-tui",
        "--prompt",
        "the cat sat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() and "Loaded local/" in result.stderr
    assert "device map differs" not in result.stderr and "UNEXPECTED" not in result.stderr


def test_a_catalog_entry_loads_its_downloaded_multimodal_files_as_text(multimodal):
    """A Hub entry (as the catalog's google/gemma-3-*-it) whose downloaded snapshot holds the multimodal repo."""
    folder = multimodal("gemma3")
    card = card_from_dir(folder).model_copy(update={"id": "google/gemma-3-tiny-it"})
    loaded = load_model(
        ModelSource(card, "hub"),
        cpu_host(),
        PlanRequest(context=64),
        LoadOptions(show_progress=False),
        files=folder,
    )
    try:
        assert type(loaded.model).__name__ == "Gemma3ForCausalLM" and loaded.device_map_differences == ()
        assert sum(p.numel() for p in loaded.model.parameters()) == card.params - card.stored_extra_params
    finally:
        loaded.close()


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_the_emitted_python_loads_the_split_plan_as_text_only(family, multimodal, tmp_path, monkeypatch):
    """`berth plan --emit python` for a multimodal repo: the printed code, run as is, loads what the plan says."""
    from launcher.plan.emit import python_snippet

    folder = multimodal(family)
    card = card_from_dir(folder)
    plan, _ = _split_plan(card)
    code = python_snippet(card, plan, source=str(folder))
    assert "config=text_config" in code and "key_mapping=TEXT_WEIGHTS" in code
    monkeypatch.chdir(tmp_path)  # the snippet offloads to ./offload
    namespace: dict[str, Any] = {}
    exec(compile(code, "snippet", "exec"), namespace)  # Berth's own emitted code, run as a user would
    model = namespace["model"]
    assert model.hf_device_map == plan.device_map
    assert sum(p.numel() for p in model.parameters()) == card.params - card.stored_extra_params


def test_text_only_repos_of_these_types_emit_the_plain_snippet(catalog):
    from launcher.plan.emit import python_snippet

    card = catalog.get("google/gemma-3-4b-it")
    text_only = card.model_copy(update={"stored_extra_params": 0, "stored_extra_note": None})
    plan = plan_or_raise(text_only, cpu_host(ram_bytes=64 * 10**9))
    assert "key_mapping" not in python_snippet(text_only, plan)
    assert "key_mapping" in python_snippet(card, plan_or_raise(card, cpu_host(ram_bytes=64 * 10**9)))


#: google/gemma-3-4b-it's config.json at the catalog's revision (093f9f38…) names few text keys: transformers'
#: defaults fill the rest (as quoted in public tests; the catalog entry's `source` is the file's address).
GEMMA3_4B_PUBLISHED = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "eos_token_id": [1, 106],
    "image_token_index": 262144,
    "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "model_type": "gemma3_text",
        "num_hidden_layers": 34,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model", "num_hidden_layers": 27},
}


def test_the_published_sparse_gemma3_config_imports_as_the_catalog_entry(catalog):
    from registry.importer import ConfigOrigin, card_from_config

    origin = ConfigOrigin("google/gemma-3-4b-it", "hub", "safetensors", True, "hub", "d")
    card = card_from_config(GEMMA3_4B_PUBLISHED, {}, origin)
    entry = catalog.get("google/gemma-3-4b-it")
    assert card.model_type == entry.model_type and card.context_length == entry.context_length
    fields: tuple[str, ...] = (
        "num_layers",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
    )
    fields += ("head_dim", "vocab_size", "tie_word_embeddings", "sliding_window", "global_attention_every")
    for field in fields:
        assert getattr(card.architecture, field) == getattr(entry.architecture, field), field


def test_the_global_layer_pattern_is_read_as_transformers_builds_it():
    from transformers import Gemma3TextConfig, Llama4TextConfig

    from registry.multimodal import global_attention_every

    gemma = Gemma3TextConfig(num_hidden_layers=12).to_dict()
    assert global_attention_every(gemma) == 6
    assert global_attention_every({k: v for k, v in gemma.items() if k != "layer_types"}) == 6
    llama = Llama4TextConfig(num_hidden_layers=8).to_dict()
    assert llama["layer_types"][3] == "full_attention" and global_attention_every(llama) == 4
    assert global_attention_every({"num_hidden_layers": 8, "no_rope_layer_interval": 4}) == 4
    assert global_attention_every(Gemma3TextConfig(num_hidden_layers=4).to_dict()) is None  # all sliding
    irregular = {
        "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    }
    assert global_attention_every(irregular) is None


def test_a_checkpoint_in_transformers_5_names_loads_as_text_too(tmp_path):
    """Saved with save_original_format=False the keys are `model.language_model.*`: renamed the same way."""
    torch.manual_seed(0)
    whole = _gemma3()
    folder = tmp_path / "gemma3-v5-names"
    whole.save_pretrained(folder, save_original_format=False)
    save_tiny_tokenizer(folder, chat=True)
    assert any(k.startswith("model.language_model.") for k in _checkpoint(folder))
    card = card_from_dir(folder)
    loaded = load_model(
        ModelSource(card, "dir", folder),
        cpu_host(),
        PlanRequest(context=64),
        LoadOptions(show_progress=False),
    )
    try:
        state = loaded.model.state_dict()
        name = "model.layers.2.mlp.down_proj.weight"
        expected = whole.state_dict()["model.language_model.layers.2.mlp.down_proj.weight"]
        assert torch.equal(state[name], expected.to(state[name].dtype))
        assert sum(p.numel() for p in loaded.model.parameters()) == card.params - card.stored_extra_params
    finally:
        loaded.close()
