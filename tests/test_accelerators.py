"""Accelerators as the device reports them: NVML totals, CUDA totals, the GPUs people plan for today."""

from __future__ import annotations

from launcher.fleet.sizing import gpu_budget_bytes
from launcher.fleet.types import EngineSettings, NodeGroup
from launcher.plan.advice import named_host
from registry.schema import CUDA_DRIVER_RESERVE_BYTES

GIB = 2**30
MIB = 2**20


def test_h100_is_planned_with_what_nvml_and_cuda_report_not_80_gb(catalog):
    h100 = catalog.accelerator("h100-sxm")
    assert h100.total_bytes == 85_520_809_984  # NVML: 81559 MiB, not 80 GB read as 74.5 GiB
    assert h100.cuda_total_bytes == int(79.18 * GIB)  # what cudaMemGetInfo (and so vLLM) reports
    host = named_host(h100, 8)
    assert all(g.total_bytes == 85_520_809_984 for g in host.gpus)
    group = NodeGroup("g", h100, 8, 1, 10**12, 64, True)
    assert gpu_budget_bytes(group, EngineSettings(gpu_memory_utilization=0.9)) == int(int(79.18 * GIB) * 0.9)


def test_device_reported_totals(catalog):
    expected_mib = {
        "h200": 143771,
        "b200": 183359,
        "h20": 97871,
        "a100-80gb": 81920,
        "a100-40gb": 40960,
        "a10": 23028,
        "l40s": 46068,
        "l4": 23034,
        "rtx-4090": 24564,
        "rtx-5090": 32607,
        "rtx-3090": 24576,
        "t4": 15360,
    }
    for acc_id, mib in expected_mib.items():
        assert catalog.accelerator(acc_id).total_bytes == mib * MIB, acc_id
    # Without a measured CUDA total, the driver's reserve comes off NVML's figure.
    h200 = catalog.accelerator("h200")
    assert h200.cuda_total_bytes == 143771 * MIB - CUDA_DRIVER_RESERVE_BYTES
    assert abs(h200.cuda_total_bytes / GIB - 139.8) < 0.2


def test_gpus_people_plan_for_today_are_in_the_catalog_with_sources(catalog):
    for acc_id in (
        "b200",
        "h20",
        "l40",
        "rtx-6000-ada",
        "rtx-a6000",
        "rtx-5080",
        "rtx-5070-ti",
        "a10",
        "mi250x",
        "mi325x",
    ):
        acc = catalog.accelerator(acc_id)
        assert acc.source and acc.bandwidth_bytes_per_s > 0 and acc.bf16_tflops > 0
    for acc in catalog.accelerators:
        # mi300x: its rocm-smi citation sits in the comment above the entry (catalog.yaml)
        if acc.usable_memory_bytes and acc.vendor != "apple" and acc.id != "mi300x":
            # a driver total is never quoted without saying where it was read
            assert "MiB" in acc.source or "total" in acc.source.lower() or "reported" in acc.source, acc.id


def test_a100_pcie_40gb_is_its_own_pcie_entry(catalog):
    pcie = catalog.accelerator("a100-pcie-40gb")
    assert pcie.id == "a100-pcie-40gb" and pcie.interconnect == "pcie"
    assert catalog.match_gpu_name("NVIDIA A100-PCIE-40GB") is pcie
    assert catalog.accelerator("a100-40gb").interconnect == "nvlink"
    # NVML names that contain another entry's name resolve to their own card.
    assert catalog.match_gpu_name("NVIDIA A100 80GB PCIe").id == "a100-pcie-80gb"
    assert catalog.match_gpu_name("NVIDIA GH200 480GB").id == "gh200"
    assert catalog.match_gpu_name("NVIDIA H100 NVL").id == "h100-nvl"
    assert catalog.match_gpu_name("NVIDIA A10").id == "a10"
    assert catalog.match_gpu_name("NVIDIA A10G").id == "a10g"
