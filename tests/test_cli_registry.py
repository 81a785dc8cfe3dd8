"""`berth show`, `berth list` and `berth catalog validate` as a user runs them: output, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher.cli import cli

BROKEN = Path(__file__).parent / "broken_catalogs"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_show_prints_memory_table(run):
    result = run("show", "danube-1.8b-chat")
    assert result.exit_code == 0
    assert "h2oai/h2o-danube-1.8b-chat" in result.output
    for label in ("fp32", "bf16", "int8", "nf4"):
        assert label in result.output
    assert "per 1,000 tokens" in result.output


def test_show_json_has_integer_bytes(run, catalog):
    result = run("show", "mistralai/Mistral-7B-v0.1", "--json")
    data = json.loads(result.output)
    bf16 = next(r for r in data["memory"] if r["precision"] == "bf16")
    assert isinstance(bf16["weights_bytes"], int)
    assert bf16["weights_bytes"] == 2 * data["model"]["computed_params"]
    assert data["kv_cache_per_1000_tokens_bytes"] == 131_072_000


def test_unknown_model_is_one_paragraph_and_exit_2(run):
    result = run("show", "mistral-7b-v0.2-instrct")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "Did you mean" in text and "berth list" in text


def test_context_above_maximum_is_a_usage_error(run):
    result = run("show", "gpt2", "--context", "5000")
    assert result.exit_code == 2
    assert "at most 1,024" in result.output


@pytest.mark.parametrize("name", sorted(p.name for p in BROKEN.glob("*.yaml")))
def test_validate_broken_catalogs(run, name):
    result = run("catalog", "validate", str(BROKEN / name))
    assert result.exit_code == 2
    assert str(BROKEN / name) in result.output
    assert "Traceback" not in result.output


def test_validate_shipped_catalog(run):
    result = run("catalog", "validate")
    assert result.exit_code == 0 and result.output.strip().endswith(": ok")


def test_broken_catalog_given_to_any_command(run):
    result = run("--catalog", str(BROKEN / "unknown_key.yaml"), "list")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "unknown_key.yaml:14" in text
    assert "berth catalog validate" in text
    assert "did you mean 'num_key_value_heads'" in text


def test_debug_shows_traceback(monkeypatch):
    monkeypatch.setenv("BERTH_DEBUG", "1")
    runner = CliRunner()
    result = runner.invoke(cli, ["show", "no-such-model"])
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY=\n" in out.stdout or out.stdout.rstrip().endswith("HEAVY="), (
        out.stdout[-500:] + out.stderr[-500:]
    )
