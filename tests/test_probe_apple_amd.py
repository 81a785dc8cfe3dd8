"""Apple silicon and AMD probes on recorded tool outputs (tests/data/probe/README.md says where each comes from).

The tools are faked only at their boundary: a runner that returns the recorded stdout of sysctl and
system_profiler, a sysfs root that is a recorded tree, an amdsmi stand-in that returns recorded answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from launcher.cli.probe_cmd import describe, host_json
from launcher.machine.amd import card_name, read_sysfs_cards
from launcher.machine.apple import (
    DISPLAYS_COMMAND,
    SYSCTL_COMMAND,
    chip_from_outputs,
    parse_displays,
    parse_sysctl,
    working_set_limit,
)
from launcher.machine.probe import probe_host
from registry.catalog import Catalog

DATA = Path(__file__).parent / "data" / "probe"
GIB = 2**30


def recorded(folder: str, displays: bool = True) -> Any:
    """A runner answering sysctl and system_profiler with a recorded Mac's outputs (None for anything else)."""
    outputs: dict[tuple[str, ...], str] = {SYSCTL_COMMAND: (DATA / folder / "sysctl.txt").read_text()}
    if displays and (DATA / folder / "system_profiler.json").exists():
        outputs[DISPLAYS_COMMAND] = (DATA / folder / "system_profiler.json").read_text()
    asked: list[tuple[str, ...]] = []

    def run(argv: Sequence[str]) -> str | None:
        asked.append(tuple(argv))
        return outputs.get(tuple(argv))

    run.asked = asked  # type: ignore[attr-defined]
    return run


class RecordedAmdsmi:
    """amdsmi's Python API answering with the recorded answers of tests/data/probe/amd_mi300x_node/amdsmi.json."""

    def __init__(self, answers: list[dict[str, Any]], fail_init: bool = False) -> None:
        self.answers = answers
        self.fail_init = fail_init
        self.shut_down = False

    def amdsmi_init(self) -> None:
        if self.fail_init:
            raise RuntimeError("amdgpu driver not loaded")

    def amdsmi_shut_down(self) -> None:
        self.shut_down = True

    def amdsmi_get_processor_handles(self) -> list[int]:
        return list(range(len(self.answers)))

    def amdsmi_get_gpu_asic_info(self, handle: int) -> dict[str, Any]:
        return self.answers[handle]["asic"]

    def amdsmi_get_gpu_vram_usage(self, handle: int) -> dict[str, Any]:
        return self.answers[handle]["vram_usage"]


def mac(catalog: Catalog, folder: str, **kwargs: Any) -> Any:
    return probe_host(catalog, platform_name="darwin", run=recorded(folder, **kwargs), torch=None)


def linux(catalog: Catalog, root: Path, amdsmi: Any = None) -> Any:
    return probe_host(catalog, platform_name="linux", nvml=None, amdsmi=amdsmi, sysfs_root=root, torch=None)


# --------------------------------------------------------------------------- Apple silicon


def test_sysctl_and_system_profiler_of_an_m2_ultra():
    chip = chip_from_outputs(
        (DATA / "apple_m2_ultra/sysctl.txt").read_text(),
        (DATA / "apple_m2_ultra/system_profiler.json").read_text(),
    )
    assert chip is not None
    assert chip.brand == "Apple M2 Ultra"
    assert chip.memory_bytes == 192 * GIB
    assert (chip.performance_cores, chip.efficiency_cores, chip.gpu_cores) == (16, 8, 76)
    assert chip.wired_limit_mb == 0
    assert chip.gpu_limit_bytes == 144 * GIB  # three quarters above 36 GB


def test_the_gpu_share_of_unified_memory():
    assert working_set_limit(16 * GIB) == 16 * GIB * 2 // 3
    assert working_set_limit(36 * GIB) == 24 * GIB
    assert working_set_limit(64 * GIB) == 48 * GIB
    assert working_set_limit(192 * GIB, wired_limit_mb=180_000) == 180_000 * 2**20
    assert working_set_limit(16 * GIB, wired_limit_mb=64_000) == 16 * GIB  # never more than there is


def test_probe_json_of_an_m2_ultra_mac(catalog: Catalog):
    host = mac(catalog, "apple_m2_ultra")
    data = json.loads(json.dumps(host_json(host)))
    (gpu,) = data["gpus"]
    assert gpu["vendor"] == "apple" and gpu["unified_memory"] is True
    assert gpu["name"] == "Apple M2 Ultra (76-core GPU)"
    assert gpu["accelerator_id"] == "m2-ultra"
    assert gpu["total_bytes"] == 144 * GIB
    assert gpu["bandwidth_bytes_per_s"] == 800 * 10**9
    assert gpu["compute_capability"] == [8, 0] and gpu["supports_bf16"] is True
    assert data["ram_total_bytes"] == 192 * GIB
    assert data["cpu"]["model"] == "Apple M2 Ultra (16 performance + 8 efficiency cores)"
    assert data["cpu"]["physical_cores"] == 24 and data["cpu"]["logical_cores"] >= 24
    assert "(unified memory)" in describe(host)


def test_a_raised_wired_limit_is_what_the_gpu_gets(catalog: Catalog):
    text = (
        (DATA / "apple_m2_ultra/sysctl.txt")
        .read_text()
        .replace("iogpu.wired_limit_mb: 0", "iogpu.wired_limit_mb: 180000")
    )
    chip = chip_from_outputs(text, None)
    assert chip is not None and chip.gpu_limit_bytes == 180_000 * 2**20


def test_an_m3_ultra_without_system_profiler_still_probes(catalog: Catalog):
    host = mac(catalog, "apple_m3_ultra")
    (gpu,) = host.gpus
    assert gpu.accelerator_id == "m3-ultra" and gpu.name == "Apple M3 Ultra"
    assert gpu.total_bytes == 72 * GIB  # 3/4 of 96 GiB
    assert host.ram_total_bytes == 96 * GIB and host.cpu.physical_cores == 28
    assert any("GPU core count unknown" in w for w in host.warnings)


def test_recorded_m2_max_outputs_parse():
    values = parse_sysctl((DATA / "apple_m2_max/sysctl.txt").read_text())
    assert values["hw.memsize"] == "68719476736"
    assert values["hw.perflevel0.physicalcpu"] == "8" and values["hw.perflevel1.physicalcpu"] == "4"
    assert parse_displays((DATA / "apple_m2_max/system_profiler.json").read_text()) == ("Apple M2 Max", 30)
    # That report never asked sysctl for the brand string: without it there is no chip to name.
    assert chip_from_outputs((DATA / "apple_m2_max/sysctl.txt").read_text(), None) is None


def test_system_profiler_output_that_is_not_json_names_no_gpu():
    assert parse_displays("Graphics/Displays:\n\n    Apple M2 Max:\n") == (None, None)
    assert parse_displays('{"SPDisplaysDataType": [{"sppci_model": "AMD Radeon Pro 5500M"}]}') == (None, None)


def test_a_mac_whose_sysctl_fails_is_probed_without_a_gpu(catalog: Catalog):
    host = probe_host(catalog, platform_name="darwin", run=lambda argv: None, torch=None)
    assert host.gpus == ()
    assert any("sysctl" in w for w in host.warnings)


# --------------------------------------------------------------------------- AMD


def test_probe_json_of_an_mi300x_node_from_sysfs(catalog: Catalog):
    host = linux(catalog, DATA / "amd_mi300x_node/class/drm")
    data = json.loads(json.dumps(host_json(host)))
    assert data["gpu_count"] == 8
    assert [g["index"] for g in data["gpus"]] == list(range(8))
    first = data["gpus"][0]
    assert first["name"] == "AMD Instinct MI300X" and first["vendor"] == "amd"
    assert first["accelerator_id"] == "mi300x"
    assert first["total_bytes"] == 206141652992
    assert first["free_bytes"] == 206141652992 - 297611264
    assert first["used_bytes"] == 297611264
    assert first["bandwidth_bytes_per_s"] == 5_300_000_000_000
    assert first["supports_bf16"] is True
    assert not any("NVIDIA" in w for w in data["warnings"])  # no NVIDIA complaints on an AMD machine


def test_sysfs_skips_other_vendors_and_connectors():
    cards = read_sysfs_cards(DATA / "amd_mi300x_node/class/drm")
    assert [c.card for c in cards] == [1, 2, 3, 4, 5, 6, 7, 8]  # card0 is the BMC's VGA
    assert {c.device_id for c in cards} == {0x74A1}


def test_a_radeon_rx_7900_xt_is_told_from_its_siblings_by_memory(catalog: Catalog):
    host = linux(catalog, DATA / "amd_rx7900xt/class/drm")
    (gpu,) = host.gpus
    assert gpu.name == "AMD Radeon RX 7900 XT" and gpu.accelerator_id == "rx-7900-xt"
    assert gpu.total_bytes == 21458059264 and gpu.free_bytes == 21458059264 - 27856896
    assert card_name(0x744C, 24 * GIB) == "AMD Radeon RX 7900 XTX"
    assert card_name(0x7448, 48 * GIB) == "AMD Radeon PRO W7900"


def test_amdsmi_answers_are_read_when_it_is_installed(catalog: Catalog):
    answers = json.loads((DATA / "amd_mi300x_node/amdsmi.json").read_text())
    smi = RecordedAmdsmi(answers)
    host = linux(catalog, DATA / "amd_rx7900xt/class/drm", amdsmi=smi)  # amdsmi wins over sysfs
    assert [g.name for g in host.gpus] == ["AMD Instinct MI300X"] * 2
    assert host.gpus[0].total_bytes == 196592 * 2**20 == 206141652992
    assert host.gpus[0].used_bytes == 283 * 2**20
    assert host.gpus[1].accelerator_id == "mi300x"
    assert smi.shut_down


def test_amdsmi_that_cannot_start_falls_back_on_sysfs(catalog: Catalog):
    smi = RecordedAmdsmi([], fail_init=True)
    host = linux(catalog, DATA / "amd_mi300x_node/class/drm", amdsmi=smi)
    assert host.gpu_count == 8
    assert any("amdsmi did not start" in w for w in host.warnings)


def test_no_sysfs_tree_means_no_amd_gpu(catalog: Catalog, tmp_path: Path):
    host = linux(catalog, tmp_path / "missing")
    assert host.gpus == ()
    assert any("NVIDIA" in w for w in host.warnings)


@pytest.mark.parametrize("name", ["AMD Radeon PRO W7900", "AMD Radeon RX 7900 XTX", "Apple M4 Max"])
def test_issue_16_cards_are_in_the_catalog(catalog: Catalog, name: str):
    acc = catalog.match_gpu_name(name)
    assert acc is not None and acc.name == name


def test_an_apus_carve_out_is_no_gpu(catalog: Catalog):
    host = linux(catalog, DATA / "amd_steam_deck/class/drm")
    assert host.gpus == ()
    assert any("integrated GPU" in w for w in host.warnings)


def test_hip_visible_devices_picks_and_renumbers_amd_gpus(catalog: Catalog):
    root = DATA / "amd_mi300x_node/class/drm"
    host = probe_host(
        catalog,
        platform_name="linux",
        nvml=None,
        amdsmi=None,
        sysfs_root=root,
        torch=None,
        environ={"HIP_VISIBLE_DEVICES": "6,7"},
    )
    assert [g.index for g in host.gpus] == [0, 1]
    assert all(g.used_bytes == 297623552 for g in host.gpus)
    none = probe_host(
        catalog,
        platform_name="linux",
        nvml=None,
        amdsmi=None,
        sysfs_root=root,
        torch=None,
        environ={"ROCR_VISIBLE_DEVICES": "9"},
    )
    assert none.gpus == () and any("ROCR_VISIBLE_DEVICES" in w for w in none.warnings)


def test_the_suggested_wired_limit_leaves_macos_room():
    from launcher.machine.apple import suggested_wired_limit_mb

    assert suggested_wired_limit_mb(128 * GIB) == 120 * 1024  # 8 GiB left to macOS
    assert suggested_wired_limit_mb(8 * GIB) == 6 * 1024  # a quarter of a small Mac's memory
    assert suggested_wired_limit_mb(8 * GIB) * 2**20 > working_set_limit(8 * GIB)
