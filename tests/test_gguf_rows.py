"""`berth list` rows of GGUF entries: an entry added from a local GGUF file is listed with the llama.cpp plan that
`berth plan` and a launch use (its quantization, its file's bytes, llama.cpp's speed), and plan sharing keeps GGUF
entries apart from safetensors ones and from other files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.gguf import weights_from_header, weights_from_size
from launcher.plan.request import PlanRequest
from launcher.plan.rows import plan_all
from registry.catalog import Catalog
from registry.gguf_file import read_gguf_header

HARDWARE = "cpu,ram=16GB"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _add(berth, path) -> str:
    result = berth("catalog", "add", str(path), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["model"]["id"]


def _listed(berth, *args: str) -> dict[str, dict]:
    result = berth("list", "--hardware", HARDWARE, "--json", *args)
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in json.loads(result.output)["models"]}


@pytest.mark.slow  # reads the real SmolLM2 GGUF's header
def test_a_catalog_added_gguf_is_listed_with_the_llamacpp_plan(berth, smollm2_gguf):
    model_id = _add(berth, smollm2_gguf)
    row = _listed(berth)[model_id]
    planned = berth("plan", model_id, "--hardware", HARDWARE, "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.output)
    header = read_gguf_header(smollm2_gguf)
    assert plan["runtime"] == "llama.cpp"  # what the Plan screen and a launch use
    assert row["runtime"] == "llama.cpp" and row["fits"] is True
    assert row["precision"] == header.quantization == plan["llama_cpp"]["quantization"] == "Q4_1"
    assert row["gguf_file"] == smollm2_gguf.name
    # The row's memory is the llama.cpp plan's: the file's tensors as stored, not dequantized to fp32.
    assert row["needed_bytes"] == plan["required_bytes"]
    assert sum(d["weights_bytes"] for d in plan["devices"]) == header.tensor_bytes
    assert header.tensor_bytes < row["needed_bytes"] < 4 * row["params"]
    assert row["decode_tokens_per_s"] == plan["speed"]["decode_tokens_per_s"]
    assert row["strategy"] == plan["strategy"] == "cpu"


@pytest.mark.slow  # reads the real SmolLM2 GGUF's header
def test_the_text_list_shows_the_quantization_and_llamacpp(berth, smollm2_gguf):
    model_id = _add(berth, smollm2_gguf)
    result = berth("list", "--hardware", HARDWARE, "--search", "SmolLM2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    gguf_line = next(line for line in lines if line.startswith(model_id + " "))
    hub_line = next(line for line in lines if line.startswith(SMOLLM2 + " "))
    assert "Q4_1 llama.cpp" in gguf_line
    assert "llama.cpp" not in hub_line  # the same model's safetensors entry stays with transformers


@pytest.mark.slow  # reads the real SmolLM2 GGUF's header, in a fresh interpreter
def test_listing_a_gguf_entry_imports_no_torch(berth, smollm2_gguf):
    model_id = _add(berth, smollm2_gguf)
    code = (
        "import json, sys\n"
        "from launcher.cli import cli\n"
        f"cli(['list', '--hardware', {HARDWARE!r}, '--json', '--search', 'SmolLM2'], prog_name='berth',"
        " standalone_mode=False)\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'textual', 'llama_cpp') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.rstrip().endswith("HEAVY="), out.stdout[-500:]
    listed = json.loads(out.stdout[: out.stdout.rindex("HEAVY=")])
    assert {r["id"]: r["runtime"] for r in listed["models"]}[model_id] == "llama.cpp"


@pytest.mark.slow  # reads the real SmolLM2 GGUF's header
def test_a_gguf_entry_whose_file_is_gone_is_listed_as_transformers_would_load_it(
    berth, smollm2_gguf, tmp_path
):
    copy = tmp_path / smollm2_gguf.name
    copy.write_bytes(smollm2_gguf.read_bytes())
    model_id = _add(berth, copy)
    assert _listed(berth)[model_id]["runtime"] == "llama.cpp"
    copy.unlink()  # the launch will say the file is gone; the list still answers, as `berth plan` does
    planned = json.loads(berth("plan", model_id, "--hardware", HARDWARE, "--json").output)
    row = _listed(berth)[model_id]
    assert row["runtime"] != "llama.cpp" and planned["runtime"] == "transformers"
    assert row["needed_bytes"] == planned["required_bytes"]


def _gguf_card(catalog: Catalog, model_id: str):
    return catalog.get(SMOLLM2).model_copy(update={"id": model_id, "weight_format": "gguf"})


def test_gguf_rows_share_plans_only_with_the_same_file(catalog, smollm2_gguf):
    """Cards equal in every planning field share a plan; with GGUF files, only cards with the same file's
    weights do (two quants of one model differ only in their files), and never with safetensors cards."""
    host = parse_hardware_spec(HARDWARE, catalog)
    base = catalog.get(SMOLLM2)
    cards = (
        base,
        _gguf_card(catalog, "me/smol-q4"),
        _gguf_card(catalog, "me/smol-q4-copy"),
        _gguf_card(catalog, "me/smol-q8"),
        _gguf_card(catalog, "me/smol-nofile"),
    )
    q4 = weights_from_header(read_gguf_header(smollm2_gguf), smollm2_gguf.name)
    q8 = weights_from_size(base, "smol.Q8_0.gguf", 2 * q4.tensor_bytes)
    files = {"me/smol-q4": q4, "me/smol-q4-copy": q4, "me/smol-q8": q8}
    small = Catalog(cards, catalog.accelerators)
    shared = {r.card.id: r for r in plan_all(small, host, PlanRequest(), gguf=files)}
    fresh = {r.card.id: r for r in plan_all(small, host, PlanRequest(), gguf=files, share=False)}
    assert shared.keys() == fresh.keys() == {c.id for c in cards}
    for model_id, row in shared.items():
        assert row.result == fresh[model_id].result, model_id
        assert row.result.model_id == model_id
    runtimes = {model_id: row.as_dict()["runtime"] for model_id, row in shared.items()}
    assert runtimes == {
        SMOLLM2: "torch cpu",
        "me/smol-q4": "llama.cpp",
        "me/smol-q4-copy": "llama.cpp",
        "me/smol-q8": "llama.cpp",
        "me/smol-nofile": "torch cpu",
    }
    assert shared["me/smol-q8"].needed_bytes > shared["me/smol-q4"].needed_bytes
    assert shared["me/smol-q4"].as_dict()["precision"] == "Q4_1"
    assert shared["me/smol-q8"].as_dict()["precision"] == "Q8_0"


def test_a_request_with_its_own_gguf_file_keeps_it(catalog, smollm2_gguf):
    """`berth plan --gguf FILE` style requests already carry a file: the mapping does not replace it."""
    host = parse_hardware_spec(HARDWARE, catalog)
    q4 = weights_from_header(read_gguf_header(smollm2_gguf), smollm2_gguf.name)
    other = replace(q4, file_name="other.Q4_1.gguf")
    small = Catalog((_gguf_card(catalog, "me/smol"),), catalog.accelerators)
    (row,) = plan_all(small, host, PlanRequest(gguf=q4), gguf={"me/smol": other})
    assert row.as_dict()["gguf_file"] == smollm2_gguf.name


@pytest.mark.slow  # reads the real SmolLM2 GGUF's header and probes this machine
def test_a_llamacpp_launchs_measured_speed_shows_on_the_gguf_row(berth, smollm2_gguf):
    """A launch through llama.cpp stores its speed under the file's quantization (Q4_1); the row, now planned
    as that launch, finds it (planned as fp32 transformers, it never did)."""
    from launcher.machine.probe import probe_host
    from launcher.plan.measured import Measurement, machine_key
    from launcher.run.store import Store
    from registry.catalog import load_catalog

    model_id = _add(berth, smollm2_gguf)
    rows = {r["id"]: r for r in json.loads(berth("list", "--json").stdout)["models"]}
    assert rows[model_id]["runtime"] == "llama.cpp" and rows[model_id]["measured_tokens_per_s"] is None
    with Store() as store:
        store.record_measurement(
            Measurement(
                model_id=model_id,
                precision="Q4_1",
                strategy=rows[model_id]["strategy"],
                context=rows[model_id]["context"],
                tokens_used=40,
                machine_key=machine_key(probe_host(load_catalog())),
                host_label="this machine",
                peak_bytes=300 * 2**20,
                estimated_bytes=310 * 2**20,
                devices={"cpu": 300 * 2**20},
                tokens_per_s=131.0,
            )
        )
    rows = {r["id"]: r for r in json.loads(berth("list", "--json").stdout)["models"]}
    assert rows[model_id]["measured_tokens_per_s"] == 131.0
