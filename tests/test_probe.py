"""Probing: the guarded NVML gateway against a fake NVML module, and this real machine's RAM, disk and CPU."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hardware_fakes import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GIB,
    GPU_IS_LOST,
    LIBRARY_NOT_FOUND,
    NOT_SUPPORTED,
    UNKNOWN,
    ExplodingNVMLError,
    FakeDevice,
    FakeNvml,
    FakeNVMLError,
    fake_mps_torch,
    fake_rocm_torch,
    h100,
    hardware_catalog,
)

import launcher.machine.bandwidth as bandwidth_module
import launcher.machine.probe as probe_module
from launcher.machine.bandwidth import cached_bandwidth, measure_bandwidth, save_bandwidth
from launcher.machine.errors import ProbeError
from launcher.machine.host import DEFAULT_CPU_BANDWIDTH
from launcher.machine.probe import (
    NvmlQuery,
    hf_cache_dir,
    nvlink_peers,
    probe_disk,
    probe_host,
    probe_nvidia_gpus,
    probe_torch_gpus,
)
from launcher.machine.sysinfo import cgroup_memory, parse_cpuinfo, visible_gpus
from registry.catalog import Catalog

FAILURES = {
    "NVMLError NotSupported": FakeNVMLError(NOT_SUPPORTED),
    "NVMLError GpuIsLost": FakeNVMLError(GPU_IS_LOST),
    "NVMLError FunctionNotFound": FakeNVMLError(FUNCTION_NOT_FOUND),
    "NVMLError Unknown": FakeNVMLError(UNKNOWN),
    "NVMLError whose str fails": ExplodingNVMLError(UNKNOWN),
    "OSError": OSError("ioctl failed"),
    "ctypes-like TypeError": TypeError("bad argument"),
}


@pytest.fixture(scope="module")
def hw_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return hardware_catalog(tmp_path_factory.mktemp("catalog"))


def probe_fake(catalog: Catalog, nvml: object, environ: dict[str, str] | None = None, **kwargs: Any):
    return probe_host(catalog, nvml=nvml, torch=None, environ=environ or {}, **kwargs)


# --------------------------------------------------------------------------- the gateway


class Library:
    def ok(self, x: int) -> int:
        return x * 2


@pytest.mark.parametrize("error", list(FAILURES.values()), ids=list(FAILURES))
def test_query_turns_every_failure_into_default_and_warning(error: BaseException):
    class Failing:
        def nvmlDeviceGetName(self, handle: object) -> str:
            raise error

    warnings: list[str] = []
    nvml = NvmlQuery(Failing(), warnings)
    assert nvml.query("nvmlDeviceGetName", object(), what="GPU 0 name") is None
    assert nvml.query("nvmlDeviceGetName", object(), default="?") == "?"
    assert len(warnings) == 2
    assert warnings[0].startswith("GPU 0 name: unknown (NVML nvmlDeviceGetName failed")
    assert nvml.last_error is error


def test_query_returns_the_reading_and_warns_about_nothing():
    warnings: list[str] = []
    nvml = NvmlQuery(Library(), warnings)
    assert nvml.query("ok", 21) == 42
    assert warnings == []
    assert nvml.last_error is None


def test_query_of_a_function_the_library_lacks():
    warnings: list[str] = []
    nvml = NvmlQuery(Library(), warnings)
    assert nvml.query("nvmlDeviceGetNvLinkState", 0, 1, what="NVLink") is None
    assert warnings == ["NVLink: unknown (this nvidia-ml-py has no nvmlDeviceGetNvLinkState)"]


def test_quiet_query_fails_silently_and_lost_gpu_is_recognised():
    warnings: list[str] = []
    nvml = NvmlQuery(FakeNvml([], fail={"nvmlDeviceGetCount": FakeNVMLError(GPU_IS_LOST)}), warnings)
    assert nvml.query("nvmlDeviceGetCount", quiet=True) is None
    assert warnings == []
    assert nvml.gpu_lost
    nvml.query("nvmlInit")
    assert not nvml.gpu_lost


# --------------------------------------------------------------------------- NVIDIA GPUs through a fake NVML


def test_missing_library_means_no_gpus_and_a_warning(hw_catalog: Catalog):
    host = probe_fake(hw_catalog, None)
    assert host.gpus == ()
    assert any("nvidia-ml-py" in w for w in host.warnings)


@pytest.mark.parametrize("code", [DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND])
def test_nvml_that_does_not_start_means_no_gpus_and_a_warning(hw_catalog: Catalog, code: int):
    fake = FakeNvml([h100(0)], fail={"nvmlInit": FakeNVMLError(code)})
    host = probe_fake(hw_catalog, fake)
    assert host.gpus == ()
    assert any("NVML did not start" in w and str(FakeNVMLError(code)) in w for w in host.warnings)
    assert fake.calls == ["nvmlInit"]


def test_two_nvlinked_h100s(hw_catalog: Catalog):
    a = h100(0, free=70 * GIB, nvlinks=["00000000:02:00.0"] * 4)
    b = h100(1, nvlinks=["0000:01:00.0"] * 4)  # legacy bus id spelling on the far end
    b.name = b"NVIDIA H100 80GB HBM3"  # old nvidia-ml-py returns bytes
    fake = FakeNvml([a, b])
    host = probe_fake(hw_catalog, fake)
    assert host.warnings == ()
    assert [g.index for g in host.gpus] == [0, 1]
    first, second = host.gpus
    assert first.name == second.name == "NVIDIA H100 80GB HBM3"
    assert first.total_bytes == 85_520_809_984
    assert first.free_bytes == 70 * GIB
    assert first.used_bytes == 85_520_809_984 - 70 * GIB
    assert first.compute_capability == (9, 0)
    assert first.accelerator_id == "h100-sxm"
    assert first.bandwidth_bytes_per_s == 3_350_000_000_000
    assert first.bf16_tflops == 989
    assert first.nvlink_peers == (1,) and second.nvlink_peers == (0,)
    assert host.source == "probe" and host.label == "this machine"
    assert fake.calls[-1] == "nvmlShutdown"


def test_nvswitch_peers_come_from_p2p_status(hw_catalog: Catalog):
    switch = ["00000000:A0:00.0"] * 18
    devices = [h100(i, nvlinks=list(switch)) for i in range(4)]
    fake = FakeNvml(devices, p2p_nvlink={frozenset({0, 1}), frozenset({0, 2}), frozenset({1, 2})})
    host = probe_fake(hw_catalog, fake)
    assert [g.nvlink_peers for g in host.gpus] == [(1, 2), (0, 2), (0, 1), ()]


def test_pcie_gpus_have_no_peers_and_no_warnings(hw_catalog: Catalog):
    devices = [
        FakeDevice("NVIDIA GeForce RTX 4090", 24 * GIB, 20 * GIB, (8, 9), "00000000:01:00.0"),
        FakeDevice("NVIDIA GeForce RTX 4090", 24 * GIB, 23 * GIB, (8, 9), "00000000:02:00.0"),
    ]
    host = probe_fake(hw_catalog, FakeNvml(devices))
    assert host.warnings == ()
    assert [g.nvlink_peers for g in host.gpus] == [(), ()]
    assert [g.accelerator_id for g in host.gpus] == ["rtx-4090", "rtx-4090"]


def test_unknown_gpu_kind_has_no_catalog_figures(hw_catalog: Catalog):
    device = FakeDevice("NVIDIA Imaginary X1", 12 * GIB, 11 * GIB, (12, 0))
    (gpu,) = probe_fake(hw_catalog, FakeNvml([device])).gpus
    assert gpu.accelerator_id is None and gpu.bandwidth_bytes_per_s is None
    assert gpu.total_bytes == 12 * GIB and gpu.compute_capability == (12, 0)


def test_lost_gpu_is_left_out_with_one_warning(hw_catalog: Catalog):
    lost = h100(1, fail={"nvmlDeviceGetMemoryInfo": FakeNVMLError(GPU_IS_LOST)})
    host = probe_fake(
        hw_catalog, FakeNvml([h100(0, nvlinks=["0:3:00.0"]), lost, h100(2, nvlinks=["0:1:00.0"])])
    )
    assert [g.index for g in host.gpus] == [0, 2]  # indexes stay those of CUDA and nvidia-smi
    assert [g.nvlink_peers for g in host.gpus] == [(2,), (0,)]
    assert sum("lost" in w for w in host.warnings) == 1
    assert any("GPU 1 is lost" in w for w in host.warnings)


def test_failed_memory_reading_falls_back_on_the_catalog(hw_catalog: Catalog):
    device = h100(0, fail={"nvmlDeviceGetMemoryInfo": FakeNVMLError(NOT_SUPPORTED)})
    host = probe_fake(hw_catalog, FakeNvml([device]))
    (gpu,) = host.gpus
    assert gpu.free_bytes is None and gpu.used_bytes is None
    assert gpu.total_bytes == hw_catalog.accelerator("h100-sxm").total_bytes
    assert gpu.usable_bytes == gpu.total_bytes
    assert any("GPU 0 free memory: unknown" in w for w in host.warnings)


def test_failed_capability_reading_falls_back_on_the_catalog(hw_catalog: Catalog):
    device = h100(0, fail={"nvmlDeviceGetCudaComputeCapability": FakeNVMLError(FUNCTION_NOT_FOUND)})
    host = probe_fake(hw_catalog, FakeNvml([device]))
    assert host.gpus[0].compute_capability == (9, 0)
    assert any("compute capability" in w for w in host.warnings)


def test_gpu_that_cannot_be_opened_is_left_out(hw_catalog: Catalog):
    bad = h100(0, fail={"nvmlDeviceGetHandleByIndex": FakeNVMLError(UNKNOWN)})
    host = probe_fake(hw_catalog, FakeNvml([bad, h100(1)]))
    assert [g.index for g in host.gpus] == [1]
    assert any("GPU 0 is left out" in w for w in host.warnings)


def test_device_count_failure(hw_catalog: Catalog):
    host = probe_fake(hw_catalog, FakeNvml([h100(0)], fail={"nvmlDeviceGetCount": FakeNVMLError(UNKNOWN)}))
    assert host.gpus == ()
    assert any("number of NVIDIA GPUs" in w for w in host.warnings)


FUNCTIONS = [
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetNvLinkState",
    "nvmlDeviceGetNvLinkRemotePciInfo",
    "nvmlDeviceGetP2PStatus",
]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("error", list(FAILURES.values()), ids=list(FAILURES))
def test_no_nvml_failure_ever_raises(hw_catalog: Catalog, function: str, error: BaseException):
    devices = [h100(0, nvlinks=["00000000:02:00.0"]), h100(1, nvlinks=["00000000:01:00.0"])]
    fake = FakeNvml(devices, fail={function: error})
    host = probe_fake(hw_catalog, fake, environ={"CUDA_VISIBLE_DEVICES": "GPU-00000000,GPU-00000001"})
    assert len(host.gpus) <= 2
    for gpu in host.gpus:
        assert gpu.total_bytes > 0


def test_a_function_missing_from_the_library_never_raises(hw_catalog: Catalog):
    class Old(FakeNvml):
        nvmlDeviceGetCudaComputeCapability = None  # type: ignore[assignment]

    host = probe_fake(hw_catalog, Old([h100(0)]))
    assert host.gpus[0].compute_capability == (9, 0)  # from the catalog
    assert any("has no nvmlDeviceGetCudaComputeCapability" in w for w in host.warnings)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("1", ["NVIDIA GeForce RTX 4090"]),
        ("1,0", ["NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3"]),
        ("GPU-22", ["NVIDIA GeForce RTX 4090"]),
        ("", []),
        ("0,7,1", ["NVIDIA H100 80GB HBM3"]),
    ],
)
def test_cuda_visible_devices(hw_catalog: Catalog, visible: str, expected: list[str]):
    devices = [
        h100(0, uuid="GPU-11aa"),
        FakeDevice("NVIDIA GeForce RTX 4090", 24 * GIB, 24 * GIB, (8, 9), "00000000:02:00.0", "GPU-22bb"),
    ]
    warnings: list[str] = []
    gpus = probe_nvidia_gpus(FakeNvml(devices), hw_catalog, {"CUDA_VISIBLE_DEVICES": visible}, warnings)
    assert [g.name for g in gpus] == expected
    assert [g.index for g in gpus] == list(range(len(expected)))
    assert bool(warnings) == (visible == "0,7,1")


def test_nvlink_peers_pure():
    buses = ["a", "b", "c", None]
    assert nvlink_peers(buses, [["b"], ["a"], [], []], lambda i, j: True) == [(1,), (0,), (), ()]
    assert nvlink_peers(buses, [["s"], ["s"], ["s"], []], lambda i, j: {i, j} != {0, 2}) == [
        (1,),
        (0, 2),
        (1,),
        (),
    ]


# --------------------------------------------------------------------------- AMD and Apple, through torch


def test_rocm_gpus_through_an_imported_torch(hw_catalog: Catalog):
    torch = fake_rocm_torch(["AMD Instinct MI300X", "AMD Instinct MI300X"], 192 * 10**9)
    warnings: list[str] = []
    gpus = probe_torch_gpus(torch, hw_catalog, 10**12, 10**12, "AMD EPYC", warnings)
    assert [g.vendor for g in gpus] == ["amd", "amd"]
    assert gpus[0].accelerator_id == "mi300x" and gpus[0].total_bytes == 192 * 10**9
    assert gpus[0].free_bytes is None  # no context yet: not created just to read a number
    assert gpus[0].supports_bf16
    warm = probe_torch_gpus(fake_rocm_torch(["AMD Instinct MI300X"], 100, True), hw_catalog, 1, 1, "x", [])
    assert warm[0].free_bytes == 50


def test_apple_unified_memory_through_an_imported_torch(hw_catalog: Catalog):
    warnings: list[str] = []
    (gpu,) = probe_torch_gpus(
        fake_mps_torch(72 * GIB), hw_catalog, 96 * GIB, 60 * GIB, "Apple M2 Max", warnings
    )
    assert gpu.vendor == "apple" and gpu.unified_memory
    assert gpu.total_bytes == 72 * GIB and gpu.free_bytes == 60 * GIB
    assert gpu.accelerator_id == "m2-max"
    (old,) = probe_torch_gpus(fake_mps_torch(None), hw_catalog, 16 * GIB, 8 * GIB, "Apple M1", warnings)
    assert old.total_bytes == 16 * GIB and old.accelerator_id is None
    assert warnings == []


def test_torch_failure_is_a_warning(hw_catalog: Catalog):
    class Broken:
        @property
        def version(self) -> object:
            raise RuntimeError("HIP runtime missing")

    warnings: list[str] = []
    assert probe_torch_gpus(Broken(), hw_catalog, 1, 1, "x", warnings) == ()
    assert warnings and "HIP runtime missing" in warnings[0]


def test_probe_uses_torch_gpus_when_nvml_finds_none(hw_catalog: Catalog):
    host = probe_host(hw_catalog, nvml=None, torch=fake_mps_torch(8 * GIB), environ={})
    assert [g.vendor for g in host.gpus] == ["apple"]


# --------------------------------------------------------------------------- this real machine


def test_this_machine_is_sane(hw_catalog: Catalog):
    host = probe_host(hw_catalog)
    assert host.source == "probe" and host.nodes == 1
    assert host.ram_total_bytes > 256 * 2**20
    assert 0 < host.ram_available_bytes <= host.ram_total_bytes
    assert host.swap_free_bytes >= 0
    assert host.disk_free_bytes is not None and host.disk_free_bytes > 0
    assert host.disk_path and Path(host.disk_path).exists()
    assert host.cpu.model and host.cpu.model != "unknown CPU"
    assert 1 <= host.cpu.physical_cores <= host.cpu.logical_cores
    assert all(f == f.lower() for f in host.cpu.features)
    assert host.cpu.memory_bandwidth_bytes_per_s == DEFAULT_CPU_BANDWIDTH
    assert not host.cpu.bandwidth_measured
    if host.gpus:  # a machine with an NVIDIA driver
        assert all(g.total_bytes > 0 and g.free_bytes is not None for g in host.gpus)
    else:
        assert any("NVIDIA" in w for w in host.warnings)


def test_plain_probe_never_measures_bandwidth_nor_runs_a_program(
    hw_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
):
    """What keeps a plain probe (every `berth list`, every TUI start) to reading files and NVML."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("a plain probe must not do this")

    monkeypatch.setattr(probe_module, "measure_bandwidth", refuse)
    if sys.platform != "darwin":  # macOS asks sysctl for the CPU's name
        monkeypatch.setattr(probe_module.subprocess, "run", refuse)
        monkeypatch.setattr(probe_module.subprocess, "Popen", refuse)
    cpu = probe_host(hw_catalog).cpu
    assert not cpu.bandwidth_measured and cpu.memory_bandwidth_bytes_per_s == DEFAULT_CPU_BANDWIDTH


def test_hf_cache_dir_follows_huggingface_hub(tmp_path: Path):
    assert hf_cache_dir({"HF_HUB_CACHE": "/x/hub", "HF_HOME": "/y"}) == Path("/x/hub")
    assert hf_cache_dir({"HF_HOME": "/y"}) == Path("/y/hub")
    assert hf_cache_dir({"XDG_CACHE_HOME": "/z"}) == Path("/z/huggingface/hub")
    assert hf_cache_dir({}) == Path.home() / ".cache" / "huggingface" / "hub"


def test_disk_is_read_at_the_nearest_existing_folder(tmp_path: Path):
    free, where = probe_disk({"HF_HUB_CACHE": str(tmp_path / "not" / "yet" / "there")}, [])
    assert where == str(tmp_path)
    assert free is not None and free > 0


# --------------------------------------------------------------------------- CPU bandwidth


def test_bandwidth_cache_round_trip(tmp_path: Path):
    path = tmp_path / "bw.json"
    assert cached_bandwidth("CPU A", path) == (None, None)
    save_bandwidth("CPU A", 50 * 10**9, path)
    save_bandwidth("CPU B", 20 * 10**9, path)
    assert cached_bandwidth("CPU A", path) == (50 * 10**9, None)
    assert cached_bandwidth("CPU B", path) == (20 * 10**9, None)
    assert json.loads(path.read_text())["cpus"]["CPU A"]["method"]


def test_corrupt_bandwidth_cache_is_a_warning(tmp_path: Path):
    path = tmp_path / "bw.json"
    path.write_text('{"cpus": {"CPU A": {"bytes_per_s": "fast"}}}')
    value, warning = cached_bandwidth("CPU A", path)
    assert value is None and warning and "berth probe --measure" in warning
    path.write_text("not json")
    assert cached_bandwidth("CPU A", path)[1]


def test_probe_uses_the_cached_bandwidth_of_its_cpu(hw_catalog: Catalog, berth_home: Path):
    model = probe_host(hw_catalog).cpu.model
    save_bandwidth(model, 77 * 10**9)  # the default place: BERTH_HOME/cpu_bandwidth.json
    assert (berth_home / "cpu_bandwidth.json").exists()
    cpu = probe_host(hw_catalog).cpu
    assert cpu.memory_bandwidth_bytes_per_s == 77 * 10**9 and cpu.bandwidth_measured


def test_measure_bandwidth_small():
    assert measure_bandwidth(threads=2, size_bytes=8 * 2**20, rounds=2) > 10**8


def test_measurement_stops_once_its_time_budget_is_spent(monkeypatch: pytest.MonkeyPatch):
    """However many rounds are asked for, the copies end after the first counted round that finds the
    budget spent: what keeps `berth probe --measure` to about a second on any machine."""
    readings = itertools.count(0.0, 1.0)  # a clock on which every reading is one second later
    monkeypatch.setattr(bandwidth_module, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    size = 2**20
    measured = measure_bandwidth(threads=2, size_bytes=size, rounds=1000, budget_s=1.5)
    assert measured == 2 * size  # the best round took one (fake) second to read and write `size` bytes
    assert next(readings) <= 6  # start, two rounds of (began, took), one budget check: then it stopped


def test_probe_measure_writes_the_cache(hw_catalog: Catalog, tmp_path: Path):
    cache = tmp_path / "bw.json"
    cpu = probe_host(hw_catalog, measure=True, bandwidth_cache=cache).cpu
    assert cpu.bandwidth_measured and cpu.memory_bandwidth_bytes_per_s > 10**8
    assert cached_bandwidth(cpu.model, cache) == (cpu.memory_bandwidth_bytes_per_s, None)


def test_unwritable_cache_is_a_probe_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ProbeError) as info:
        save_bandwidth("CPU A", 1, blocker / "bw.json")
    assert info.value.reading == "cpu_bandwidth"


# --------------------------------------------------------------------------- pure parsers of system text

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_bf16 amx_bf16 amx_tile AMX_INT8 ht

processor\t: 1
model name\t: ignored
flags\t\t: ignored
"""

ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes sve sve2 bf16 i8mm
CPU implementer\t: 0x41

processor\t: 1
Features\t: fp asimd

Hardware\t: Neoverse-V2 board
"""


def test_parse_cpuinfo_x86():
    model, flags = parse_cpuinfo(X86)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == {
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512_bf16",
        "amx_bf16",
    } | {
        "amx_tile",
        "amx_int8",
    }


def test_parse_cpuinfo_arm_and_nothing():
    model, flags = parse_cpuinfo(ARM)
    assert model == "Neoverse-V2 board"
    assert flags == {"asimd", "sve", "sve2", "bf16", "i8mm"}
    assert parse_cpuinfo("") == (None, frozenset())
    assert parse_cpuinfo("model\t: 85\n")[0] is None  # a bare number is no model name


def test_cgroup_memory():
    assert cgroup_memory("max\n", "123", "") == (None, None)
    assert cgroup_memory(None, None, None) == (None, None)
    assert cgroup_memory(str(2**63 - 4096), "1", "") == (None, None)  # cgroup v1 "unlimited"
    stat = "anon 100\ninactive_file 3000\nactive_file 50\n"
    assert cgroup_memory("8000\n", "5000\n", stat) == (8000, 6000)
    assert cgroup_memory("8000", None, None) == (8000, None)
    assert cgroup_memory("8000", "9000", "") == (8000, 0)


def test_visible_gpus():
    uuids = ["GPU-aaa1", "GPU-bbb2", "GPU-aaa3"]
    assert visible_gpus(None, uuids) == ([0, 1, 2], None)
    assert visible_gpus("", uuids) == ([], None)
    assert visible_gpus("2, 0", uuids) == ([2, 0], None)
    assert visible_gpus("GPU-bbb", uuids) == ([1], None)
    chosen, warning = visible_gpus("GPU-aaa", uuids)  # ambiguous prefix
    assert chosen == [] and warning
    chosen, warning = visible_gpus("1,-1,0", uuids)  # CUDA stops at an invalid entry
    assert chosen == [1] and warning and "'-1'" in warning
    chosen, warning = visible_gpus("0,0", uuids)
    assert chosen == [0] and warning
