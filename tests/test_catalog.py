"""Loading the catalog: the shipped file, the user overlay, lookup, and every kind of broken file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import registry.safe_yaml as safe_yaml
from registry.catalog import check_catalog_file, load_catalog
from registry.errors import CatalogError, UnknownAcceleratorError, UnknownModelError

BROKEN = Path(__file__).parent / "broken_catalogs"

#: file -> (expected line, text the message must contain)
EXPECTED = {
    "invalid_yaml.yaml": (None, "invalid YAML"),
    "wrong_type.yaml": (11, "num_layers"),
    "negative_size.yaml": (9, "greater than 0"),
    "absurd_size.yaml": (12, "less than or equal"),
    "duplicate_id.yaml": (11, "duplicate id 'org/same'"),
    "unknown_key.yaml": (14, "unknown key 'num_key_value_head'"),
    "heads_do_not_divide_hidden.yaml": (10, "does not divide hidden_size"),
    "kv_heads_do_not_divide.yaml": (10, "does not divide num_attention_heads"),
    "not_a_mapping.yaml": (1, "top level must be a mapping"),
    "missing_field.yaml": (2, "context_length"),
    "bad_task.yaml": (5, "task"),
    "duplicate_alias.yaml": (13, "duplicate alias 'shared'"),
}


def test_shipped_catalog_is_large_and_complete(catalog):
    assert len(catalog.models) >= 50
    seed = [
        "h2oai/h2o-danube-1.8b-chat",
        "h2oai/h2o-danube-1.8b-base",
        "mosaicml/mpt-7b",
        "mosaicml/mpt-7b-instruct",
        "mosaicml/mpt-7b-chat",
        "mosaicml/mpt-30b",
        "tiiuae/falcon-7b",
        "tiiuae/falcon-40b",
        "tiiuae/falcon-180B",
        "tiiuae/falcon-180B-chat",
        "mistralai/Mistral-7B-v0.1",
        "openai-community/gpt2",
        "openai-community/gpt2-medium",
        "openai-community/gpt2-large",
        "openai-community/gpt2-xl",
        "EleutherAI/gpt-j-6b",
        "google-bert/bert-base-uncased",
        "google-bert/bert-large-uncased",
    ]
    for model_id in seed:
        assert catalog.get(model_id).id == model_id
    assert any("instruct" in c.id.lower() and c.family.startswith("mistral") for c in catalog.models)
    assert {a.id for a in catalog.accelerators} >= {"h100-sxm", "a100-80gb", "rtx-4090"}
    for acc in catalog.accelerators:
        assert acc.source


def test_catalog_is_parsed_by_libyaml_when_pyyaml_has_it():
    """The C parser is what keeps loading the catalog (every command) quick; bench/cli.py prints the time."""
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this PyYAML was built without libyaml")
    assert safe_yaml._Loader is yaml.CSafeLoader


def test_lookup_by_id_alias_name_and_case(catalog):
    card = catalog.get("h2oai/h2o-danube-1.8b-chat")
    assert catalog.get("danube-1.8b-chat") is card
    assert catalog.get("H2OAI/H2O-DANUBE-1.8B-CHAT") is card
    assert catalog.get("h2o-danube-1.8b-chat") is card
    with pytest.raises(UnknownModelError) as err:
        catalog.get("danube-1.8-chat")
    assert "h2oai/h2o-danube-1.8b-chat" in err.value.suggestions
    with pytest.raises(UnknownModelError) as nothing:
        catalog.get("zzzzzz")
    assert nothing.value.suggestions == []


def test_accelerator_lookup(catalog):
    assert catalog.accelerator("A100-80GB").id == "a100-80gb"
    assert catalog.accelerator("rtx4090").id == "rtx-4090"
    assert catalog.match_gpu_name("NVIDIA GeForce RTX 4090").id == "rtx-4090"
    with pytest.raises(UnknownAcceleratorError) as err:
        catalog.accelerator("a100-90gb")
    assert "a100-80gb" in err.value.suggestions


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_catalogs_name_file_line_and_field(name):
    path = BROKEN / name
    line, text = EXPECTED[name]
    with pytest.raises(CatalogError) as err:
        load_catalog(path, overlay=False)
    message = str(err.value)
    assert text in message
    assert str(path) in message
    if line is not None:
        assert err.value.line == line, message
    assert check_catalog_file(path)  # validate reports it too


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(CatalogError) as err:
        load_catalog(BROKEN / "unknown_key.yaml", overlay=False)
    assert err.value.suggestion == "num_key_value_heads"


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_overlay_adds_and_overrides(tmp_path, berth_home, catalog):
    base = catalog.get("h2oai/h2o-danube-1.8b-chat")
    new_entry = base.model_dump(mode="json")
    new_entry.update(id="me/my-finetune", aliases=["my-finetune"], params_source="computed")
    _write(
        berth_home / "catalog.yaml",
        {
            "models": [
                {"id": "h2oai/h2o-danube-1.8b-chat", "context_length": 8192, "revision": "abc123"},
                new_entry,
            ]
        },
    )
    merged = load_catalog()
    assert merged.get("danube-1.8b-chat").context_length == 8192
    assert merged.get("danube-1.8b-chat").revision == "abc123"
    assert merged.get("danube-1.8b-chat").architecture == base.architecture
    assert merged.get("my-finetune").id == "me/my-finetune"
    assert len(merged.models) == len(catalog.models) + 1
    assert load_catalog(overlay=False).get("danube-1.8b-chat").context_length == base.context_length


def test_overlay_errors_point_at_the_overlay(berth_home):
    overlay = berth_home / "catalog.yaml"
    overlay.write_text("models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    context_lenght: 8192\n")
    with pytest.raises(CatalogError) as err:
        load_catalog()
    assert err.value.path == overlay and err.value.line == 3
    assert err.value.suggestion == "context_length"
    assert overlay.read_text().count("context_lenght") == 1  # the user's file is never rewritten


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
documents = st.one_of(
    yaml_values.map(lambda v: yaml.safe_dump(v)),
    st.dictionaries(
        st.sampled_from(["models", "accelerators", "schema_version", "modles"]),
        st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["id", "family", "architecture", "params", "task", "aliases", "context_length"]
                ),
                yaml_values,
                max_size=6,
            ),
            max_size=3,
        )
        | yaml_values,
        max_size=3,
    ).map(lambda v: yaml.safe_dump(v)),
    st.text(max_size=200),
)


@pytest.mark.slow  # 150 generated catalogs
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents)
def test_random_documents_raise_only_catalog_errors(tmp_path, text):
    path = tmp_path / "random.yaml"
    path.write_text(text)
    try:
        load_catalog(path, overlay=False)
    except CatalogError as err:
        assert str(err)
    check_catalog_file(path)
