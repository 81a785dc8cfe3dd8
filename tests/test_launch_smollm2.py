"""End to end with the real SmolLM2-135M-Instruct: from its GGUF file, and from a safetensors folder made from it
(whole in RAM, split between RAM and disk under a small memory budget, and down the ladder after running out)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import cpu_host

from launcher.plan.request import PlanRequest
from launcher.run.load import LoadOptions, load_model
from launcher.run.session import GenerationSettings, open_session
from launcher.run.source import ModelSource
from launcher.run.store import Store
from registry.importer import card_from_dir

pytestmark = pytest.mark.slow

GREEDY = GenerationSettings(max_new_tokens=12, temperature=0)
QUESTION = "What is the capital of France?"


def _source(folder):
    return ModelSource(card_from_dir(folder), "dir", folder)


def test_gguf_launch_answers_on_stdout_and_keeps_the_chat(berth, smollm2_gguf):
    result = berth(
        "launch",
        "--gguf",
        str(smollm2_gguf),
        "--no-tui",
        # it runs through llama.cpp (Q4_1 as stored), which answers with a plain system prompt; under the
        # template's default one ("… named SmolLM …") greedy decoding wanders off
        "--system",
        "You are a helpful assistant.",
        "--prompt",
        "-",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        input=QUESTION + "\n",
    )
    assert result.exit_code == 0, result.stderr[-2000:]
    assert "Paris" in result.stdout
    assert result.stdout.strip().count("\n") <= 1  # the reply and nothing else
    assert "Memory at" in result.stderr and "measured" in result.stderr
    chats = json.loads(berth("history", "list", "--json").stdout)["chats"]
    assert len(chats) == 1 and chats[0]["messages"] == 3  # system, user, assistant
    exported = berth("history", "export", str(chats[0]["id"]), "--format", "md").stdout
    assert QUESTION in exported and "Paris" in exported
    (measured,) = Store().measurements()
    assert measured.model_id == "local/SmolLM2-135M-Instruct.Q4_1" and measured.peak_bytes > 0


def test_safetensors_folder_two_turn_chat_with_measurement(smollm2_dir, tmp_path):
    loaded = load_model(
        _source(smollm2_dir), cpu_host(), PlanRequest(context=1024), LoadOptions(show_progress=False)
    )
    try:
        assert loaded.plan.strategy == "cpu" and loaded.device_map_differences == ()
        store = Store(tmp_path / "b.db")
        session = open_session(loaded, store, system="You are a helpful assistant.", settings=GREEDY)
        loaded.meter.phase()
        first = session.send(QUESTION)
        assert "Paris" in first.text
        measured = loaded.measurement(
            first.prompt_tokens + first.new_tokens, first.time_to_first_token_s, first.tokens_per_s
        )
        # This test process has loaded other models before, so its RSS holds their leftovers: only check that
        # the figures are there and sane (bench/launch.py compares them in fresh processes, within 5%).
        assert measured.devices["cpu"] >= loaded.plan.placements[0].weights_bytes
        assert measured.estimated_bytes > loaded.plan.placements[0].weights_bytes
        second = session.send("And what is the capital of Germany?")
        assert "Berlin" in second.text
        assert second.tokens_per_s and second.time_to_first_token_s
        messages = store.chat(session.chat_id).messages
        assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant"]
        assert messages[2].content == first.text and messages[4].content == second.text
    finally:
        loaded.close()


def test_disk_offload_under_a_small_memory_budget(smollm2_dir):
    # RAM for the runtime and about a third of the weights: the rest must go to disk.
    budget = PlanRequest(context=512, max_memory={"cpu": int(0.6 * 2**30)})
    notes: list[str] = []
    loaded = load_model(
        _source(smollm2_dir), cpu_host(), budget, LoadOptions(show_progress=False), notify=notes.append
    )
    try:
        plan = loaded.plan
        assert plan.strategy == "disk"
        devices = set(plan.device_map.values())
        assert devices == {"cpu", "disk"}
        assert loaded.device_map_differences == ()
        assert set(loaded.model.hf_device_map.values()) == {"cpu", "disk"}
        reply = open_session(loaded, settings=GREEDY).send(QUESTION)
        assert "Paris" in reply.text
    finally:
        loaded.close()


def test_out_of_memory_steps_down_the_ladder(smollm2_dir):
    notes: list[str] = []
    # A CPU whose measured linear layer ran fastest in fp32: the planner's first choice is fp32, about 0.8 GB
    # more while loading.
    plain = cpu_host(bf16=False)
    fp32_fastest = (("bfloat16", 5e-3), ("float32", 3e-3))
    host = dataclasses.replace(plain, cpu=dataclasses.replace(plain.cpu, linear_seconds=fp32_fastest))
    options = LoadOptions(memory_limits={"cpu": 400 * 10**6}, show_progress=False)
    loaded = load_model(_source(smollm2_dir), host, PlanRequest(context=512), options, notify=notes.append)
    try:
        first, *rest = loaded.attempts
        assert first.plan.precision.label == "fp32" and first.error and "cap" in first.error
        assert rest and rest[-1].error is None
        assert (loaded.plan.strategy, loaded.plan.precision.label) != ("cpu", "fp32")
        assert any("ran out of memory" in r for r in loaded.plan.reasons)
        assert any("stepping down the ladder" in n for n in notes)
        assert "Paris" in open_session(loaded, settings=GREEDY).send(QUESTION).text
    finally:
        loaded.close()
