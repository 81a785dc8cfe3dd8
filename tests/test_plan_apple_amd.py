"""Planning for unified memory (Apple silicon, torch MPS) and AMD GPUs (torch's ROCm build), through named
specs and the shipped catalog."""

from __future__ import annotations

import json

import pytest

from launcher.machine.errors import HardwareSpecError
from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.ladder import make_plan, plan_or_raise
from launcher.plan.request import Plan, PlanRequest
from registry.catalog import Catalog

GIB = 2**30
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"


def test_an_m4_max_with_128gb_is_unified_memory(catalog: Catalog):
    host = parse_hardware_spec("m4-max,ram=128GB", catalog)
    (gpu,) = host.gpus
    assert gpu.unified_memory and gpu.vendor == "apple"
    assert host.ram_total_bytes == 128 * GIB  # Apple's GB are GiB: hw.memsize of a 128 GB Mac
    assert gpu.total_bytes == 96 * GIB  # macOS's working-set limit, 3/4 above 36 GB
    assert gpu.bandwidth_bytes_per_s == 546 * 10**9


def test_a_mac_spec_without_ram_has_the_chips_smallest_memory(catalog: Catalog):
    host = parse_hardware_spec("m3-pro", catalog)
    assert host.ram_total_bytes == 18 * GIB and host.gpus[0].total_bytes == 12 * GIB


@pytest.mark.parametrize("spec", ["2xm4-max", "m4-max,h100"])
def test_a_mac_has_one_chip(catalog: Catalog, spec: str):
    with pytest.raises(HardwareSpecError, match="one Apple chip"):
        parse_hardware_spec(spec, catalog)


def test_llama_8b_runs_in_bf16_on_mps(catalog: Catalog):
    host = parse_hardware_spec("m4-max,ram=128GB", catalog)
    plan = plan_or_raise(catalog.get(LLAMA_8B), host)
    assert plan.precision.dtype == "bfloat16" and plan.precision.quant is None
    assert plan.device_map == {"": "mps"}
    assert plan.placements[0].device == "mps"
    assert any("iogpu.wired_limit_mb=122880" in w for w in plan.warnings)
    # Decode is bound by the chip's 546 GB/s: about 20 tokens/s for 16 GB of bf16 weights.
    assert 10 < plan.speed.decode_tokens_per_s < 40


def test_a_70b_model_runs_on_a_mac_only_as_a_gguf_quant(catalog: Catalog):
    host = parse_hardware_spec("m4-max,ram=128GB", catalog)
    result = make_plan(catalog.get(LLAMA_70B), host, accelerators=catalog.accelerators)
    assert isinstance(result, DoesNotFitError)
    assert any("GGUF" in s and "llama.cpp with Metal" in s for s in result.suggestions)
    assert not any("offload" in a for a in result.detail.split(";") if "mps" in a)


def test_raising_the_wired_limit_is_suggested_when_it_is_enough(catalog: Catalog):
    host = parse_hardware_spec("m3-max,ram=36GB", catalog)  # the GPU may use 24 GiB of 36 GiB
    card = catalog.get("mistralai/Mistral-Nemo-Instruct-2407")  # 24.6 GiB in bf16
    result = make_plan(card, host, PlanRequest(device="gpu"))
    assert isinstance(result, DoesNotFitError)
    assert any("iogpu.wired_limit_mb=" in s for s in result.suggestions)
    on_cpu = plan_or_raise(card, host)  # left to choose, it runs on the CPU, and says how to get mps
    assert on_cpu.device_map == {"": "cpu"}
    assert any("enough for mps" in w for w in on_cpu.warnings)


def test_m1_has_no_bf16_so_mps_runs_fp16(catalog: Catalog):
    host = parse_hardware_spec("m1,ram=16GB", catalog)
    plan = plan_or_raise(catalog.get("Qwen/Qwen2.5-1.5B-Instruct"), host)
    assert plan.precision.dtype == "float16" and plan.device_map == {"": "mps"}


def test_mps_has_no_bitsandbytes(catalog: Catalog):
    host = parse_hardware_spec("m4-max,ram=128GB", catalog)
    with pytest.raises(PlanRequestError, match=r"GGUF quant through llama\.cpp with Metal"):
        make_plan(catalog.get(LLAMA_8B), host, PlanRequest(quant="int8"))


def test_unified_memory_is_never_offloaded_to_itself(catalog: Catalog):
    host = parse_hardware_spec("m2,ram=16GB", catalog)
    result = make_plan(catalog.get(LLAMA_8B), host)
    strategies = {result.strategy} if isinstance(result, Plan) else set()
    assert "offload" not in strategies


def test_an_mi300x_plans_bf16_under_rocm_and_may_quantize(catalog: Catalog):
    host = parse_hardware_spec("mi300x", catalog)
    plan = plan_or_raise(catalog.get(LLAMA_70B), host)
    assert plan.precision.dtype == "bfloat16" and plan.device_map == {"": 0}
    quantized = plan_or_raise(catalog.get(LLAMA_8B), host, PlanRequest(quant="nf4"))
    assert quantized.precision.quant == "nf4"  # bitsandbytes lists AMD GPUs among its platforms


def test_a_radeon_card_plans_like_a_gpu(catalog: Catalog):
    host = parse_hardware_spec("rx-7900-xtx", catalog)
    plan = plan_or_raise(catalog.get(LLAMA_8B), host)
    assert plan.strategy == "gpu" and plan.precision.dtype == "bfloat16"


def test_berth_list_and_probe_on_a_mac_spec(berth):
    listed = berth("list", "--hardware", "m4-max,ram=128GB")
    assert listed.exit_code == 0
    assert "GPU (mps, unified memory) Apple M4 Max 96.0 GiB/96.0 GiB" in listed.output
    assert "Runtime: torch on mps" in listed.output and "iogpu.wired_limit_mb=" in listed.output
    assert "as a GGUF quant through llama.cpp with Metal:" in listed.output
    assert f"  {LLAMA_70B}: Q8_0" in listed.output
    data = json.loads(berth("list", "--hardware", "m4-max,ram=128GB", "--json").output)
    row = {m["id"]: m for m in data["models"]}
    assert row[LLAMA_8B]["runtime"] == "torch mps" and row[LLAMA_8B]["dtype"] == "bfloat16"
    assert row[LLAMA_70B]["fits"] is False and row[LLAMA_70B]["gguf_only"] == "Q8_0 via llama.cpp Metal"
    probed = json.loads(berth("probe", "--hardware", "m4-max,ram=128GB", "--json").output)
    assert probed["gpus"][0]["unified_memory"] is True
    assert probed["gpus"][0]["total_bytes"] == 96 * GIB and probed["ram_total_bytes"] == 128 * GIB


def test_a_model_left_to_the_cpu_of_a_small_mac_points_at_gguf(catalog: Catalog, berth):
    host = parse_hardware_spec("m1", catalog)  # 8 GB: the GPU may use 5.3 GiB
    plan = plan_or_raise(catalog.get(LLAMA_8B), host)
    assert not plan.uses_gpu
    assert any("Q4_K_M GGUF" in w and "llama.cpp with Metal" in w for w in plan.warnings)
    listed = berth("list", "--hardware", "m1", "--search", "Llama-3.1-8B")
    assert f"  {LLAMA_8B}: Q4_K_M" in listed.output
