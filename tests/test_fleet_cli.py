"""`berth fleet plan|export` through click: output, exit codes, messages, and what it imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fleet_support import FLEET_CATALOG

ROOT = Path(__file__).resolve().parent.parent

FLEET = """\
nodes:
  - name: h100
    accelerator: h100
    gpus_per_node: 8
    count: 2
    ram: 2TB
  - name: l4
    accelerator: l4
    gpus_per_node: 4
    count: 1
    ram: 256GB
models:
  - model: llama-8b
    name: chat
    context: 8192
    concurrency: 40
    tokens_per_s_per_user: 30
  - model: llama-70b
    name: big
    context: 8192
    requests_per_s: 1
    prompt_tokens: 1000
    output_tokens: 200
"""


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    return path


@pytest.fixture
def berth_fleet(berth):
    """`berth --catalog FLEET_CATALOG --no-overlay ARGS...` as (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        result = berth("--catalog", str(FLEET_CATALOG), "--no-overlay", *args)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_plan_prints_models_nodes_and_totals(berth_fleet, fleet_file):
    code, out, _ = berth_fleet("fleet", "plan", str(fleet_file))
    assert code == 0
    assert "Models (KV cache per GPU in GiB" in out
    chat = next(line for line in out.splitlines() if line.startswith("chat "))
    assert "TP1×PP1" in chat and "ok" in chat
    assert "Placement (GPUs used/total" in out and "h100-0" in out
    assert "Totals: 20 GPUs" in out


def test_plan_json_has_bytes_and_placement(berth_fleet, fleet_file):
    code, out, _ = berth_fleet("fleet", "plan", str(fleet_file), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["complete"] is True
    big = next(m for m in data["models"] if m["name"] == "big")
    assert big["replica"]["tensor_parallel_size"] == 4
    assert isinstance(big["replica"]["kv_cache_bytes_per_gpu"], int)
    placed = [s for n in data["nodes"] for s in n["stages"] if s["model"] == "big"]
    assert len(placed) == big["replicas_placed"] and len(placed[0]["gpu_indices"]) == 4
    assert data["totals"]["gpus"] == 20


def test_short_fleet_exits_1_and_says_what_to_add(berth_fleet, tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("requests_per_s: 1", "requests_per_s: 40"))
    code, out, _ = berth_fleet("fleet", "plan", str(path))
    assert code == 1
    assert "To carry the whole workload, add:" in out
    code, out_json, _ = berth_fleet("fleet", "plan", str(path), "--json")
    (addition,) = json.loads(out_json)["additions"]
    assert code == 1 and f"{addition['nodes']} node(s) to {addition['group']}" in out
    code, _, err = berth_fleet("fleet", "export", str(path), "--format", "ray-serve")
    assert code == 1 and "--allow-partial" in err and "Traceback" not in err
    code, out, _ = berth_fleet("fleet", "export", str(path), "--format", "ray-serve", "--allow-partial")
    assert code == 0 and yaml.safe_load(out)["applications"]


def test_export_writes_each_format(berth_fleet, fleet_file, tmp_path):
    for fmt in ("ray-serve", "kuberay", "vllm"):
        target = tmp_path / f"out.{fmt}"
        code, _, err = berth_fleet("fleet", "export", str(fleet_file), "--format", fmt, "-o", str(target))
        assert code == 0, err
        assert f"Wrote {target}" in err
        text = target.read_text()
        if fmt == "vllm":
            assert text.startswith("#!/usr/bin/env bash") and "vllm serve" in text
        else:
            assert yaml.safe_load(text)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("accelerator: l4", "accelerator: l5"), "nodes[1].accelerator: unknown accelerator 'l5'"),
        (("model: llama-70b", "model: llama-700b"), "models[1].model: unknown model 'llama-700b'"),
        (("    concurrency: 40\n", "    concurrency: 40\n    requests_per_s: 2\n"), "either concurrency or"),
        (("ram: 2TB", "rams: 2TB"), "did you mean 'ram'?"),
    ],
)
def test_bad_input_exits_2_with_file_and_line(berth_fleet, tmp_path, change, expected):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace(*change))
    code, out, err = berth_fleet("fleet", "plan", str(path))
    assert code == 2
    assert expected in err and f"{path}:" in err
    assert "Traceback" not in err + out
    assert "launcher/fleet/schema.py" in err


def test_does_not_fit_anywhere_exits_1(berth_fleet, tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text(
        FLEET.split("models:")[0].replace("count: 2", "count: 1")
        + "models:\n  - model: deepseek-v3\n    context: 16384\n    concurrency: 2\n    accelerator: l4\n"
    )
    code, out, _ = berth_fleet("fleet", "plan", str(path))
    assert code == 1
    assert "does not fit" in out and "do not fit even" in out
    code, _, err = berth_fleet("fleet", "export", str(path), "--format", "vllm")
    assert code == 1 and "cannot run on any node group" in err


def test_example_fleet_plans_with_the_shipped_catalog(berth):
    result = berth("--no-overlay", "fleet", "plan", str(ROOT / "examples" / "fleet.yaml"), "--json")
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    assert {m["name"] for m in data["models"]} == {"mixtral", "llama-70b", "gemma", "deepseek"}


def test_fleet_commands_never_import_torch_or_ray(fleet_file, tmp_path):
    script = f"""
import sys
from click.testing import CliRunner
from launcher.cli import cli
base = ["--catalog", {str(FLEET_CATALOG)!r}, "--no-overlay", "fleet"]
for args in (["plan", {str(fleet_file)!r}], ["export", {str(fleet_file)!r}, "--format", "kuberay"]):
    assert CliRunner().invoke(cli, base + args).exit_code == 0
heavy = sorted(m for m in ("torch", "transformers", "accelerate", "ray", "vllm") if m in sys.modules)
print(heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_nothing_placeable_exits_1_and_writes_no_export(berth_fleet, tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text(
        FLEET.split("models:")[0].replace("count: 2", "count: 1")
        + "models:\n  - model: deepseek-v3\n    context: 16384\n    concurrency: 2\n    accelerator: l4\n"
    )
    out_file = tmp_path / "serve.yaml"
    for fmt in ("ray-serve", "kuberay", "vllm"):
        code, out, err = berth_fleet(
            "fleet", "export", str(path), "--format", fmt, "--allow-partial", "-o", str(out_file)
        )
        assert code == 1 and "nothing to export" in " ".join(err.split()) and "Traceback" not in err
        assert not out_file.exists() and "llm_configs" not in out


def test_duplicate_keys_are_errors_with_both_lines(berth_fleet, tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + "models:\n  - model: llama-8b\n    concurrency: 1\n")
    code, out, err = berth_fleet("fleet", "plan", str(path))
    first = FLEET.splitlines().index("models:") + 1
    second = len(FLEET.splitlines()) + 1
    assert code == 2 and f"duplicate key 'models' (lines {first} and {second})" in err
    assert f"{path}:{second}:" in err and "Traceback" not in err + out
