"""`berth catalog add`: an entry built from local files lands in the overlay; the user's text is kept."""

from __future__ import annotations

import json

import pytest

from registry.catalog import load_catalog
from registry.params import layout


@pytest.mark.slow  # builds a model with transformers, then reads its safetensors
def test_add_a_local_folder_then_plan_it(berth, tiny_models, berth_home):
    folder = tiny_models("mistral")
    result = berth("catalog", "add", str(folder), "--id", "me/tiny-mistral", "--alias", "tiny")
    assert result.exit_code == 0, result.output
    overlay = berth_home / "catalog.yaml"
    card = load_catalog().get("tiny")
    assert card.id == "me/tiny-mistral" and card.model_type == "mistral"
    assert card.params == layout(card).total  # the safetensors headers agree with the built model
    planned = berth("plan", "tiny", "--hardware", "cpu,ram=8GB", "--json")
    assert planned.exit_code == 0 and json.loads(planned.output)["fits"] is True
    again = berth("catalog", "add", str(folder), "--id", "me/tiny-mistral")
    assert again.exit_code == 2 and "already in the overlay" in " ".join(again.output.split())
    assert overlay.read_text().count("me/tiny-mistral") == 1


def test_add_keeps_what_the_user_wrote(berth, tiny_models, berth_home):
    overlay = berth_home / "catalog.yaml"
    mine = "# my notes\nmodels:\n  - id: h2oai/h2o-danube-1.8b-chat  # longer context\n    context_length: 8192\n"
    overlay.write_text(mine)
    result = berth("catalog", "add", str(tiny_models("gpt2")), "--id", "me/tiny-gpt2")
    assert result.exit_code == 0, result.output
    text = overlay.read_text()
    assert text.startswith(mine)
    merged = load_catalog()
    assert merged.get("me/tiny-gpt2").task == "completion"
    assert merged.get("danube-1.8b-chat").context_length == 8192


def test_add_refuses_to_rewrite_an_overlay_it_cannot_append_to(berth, tiny_models, berth_home):
    overlay = berth_home / "catalog.yaml"
    mine = "models: []\naccelerators: []\n"
    overlay.write_text(mine)
    result = berth("catalog", "add", str(tiny_models("gpt2")), "--id", "me/tiny-gpt2")
    assert result.exit_code == 2
    assert overlay.read_text() == mine
    assert "paste this entry" in result.output


@pytest.mark.slow  # reads the real SmolLM2 GGUF
def test_add_a_gguf_file(berth, smollm2_gguf, berth_home):
    result = berth("catalog", "add", str(smollm2_gguf), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"]["task"] == "chat" and data["model"]["model_type"] == "llama"
    assert load_catalog().get(data["model"]["id"]).architecture.num_layers == 30


def test_add_an_uncached_repo_says_how_to_get_it(berth, berth_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = berth("catalog", "add", "someone/some-model")
    assert result.exit_code == 2
    assert "hf download someone/some-model" in " ".join(result.output.split())
    assert not (berth_home / "catalog.yaml").exists()


@pytest.mark.slow  # loads the real SmolLM2 weights
def test_an_added_gguf_launches_from_its_file(berth, smollm2_gguf, berth_home, catalog):
    from launcher.run.source import resolve_source

    assert berth("catalog", "add", str(smollm2_gguf), "--alias", "smol-local").exit_code == 0
    source = resolve_source("smol-local", load_catalog())
    assert source.kind == "gguf" and source.path == smollm2_gguf.resolve()
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct", catalog).kind == "hub"
