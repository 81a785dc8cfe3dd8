"""Loading as planned: from_pretrained arguments, device-map checks, safety refusals, and every family loaded
for real (tiny random weights) through the same path a launch takes."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_FAMILIES, cpu_host, save_tiny_model

from launcher.plan.advice import named_host
from launcher.plan.ladder import plan_or_raise
from launcher.plan.request import PlanRequest
from launcher.run.errors import LoadError, MemoryBudgetExceeded, RemoteCodeRefusedError, UnsafeWeightsError
from launcher.run.load import (
    LoadOptions,
    compare_device_maps,
    from_pretrained_kwargs,
    is_out_of_memory,
    load_model,
)
from launcher.run.session import GenerationSettings, open_session
from launcher.run.source import ModelSource
from launcher.run.store import Store
from registry.importer import card_from_dir

GREEDY = GenerationSettings(max_new_tokens=6, temperature=0)


def _source(folder, **card_changes):
    card = card_from_dir(folder)
    if card_changes:
        card = card.model_copy(update=card_changes)
    return ModelSource(card, "dir", folder)


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_every_family_loads_as_planned_and_answers(family, tiny_models, tmp_path):
    folder = tiny_models(family)
    source = _source(folder)
    loaded = load_model(source, cpu_host(), PlanRequest(context=64), LoadOptions(show_progress=False))
    try:
        assert loaded.plan.strategy == "cpu" and loaded.plan.device_map == {"": "cpu"}
        assert loaded.device_map_differences == ()
        param = next(loaded.model.parameters())
        assert param.dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[loaded.plan.precision.label]
        store = Store(tmp_path / "b.db")
        session = open_session(loaded, store, settings=GREEDY)
        if family == "bert":
            reply = session.send("the cat sat on the [MASK] .")
            assert len(reply.candidates) == 5
            assert all(0 <= c.score <= 1 for c in reply.candidates)
            assert reply.candidates[0].text.startswith("the cat sat on the ")
        else:
            reply = session.send("the cat sat on the mat")
            assert reply.error is None and reply.finish_reason in ("stop", "length")
            assert reply.new_tokens >= 1 and reply.prompt_tokens > 0
        assert session.task == TINY_FAMILIES[family]["task"]
        assert [m.role for m in store.chat(session.chat_id).messages] == ["user", "assistant"]
    finally:
        loaded.close()


def test_chat_template_and_sampling_settings(tiny_models):
    loaded = load_model(
        _source(tiny_models("mistral")), cpu_host(), PlanRequest(context=64), LoadOptions(show_progress=False)
    )
    try:
        session = open_session(loaded, system="be brief", settings=GenerationSettings(8, 0.9, 0.9, seed=7))
        first = session.send("hello world")
        session.reset(system="be brief")
        again = session.send("hello world")
        assert first.text == again.text  # same seed, same sample
        assert first.prompt_tokens == len(
            loaded.tokenizer("system : be brief user : hello world assistant :")["input_ids"]
        )
    finally:
        loaded.close()


def test_long_conversations_drop_the_oldest_turns(tiny_models):
    loaded = load_model(
        _source(tiny_models("mistral")), cpu_host(), PlanRequest(context=40), LoadOptions(show_progress=False)
    )
    try:
        session = open_session(loaded, settings=GenerationSettings(max_new_tokens=4, temperature=0))
        replies = [session.send("the cat sat on the mat and the dog sat on the sea") for _ in range(4)]
        assert replies[-1].dropped_turns > 0
        assert all(r.prompt_tokens + r.new_tokens <= 40 for r in replies)
    finally:
        loaded.close()


def test_pickle_weights_are_refused_unless_allowed(tmp_path):
    folder = save_tiny_model("gpt2", tmp_path / "pickled", pickle=True)
    source = _source(folder)
    with pytest.raises(UnsafeWeightsError) as caught:
        load_model(source, cpu_host(), PlanRequest(context=32))
    assert caught.value.files == ["pytorch_model.bin"] and "--allow-pickle" in caught.value.hint
    loaded = load_model(
        source, cpu_host(), PlanRequest(context=32), LoadOptions(allow_pickle=True, show_progress=False)
    )
    try:
        assert open_session(loaded, settings=GREEDY).send("the cat").new_tokens >= 1
    finally:
        loaded.close()


def test_remote_code_is_refused_unless_asked_for_this_launch(tiny_models):
    source = _source(tiny_models("gpt2"), remote_code=True)
    with pytest.raises(RemoteCodeRefusedError) as caught:
        load_model(source, cpu_host(), PlanRequest(context=32))
    assert "--trust-remote-code" in caught.value.hint
    kwargs = from_pretrained_kwargs(plan_or_raise(source.card, cpu_host()), source, LoadOptions())
    assert kwargs["trust_remote_code"] is False
    loaded = load_model(
        source, cpu_host(), PlanRequest(context=32), LoadOptions(trust_remote_code=True, show_progress=False)
    )
    loaded.close()


def test_a_gpu_plan_is_not_loaded_on_a_machine_without_one(tiny_models, catalog, berth_home):
    source = _source(tiny_models("gpt2"))
    host = named_host(catalog.accelerator("rtx-4090"), 1)
    with pytest.raises(LoadError, match="no CUDA GPU"):
        load_model(source, host, PlanRequest(context=32))
    assert list((berth_home / "offload").iterdir()) == []  # the offload folder made for it is gone


def test_kwargs_follow_the_plan_like_the_emitted_snippet(catalog, tiny_models):
    from launcher.plan.emit import python_snippet

    card = catalog.get("mistralai/Mistral-7B-v0.1")
    host = named_host(catalog.accelerator("rtx-4090"), 1, ram_bytes=64 * 10**9)
    source = ModelSource(card, "hub")
    gpu = plan_or_raise(card, host)
    kwargs = from_pretrained_kwargs(gpu, source, LoadOptions())
    assert kwargs["dtype"] == torch.bfloat16 and kwargs["device_map"] == {"": 0}
    assert kwargs["use_safetensors"] is True and "offload_folder" not in kwargs
    assert "device_map='cuda:0'" in python_snippet(card, gpu).replace('"', "'")
    small = cpu_host(ram_bytes=6 * 10**9)
    disk = plan_or_raise(card, small, PlanRequest(context=512))
    assert disk.strategy == "disk"
    kwargs = from_pretrained_kwargs(disk, source, LoadOptions(), offload_dir=None)
    assert "offload_folder" in kwargs and set(kwargs["device_map"].values()) == {"cpu", "disk"}
    assert "offload_folder" in python_snippet(card, disk)
    gguf = ModelSource(card, "gguf", tiny_models("gpt2") / "model.gguf")
    kwargs = from_pretrained_kwargs(gpu, gguf, LoadOptions())
    assert kwargs["gguf_file"] == "model.gguf" and "use_safetensors" not in kwargs


def test_device_map_comparison():
    planned = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "lm_head": "cpu",
    }
    assert compare_device_maps(planned, dict(planned)) == []
    assert compare_device_maps({"": "cpu"}, {"": "cpu"}) == []
    assert compare_device_maps({"": 0}, {"": 0}) == []
    moved = dict(planned, **{"model.layers.1": "cpu"})
    assert compare_device_maps(planned, moved) == ["model.layers.1: planned on disk, loaded on cpu"]
    assert compare_device_maps({"": 0}, {"model.layers.0": 0, "lm_head": "cpu"}) == [
        "lm_head: planned on cuda:0, loaded on cpu"
    ]


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")
    )
    assert is_out_of_memory(MemoryBudgetExceeded("cpu", 2, 1))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_an_mps_plan_loads_on_mps_and_not_on_a_machine_without_it(tiny_models, catalog):
    """Apple silicon (issue 16): the plan hands from_pretrained device_map={'': 'mps'}; a torch without MPS
    (this Linux machine) refuses it in words instead of failing inside transformers."""
    from launcher.machine.hwspec import parse_hardware_spec

    mac = parse_hardware_spec("m4-max,ram=128GB", catalog)
    card = catalog.get("mistralai/Mistral-7B-v0.1")
    plan = plan_or_raise(card, mac)
    kwargs = from_pretrained_kwargs(plan, ModelSource(card, "hub"), LoadOptions())
    assert kwargs["device_map"] == {"": "mps"} and kwargs["dtype"] == torch.bfloat16
    assert plan.uses_gpu
    if not torch.backends.mps.is_available():
        with pytest.raises(LoadError, match="mps"):
            load_model(_source(tiny_models("gpt2")), mac, PlanRequest(context=32))
