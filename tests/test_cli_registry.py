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


def test_show_names_layer_patterns_fixed_state_and_stored_extras(berth, catalog):
    """Qwen3-Next's linear layers keep a fixed state apart from the per-token cache; Llama 4's chunked layers are
    named; a multimodal repo says what its vision tower adds beside the planned language model."""
    from registry.layers import recurrent_state_bytes

    nxt = catalog.get("qwen3-next")
    fixed = 36 * recurrent_state_bytes(nxt.architecture, 2)
    text = " ".join(berth("show", "qwen3-next").output.split())
    assert "36 of 48 layers linear attention" in text
    assert f"KV cache: {12 * 1000 * 2 * 2 * 256 * 2 / 2**20:.0f} MiB per 1,000 tokens" in text
    assert f"+ {fixed / 2**20:.0f} MiB fixed recurrent state per sequence" in text
    scout = " ".join(berth("show", "llama-4-scout").output.split())
    assert "chunked attention 8,192, every 4th layer global" in scout
    gemma = " ".join(berth("show", "gemma-3-4b-it").output.split())
    assert "also stored: The repo is multimodal: the SigLIP vision tower (416,866,032)" in gemma


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
