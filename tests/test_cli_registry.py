"""`berth show`, `berth list` and `berth catalog validate` as a user runs them: output, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).parent / "broken_catalogs"


def test_show_prints_memory_table(berth):
    result = berth("show", "danube-1.8b-chat")
    assert result.exit_code == 0
    assert "h2oai/h2o-danube-1.8b-chat" in result.output
    for label in ("fp32", "bf16", "int8", "nf4"):
        assert label in result.output
    assert "per 1,000 tokens" in result.output


def test_show_json_has_integer_bytes(berth, catalog):
    result = berth("show", "mistralai/Mistral-7B-v0.1", "--json")
    data = json.loads(result.output)
    bf16 = next(r for r in data["memory"] if r["precision"] == "bf16")
    assert isinstance(bf16["weights_bytes"], int)
    assert bf16["weights_bytes"] == 2 * data["model"]["computed_params"]
    assert data["kv_cache_per_1000_tokens_bytes"] == 131_072_000


def test_unknown_model_is_one_paragraph_and_exit_2(berth):
    result = berth("show", "mistral-7b-v0.2-instrct")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "Did you mean" in text and "berth list" in text


def test_context_above_maximum_is_a_usage_error(berth):
    result = berth("show", "gpt2", "--context", "5000")
    assert result.exit_code == 2
    assert "at most 1,024" in result.output


@pytest.mark.parametrize("name", sorted(p.name for p in BROKEN.glob("*.yaml")))
def test_validate_broken_catalogs(berth, name):
    result = berth("catalog", "validate", str(BROKEN / name))
    assert result.exit_code == 2
    assert str(BROKEN / name) in result.output
    assert "Traceback" not in result.output


def test_validate_shipped_catalog(berth):
    result = berth("catalog", "validate")
    assert result.exit_code == 0 and result.output.strip().endswith(": ok")


def test_broken_catalog_given_to_any_command(berth):
    result = berth("--catalog", str(BROKEN / "unknown_key.yaml"), "list")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "unknown_key.yaml:14" in text
    assert "berth catalog validate" in text
    assert "did you mean 'num_key_value_heads'" in text


def test_debug_shows_traceback(berth):
    result = berth("show", "no-such-model", env={"BERTH_DEBUG": "1"}, catch_exceptions=True)
    assert result.exit_code != 0
    assert result.exception is not None and type(result.exception).__name__ == "UnknownModelError"


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "--json"], ["show", "gpt2"], ["catalog", "validate"]],
)
def test_light_commands_never_import_torch(args, tmp_path):
    code = (
        "import sys\n"
        "from launcher.cli import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='berth', standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'textual') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY=\n" in out.stdout or out.stdout.rstrip().endswith("HEAVY="), (
        out.stdout[-500:] + out.stderr[-500:]
    )
