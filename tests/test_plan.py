"""The planner's choices on named hardware: the ladder, the reasons, and what it says when nothing fits."""

from __future__ import annotations

import pytest

from launcher.machine.host import CpuInfo, GpuInfo, HostSnapshot
from launcher.plan.advice import named_host
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.ladder import make_plan, plan_or_raise
from launcher.plan.request import Plan, PlanRequest
from registry.memory import Precision, weight_bytes

GB = 10**9


def cpu_host(
    ram_gb: float, disk_gb: float | None = None, features: frozenset[str] = frozenset()
) -> HostSnapshot:
    ram = int(ram_gb * GB)
    return HostSnapshot(
        label=f"cpu,ram={ram_gb}GB",
        gpus=(),
        ram_total_bytes=ram,
        ram_available_bytes=ram,
        disk_free_bytes=int(disk_gb * GB) if disk_gb else None,
        cpu=CpuInfo(features=features),
        source="spec",
    )


def test_falcon_180b_sharded_on_8_a100_and_int8_on_4(catalog):
    card = catalog.get("tiiuae/falcon-180B")
    a100 = catalog.accelerator("a100-80gb")
    eight = plan_or_raise(card, named_host(a100, 8))
    assert eight.strategy == "sharded" and eight.precision == Precision("bfloat16")
    assert len(eight.placements) == 8
    assert sum(p.weights_bytes for p in eight.placements) == weight_bytes(card, Precision("bfloat16"))
    assert all(p.free_after_bytes > 0 for p in eight.placements)
    four = plan_or_raise(card, named_host(a100, 4))
    assert four.precision.quant == "int8" and len(four.placements) == 4
    assert any("bf16 on 4 GPUs" in r and "→ no" in r for r in four.reasons)


def test_mistral_7b_bf16_on_4090_int8_on_12gb(catalog):
    card = catalog.get("mistralai/Mistral-7B-v0.1")
    on_4090 = plan_or_raise(card, named_host(catalog.accelerator("rtx-4090"), 1))
    assert (
        on_4090.strategy == "gpu" and on_4090.precision.dtype == "bfloat16" and on_4090.device_map == {"": 0}
    )
    twelve = catalog.accelerator("rtx-3060")
    assert twelve.memory_bytes == 12 * 2**30
    on_12 = plan_or_raise(card, named_host(twelve, 1))
    assert on_12.precision.quant == "int8"
    assert any(r.startswith("bf16 on GPU 0") and "→ no" in r for r in on_12.reasons)


def test_danube_on_cpu_with_8gb(catalog):
    plan = plan_or_raise(catalog.get("h2oai/h2o-danube-1.8b-chat"), cpu_host(8))
    assert plan.strategy == "cpu" and plan.device_map == {"": "cpu"}
    assert plan.placements[0].free_after_bytes > 0
    assert plan.speed.decode_tokens_per_s > 1


def test_cpu_dtype_follows_cpu_features(catalog):
    card = catalog.get("h2oai/h2o-danube-1.8b-chat")
    assert plan_or_raise(card, cpu_host(32)).precision.dtype == "float32"
    amx = cpu_host(32, features=frozenset({"amx_bf16", "avx512_bf16"}))
    assert plan_or_raise(card, amx).precision.dtype == "bfloat16"


def test_llama_405b_on_one_4090_does_not_fit_and_says_what_would(catalog):
    card = catalog.get("meta-llama/Llama-3.1-405B-Instruct")
    host = named_host(catalog.accelerator("rtx-4090"), 1, ram_bytes=64 * GB)
    result = make_plan(card, host, accelerators=catalog.accelerators)
    assert isinstance(result, DoesNotFitError)
    assert result.required_bytes > result.available_bytes
    assert any("--hardware" in s for s in result.suggestions), result.suggestions


@pytest.mark.parametrize("gpus", [8, 1])
def test_full_context_that_fits_in_total_says_what_stops_it(catalog, gpus):
    """Llama 4 Scout at its 10,485,760 tokens: its weights and KV cache are less than the GPUs and RAM offer
    together, so 'needs X, Y usable' would contradict itself; the verdict names the device whose activations
    alone are more than it has."""
    from launcher.display import gib
    from launcher.plan.placement import gpu_reserve
    from launcher.plan.report import does_not_fit_to_dict, render_does_not_fit

    card = catalog.get("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    host = named_host(catalog.accelerator("h100-sxm"), gpus)
    context = card.context_length
    result = make_plan(card, host, PlanRequest(context=context), accelerators=catalog.accelerators)
    assert isinstance(result, DoesNotFitError)
    text = render_does_not_fit(result, host.label).splitlines()[0]
    if result.required_bytes <= result.available_bytes:
        gpu = host.gpus[0]
        activations = gpu_reserve(card, gpu, context, 1, "bfloat16")
        assert activations > gpu.usable_bytes
        assert f"need {gib(activations)} on GPU 0" in text and f"which has {gib(gpu.usable_bytes)}" in text
        assert "is usable." not in text and does_not_fit_to_dict(result)["reason"] == result.reason
    else:
        assert not result.reason and f"{gib(result.available_bytes)} is usable." in text
    # the same verdict without the search for ways out (what `berth list` shows)
    bare = make_plan(card, host, PlanRequest(context=context), explain=False)
    assert isinstance(bare, DoesNotFitError) and bare.reason == result.reason


def test_gpu_plus_cpu_offload_reserves_the_streamed_layer(catalog):
    card = catalog.get("google/gemma-2-9b-it")
    host = named_host(catalog.accelerator("rtx-4090"), 1, ram_bytes=64 * GB)
    small = HostSnapshot(
        label="8GB GPU",
        gpus=(GpuInfo(0, "small", total_bytes=8 * GB, free_bytes=8 * GB, compute_capability=(8, 6)),),
        ram_total_bytes=host.ram_total_bytes,
        ram_available_bytes=host.ram_available_bytes,
    )
    # 1,024 tokens: Gemma-2 runs eager attention, whose score matrix at 4,096 tokens (16 heads x 4,096^2 x
    # 10.7 bytes = 2.9 GB) would leave an 8 GB card no room for layers.
    plan = plan_or_raise(card, small, PlanRequest(quant="none", context=1024))
    assert plan.strategy == "offload"
    assert set(plan.device_map.values()) == {0, "cpu"}
    gpu = plan.placements[0]
    assert gpu.used_bytes <= gpu.budget_bytes
    assert plan.speed.bottleneck == "PCIe copies"


def test_disk_offload_when_ram_is_short(catalog):
    card = catalog.get("mistralai/Mistral-7B-v0.1")
    plan = plan_or_raise(card, cpu_host(8, disk_gb=200))
    assert plan.strategy == "disk" and "disk" in set(plan.device_map.values())
    without_disk = make_plan(card, cpu_host(8))
    assert isinstance(without_disk, DoesNotFitError)


def test_forced_choices_and_bad_requests(catalog):
    card = catalog.get("mistralai/Mistral-7B-v0.1")
    host = named_host(catalog.accelerator("rtx-4090"), 2)
    assert plan_or_raise(card, host, PlanRequest(quant="nf4")).precision.quant == "nf4"
    assert plan_or_raise(card, host, PlanRequest(gpus=(1,))).placements[0].device == "cuda:1"
    with pytest.raises(PlanRequestError, match="at most"):
        make_plan(card, host, PlanRequest(context=card.context_length + 1))
    with pytest.raises(PlanRequestError, match="NVIDIA GPU"):
        make_plan(card, cpu_host(64), PlanRequest(quant="int8"))
    with pytest.raises(PlanRequestError, match="GPU 5"):
        make_plan(card, host, PlanRequest(gpus=(5,)))


def test_pre_ampere_gpu_plans_fp16(catalog):
    card = catalog.get("h2oai/h2o-danube-1.8b-chat")
    t4 = HostSnapshot(
        label="t4",
        gpus=(GpuInfo(0, "Tesla T4", total_bytes=16 * GB, free_bytes=15 * GB, compute_capability=(7, 5)),),
        ram_total_bytes=32 * GB,
        ram_available_bytes=32 * GB,
    )
    assert plan_or_raise(card, t4).precision.dtype == "float16"


def test_moe_quantization_is_honest(catalog):
    card = catalog.get("mistralai/Mixtral-8x7B-Instruct-v0.1")
    plan = make_plan(card, named_host(catalog.accelerator("a100-80gb"), 1), PlanRequest(quant="int8"))
    assert isinstance(plan, DoesNotFitError)  # experts stay bf16: 88 GiB does not fit in 80 GB
    two = plan_or_raise(card, named_host(catalog.accelerator("a100-80gb"), 2), PlanRequest(quant="int8"))
    assert any("fused" in w for w in two.warnings)


def test_longer_context_costs_kv_on_every_gpu(catalog):
    card = catalog.get("meta-llama/Llama-3.1-70B-Instruct")
    host = named_host(catalog.accelerator("h100-sxm"), 4)
    short = plan_or_raise(card, host, PlanRequest(context=4096))
    long = plan_or_raise(card, host, PlanRequest(context=65536))
    assert sum(p.kv_cache_bytes for p in long.placements) == 16 * sum(
        p.kv_cache_bytes for p in short.placements
    )
    assert all(p.kv_cache_bytes > 0 for p in long.placements)
    assert long.speed.decode_tokens_per_s < short.speed.decode_tokens_per_s


@pytest.mark.parametrize(
    "model", ["openai-community/gpt2", "google-bert/bert-base-uncased", "tiiuae/falcon-7b"]
)
def test_plans_are_consistent(catalog, model):
    card = catalog.get(model)
    # 24 GB: Falcon-7B in bf16 (13.8 GB of weights) plus a CPU prefill's activations at 2048 tokens no longer
    # fits in 16 GB once the CPU activation factor (registry.memory.CPU_ACTIVATION_FACTOR) is counted.
    for host in (cpu_host(24), named_host(catalog.accelerator("rtx-4090"), 2)):
        plan = make_plan(card, host)
        assert isinstance(plan, Plan)
        assert plan.required_bytes == sum(p.used_bytes for p in plan.placements)
        assert all(p.used_bytes <= p.budget_bytes for p in plan.placements)
        assert plan.reasons[-1].startswith("→")


@pytest.mark.parametrize("cap_mib", [200, 600, 1024, 4096])
@pytest.mark.parametrize("model", ["openai-community/gpt2", "HuggingFaceTB/SmolLM2-360M-Instruct"])
def test_max_memory_is_a_real_cap_on_ram(catalog, model, cap_mib):
    """--max-memory cpu=N: every device that runs or streams stays within what it may use (RAM within the cap,
    its runtime and streaming reserve included, even when every block went to disk), or the plan is refused."""
    cap = cap_mib * 2**20
    host = cpu_host(64, disk_gb=100)
    result = make_plan(catalog.get(model), host, PlanRequest(max_memory={"cpu": cap}))
    if isinstance(result, DoesNotFitError):
        assert cap_mib <= 600  # only a cap below the smallest runnable footprint is refused
        return
    for placement in result.placements:
        assert placement.used_bytes <= placement.budget_bytes, placement
    ram = next(p for p in result.placements if p.device == "cpu")
    assert ram.budget_bytes == cap  # the cap is the budget shown, not the machine's free RAM


def test_a_ram_cap_below_the_runtime_refuses_even_disk_offload(catalog):
    host = cpu_host(64, disk_gb=100)
    result = make_plan(
        catalog.get("openai-community/gpt2"), host, PlanRequest(max_memory={"cpu": 200 * 2**20})
    )
    assert isinstance(result, DoesNotFitError)
