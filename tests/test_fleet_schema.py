"""fleet.yaml errors: file, line, field and a suggestion, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.fleet.errors import FleetFileError
from launcher.fleet.load import load_fleet
from tests.fleet_support import fleet_catalog

GOOD = """\
nodes:
  - name: h100
    accelerator: h100-sxm
    gpus_per_node: 8
    count: 2
    ram: 2TB
models:
  - model: llama-8b
    context: 8192
    concurrency: 16
"""


def problems(tmp_path: Path, text: str) -> FleetFileError:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(FleetFileError) as info:
        load_fleet(path, fleet_catalog())
    assert info.value.path == path
    return info.value


def test_good_file_loads(tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text(GOOD)
    request = load_fleet(path, fleet_catalog())
    (group,) = request.groups
    assert group.accelerator.id == "h100-sxm" and group.nvlink  # the catalog says H100 SXM has NVLink
    assert group.ram_bytes == 2 * 10**12
    assert request.workloads[0].name == "meta-llama/Llama-3.1-8B-Instruct"
    assert request.engine.gpu_memory_utilization == 0.9


def test_unknown_key_has_line_field_and_suggestion(tmp_path):
    err = problems(tmp_path, GOOD.replace("    concurrency: 16", "    concurency: 16"))
    (p,) = err.problems
    assert (p.line, p.field, p.suggestion) == (10, "models[0].concurency", "concurrency")
    assert (
        str(err)
        == f"{tmp_path / 'fleet.yaml'}:10: models[0].concurency: unknown key 'concurency' (did you mean 'concurrency'?)"
    )


def test_unknown_accelerator_suggests_a_close_one(tmp_path):
    (p,) = problems(tmp_path, GOOD.replace("h100-sxm", "h100-sxn")).problems
    assert p.line == 3 and p.field == "nodes[0].accelerator"
    assert p.suggestion == "h100-sxm"
    assert "unknown accelerator 'h100-sxn'" in p.message


def test_unknown_model_suggests_a_close_one(tmp_path):
    (p,) = problems(tmp_path, GOOD.replace("llama-8b", "llama-3.1-8b-instruc")).problems
    assert p.line == 8 and p.field == "models[0].model"
    assert p.suggestion == "meta-llama/Llama-3.1-8B-Instruct"


def test_contradictory_and_missing_load(tmp_path):
    both = problems(tmp_path, GOOD + "    requests_per_s: 3\n    prompt_tokens: 10\n    output_tokens: 10\n")
    (p,) = both.problems
    assert p.field == "models[0].requests_per_s" and p.line == 11
    assert "either concurrency or requests_per_s" in p.message
    (p,) = problems(tmp_path, GOOD.replace("    concurrency: 16\n", "")).problems
    assert p.field == "models[0]" and "the load is missing" in p.message and p.line == 8
    (p,) = problems(tmp_path, GOOD.replace("concurrency: 16", "requests_per_s: 4")).problems
    assert "needs prompt_tokens and output_tokens" in p.message


def test_lengths_beyond_the_context(tmp_path):
    text = GOOD.replace(
        "concurrency: 16", "requests_per_s: 4\n    prompt_tokens: 8000\n    output_tokens: 400"
    )
    (p,) = problems(tmp_path, text).problems
    assert p.field == "models[0].output_tokens" and p.line == 12
    assert "8,400" in p.message and "8,192" in p.message
    (p,) = problems(tmp_path, GOOD.replace("context: 8192", "context: 200000")).problems
    assert p.field == "models[0].context" and "131,072" in p.message


def test_int8_points_at_fp8(tmp_path):
    (p,) = problems(tmp_path, GOOD + "    quantization: int8\n").problems
    assert p.field == "models[0].quantization" and p.line == 11
    assert "use 'fp8'" in p.message


def test_every_problem_comes_back_at_once(tmp_path):
    text = (
        GOOD.replace("h100-sxm", "tpu").replace("llama-8b", "nope")
        + "  - model: llama-8b\n    context: 4096\n"
    )
    err = problems(tmp_path, text)
    assert [p.field for p in err.problems] == ["nodes[0].accelerator", "models[0].model", "models[1]"]


def test_schema_errors_together(tmp_path):
    text = GOOD.replace("gpus_per_node: 8", "gpus_per_node: 0").replace("ram: 2TB", "ram: lots")
    err = problems(tmp_path, text)
    fields = {p.field: p for p in err.problems}
    assert set(fields) == {"nodes[0].gpus_per_node", "nodes[0].ram"}
    assert fields["nodes[0].gpus_per_node"].line == 4
    assert "got 'lots'" in fields["nodes[0].ram"].message


def test_fill_mask_model_and_duplicate_names(tmp_path):
    text = (
        GOOD + "  - model: bert-base-uncased\n    concurrency: 1\n  - model: llama-8b\n    concurrency: 2\n"
    )
    err = problems(tmp_path, text)
    assert [p.field for p in err.problems] == ["models[1].model", "models[2].model"]
    assert "fill-mask" in err.problems[0].message
    assert "served twice" in err.problems[1].message


def test_pinned_accelerator_must_be_in_the_fleet(tmp_path):
    (p,) = problems(tmp_path, GOOD + "    accelerator: l4\n").problems
    assert p.field == "models[0].accelerator" and "no node group has l4" in p.message


def test_unreadable_inputs(tmp_path):
    (p,) = problems(tmp_path, "nodes: [\n").problems
    assert p.message.startswith("invalid YAML") and p.line == 2
    (p,) = problems(tmp_path, "- just a list\n").problems
    assert "top level must be a mapping" in p.message
    with pytest.raises(FleetFileError, match="file not found"):
        load_fleet(tmp_path / "missing.yaml", fleet_catalog())


def test_context_cap_is_the_model_cards():
    """A workload may ask for any context a model card may declare (Llama 4 Scout's 10,485,760 tokens is above
    the old 10,000,000 cap), and no more."""
    from pydantic import ValidationError

    from launcher.fleet.schema import WorkloadSpec
    from registry.schema import MAX_CONTEXT

    assert WorkloadSpec(model="m", context=10_485_760, concurrency=1).context == 10_485_760
    assert WorkloadSpec(model="m", context=MAX_CONTEXT, concurrency=1).context == MAX_CONTEXT
    with pytest.raises(ValidationError, match="less than or equal to 16777216"):
        WorkloadSpec(model="m", context=MAX_CONTEXT + 1, concurrency=1)
