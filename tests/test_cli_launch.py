"""`berth launch` and `berth history` as a user runs them: stdout carries only the reply, exit codes, dry runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import save_tiny_model

from launcher.cli.launch_cmd import parse_max_memory

CPU_SPEC = "cpu,ram=16GB,disk=100GB"


def test_prompt_streams_only_the_reply_to_stdout(berth, tiny_models):
    folder = tiny_models("gpt2")
    result = berth(
        "launch",
        str(folder),
        "--hardware",
        CPU_SPEC,
        "--no-tui",
        "--prompt",
        "the cat sat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "5",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n") and "Loading" not in result.stdout and "GiB" not in result.stdout
    assert len(result.stdout.strip().split()) >= 1
    assert "Loaded local/" in result.stderr and "estimate" in result.stderr and "tokens/s" in result.stderr
    listed = json.loads(berth("history", "list", "--json").stdout)
    assert len(listed["chats"]) == 1 and listed["chats"][0]["messages"] == 2
    chat_id = listed["chats"][0]["id"]
    exported = json.loads(berth("history", "export", str(chat_id), "--format", "json").stdout)
    assert exported["messages"][0]["content"] == "the cat sat"
    assert exported["messages"][1]["content"].strip() == result.stdout.strip()
    shown = berth("history", "show", str(chat_id)).stdout
    assert "## user" in shown and "the cat sat" in shown


def test_prompt_from_stdin_and_fill_mask(berth, tiny_models):
    result = berth(
        "launch",
        str(tiny_models("bert")),
        "--hardware",
        CPU_SPEC,
        "--no-tui",
        "--prompt",
        "-",
        input="the cat sat on the [MASK] .\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("the cat sat on the ")
    assert "candidate" in result.stderr and "score" in result.stderr


def test_fill_mask_without_mask_is_a_usage_error(berth, tiny_models):
    result = berth(
        "launch", str(tiny_models("bert")), "--hardware", CPU_SPEC, "--no-tui", "--prompt", "no mask"
    )
    assert result.exit_code == 2 and "[MASK]" in result.stderr


def test_line_chat_keeps_both_turns(berth, tiny_models):
    result = berth(
        "launch",
        str(tiny_models("mistral")),
        "--hardware",
        CPU_SPEC,
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
        "--system",
        "be brief",
        input="hello world\n/help\nthe cat\n/exit\n",
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(berth("history", "list", "--json").stdout)
    (chat,) = listed["chats"]
    assert chat["messages"] == 5  # system, two user turns, two replies
    assert "Commands:" in result.stderr


def test_pickle_refusal_is_one_paragraph_with_exit_2(berth, tmp_path):
    folder = save_tiny_model("gpt2", tmp_path / "pickled", pickle=True)
    result = berth("launch", str(folder), "--hardware", CPU_SPEC, "--no-tui", "--prompt", "x")
    assert result.exit_code == 2
    assert (
        "pickle" in result.stderr and "--allow-pickle" in result.stderr and "Traceback" not in result.stderr
    )
    dry = berth("launch", str(folder), "--hardware", CPU_SPEC, "--dry-run")
    assert dry.exit_code == 0 and "Would refuse" in dry.stdout


def test_dry_run_prints_the_plan_and_download_list_without_loading(tiny_models, tmp_path):
    folder = tiny_models("gpt2")
    code = (
        "import sys\n"
        "from launcher.cli import cli\n"
        "try:\n"
        f"    cli(['launch', {str(folder)!r}, '--hardware', {CPU_SPEC!r}, '--dry-run'], prog_name='berth',"
        " standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY=\n" in out.stdout, out.stdout[-800:] + out.stderr[-800:]
    assert "nothing to download" in out.stdout and "Dry run" in out.stdout and "CPU RAM" in out.stdout


def test_dry_run_for_a_hub_model_offline(berth, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = berth("launch", "gpt2", "--hardware", CPU_SPEC, "--dry-run")
    assert result.exit_code == 0
    assert "download list unavailable" in result.stdout and "HF_HUB_OFFLINE" in result.stdout


def test_hub_model_offline_without_cache_says_what_to_do(berth, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = berth("launch", "gpt2", "--hardware", CPU_SPEC, "--no-tui", "--prompt", "hi")
    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE" in result.stderr and "Traceback" not in result.stderr


def test_unknown_model_and_history_errors(berth):
    result = berth("launch", "no-such-model-anywhere", "--dry-run")
    assert result.exit_code == 2 and "Unknown model" in result.stderr
    assert berth("history", "list").stdout.startswith("No chats yet")
    missing = berth("history", "show", "7")
    assert missing.exit_code == 2 and "berth history list" in missing.stderr


def test_max_memory_parsing():
    assert parse_max_memory("cpu=2GiB,0=20GB,disk=1TB") == {"cpu": 2 * 2**30, 0: 20 * 10**9, "disk": 10**12}
    assert parse_max_memory(None) is None
    with pytest.raises(Exception, match="DEVICE=SIZE"):
        parse_max_memory("gpu0=1GB")


def test_plan_and_list_show_what_was_measured_here(berth, catalog):
    from launcher.machine.probe import probe_host
    from launcher.plan.measured import Measurement, machine_key
    from launcher.run.store import Store

    planned = json.loads(berth("plan", "gpt2", "--json").stdout)
    assert planned["measured"] is None
    label = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[planned["dtype"]]
    with Store() as store:
        store.record_measurement(
            Measurement(
                model_id="openai-community/gpt2",
                precision=label,
                strategy=planned["strategy"],
                context=planned["context"],
                tokens_used=40,
                machine_key=machine_key(probe_host(catalog)),
                host_label="this machine",
                peak_bytes=700 * 2**20,
                estimated_bytes=690 * 2**20,
                devices={"cpu": 700 * 2**20},
                tokens_per_s=123.0,
            )
        )
    measured = json.loads(berth("plan", "gpt2", "--json").stdout)["measured"]
    assert measured["tokens_per_s"] == 123.0 and measured["peak_bytes"] == 700 * 2**20
    assert "measured on this machine" in berth("plan", "gpt2").stdout
    assert json.loads(berth("plan", "gpt2", "--json", "--hardware", CPU_SPEC).stdout)["measured"] is None
    rows = {r["id"]: r for r in json.loads(berth("list", "--json").stdout)["models"]}
    assert rows["openai-community/gpt2"]["measured_tokens_per_s"] == 123.0
    table = berth("list").stdout
    assert "123*" in table and "measured here" in table
