"""Test doubles at the hardware boundary: a small accelerator catalog, a fake NVML module, fake torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from registry.catalog import Catalog, load_catalog

GB = 10**9
GIB = 2**30

ACCELERATORS: list[dict[str, Any]] = [
    {
        "id": "h100-sxm",
        "name": "NVIDIA H100 80GB HBM3",
        "aliases": ["h100", "h100-80gb"],
        "memory_bytes": "80GB",
        "usable_memory_bytes": 85_520_809_984,
        "bandwidth_bytes_per_s": "3.35TB",
        "bf16_tflops": 989,
        "compute_capability": "9.0",
        "interconnect": "nvlink",
        "source": "test",
    },
    {
        "id": "a100-80gb",
        "name": "NVIDIA A100-SXM4-80GB",
        "aliases": ["a100"],
        "memory_bytes": "80GB",
        "bandwidth_bytes_per_s": "2.039TB",
        "bf16_tflops": 312,
        "compute_capability": "8.0",
        "interconnect": "nvlink",
        "source": "test",
    },
    {
        "id": "a100-40gb",
        "name": "NVIDIA A100-SXM4-40GB",
        "memory_bytes": "40GB",
        "bandwidth_bytes_per_s": "1.555TB",
        "bf16_tflops": 312,
        "compute_capability": "8.0",
        "interconnect": "nvlink",
        "source": "test",
    },
    {
        "id": "rtx-4090",
        "name": "NVIDIA GeForce RTX 4090",
        "memory_bytes": "24GB",
        "bandwidth_bytes_per_s": "1.008TB",
        "bf16_tflops": 165,
        "compute_capability": "8.9",
        "source": "test",
    },
    {
        "id": "t4",
        "name": "Tesla T4",
        "memory_bytes": "16GB",
        "bandwidth_bytes_per_s": "320GB",
        "bf16_tflops": 65,
        "compute_capability": "7.5",
        "source": "test",
    },
    {
        "id": "mi300x",
        "name": "AMD Instinct MI300X",
        "vendor": "amd",
        "memory_bytes": "192GB",
        "bandwidth_bytes_per_s": "5.3TB",
        "bf16_tflops": 1307,
        "compute_capability": "9.4",
        "interconnect": "nvlink",
        "source": "test",
    },
    {
        "id": "m2-max",
        "name": "Apple M2 Max",
        "vendor": "apple",
        "memory_bytes": "96GB",
        "bandwidth_bytes_per_s": "400GB",
        "bf16_tflops": 13.6,
        "compute_capability": "1.0",
        "source": "test",
    },
]


def write_catalog(folder: Path) -> Path:
    """The test accelerators as a catalog file (no models), for the CLI's --catalog."""
    path = folder / "hardware-catalog.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "accelerators": ACCELERATORS}), encoding="utf-8")
    return path


def hardware_catalog(folder: Path) -> Catalog:
    """The test accelerators loaded the real way, without the user's overlay."""
    return load_catalog(write_catalog(folder), overlay=False)


# --------------------------------------------------------------------------- NVML

NOT_SUPPORTED = 3
INVALID_ARGUMENT = 2
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
UNKNOWN = 999

_TEXT = {
    NOT_SUPPORTED: "Not Supported",
    INVALID_ARGUMENT: "Invalid Argument",
    DRIVER_NOT_LOADED: "Driver Not Loaded",
    LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    FUNCTION_NOT_FOUND: "Function Not Found",
    GPU_IS_LOST: "GPU is lost",
    UNKNOWN: "Unknown Error",
}


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: carries the NVML return code in `value`."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _TEXT.get(self.value, f"error {self.value}")


class ExplodingNVMLError(FakeNVMLError):
    """An NVML error whose __str__ itself fails (pynvml's calls back into the library)."""

    def __str__(self) -> str:
        raise RuntimeError("nvmlErrorString is gone too")


@dataclass
class FakeDevice:
    """One GPU as the fake NVML reports it."""

    name: str | bytes
    total: int
    free: int
    capability: tuple[int, int] = (9, 0)
    bus_id: str = "00000000:01:00.0"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    nvlinks: list[str] = field(default_factory=list)
    """Remote bus ids of the active NVLinks; empty: the GPU has no NVLink (NVML says Not Supported)."""
    fail: dict[str, BaseException] = field(default_factory=dict)
    """NVML function name → the exception that call raises for this device."""


class FakeNvml:
    """A stand-in for pynvml: the functions and constants probe.py uses, with failures on demand."""

    NVML_NVLINK_MAX_LINKS = 18
    NVML_FEATURE_ENABLED = 1
    NVML_P2P_CAPS_INDEX_NVLINK = 2
    NVML_P2P_STATUS_OK = 0
    NVML_P2P_STATUS_NOT_SUPPORTED = 5

    def __init__(
        self,
        devices: list[FakeDevice],
        fail: dict[str, BaseException] | None = None,
        p2p_nvlink: set[frozenset[int]] | None = None,
    ) -> None:
        self.devices = devices
        self.fail = fail or {}
        """NVML function name → the exception every call of it raises."""
        self.p2p_nvlink = p2p_nvlink or set()
        self.calls: list[str] = []
        self.initialized = False

    def _enter(self, func: str, device: FakeDevice | None = None) -> None:
        self.calls.append(func)
        if func in self.fail:
            raise self.fail[func]
        if device is not None and func in device.fail:
            raise device.fail[func]

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialized = False

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        device = self.devices[index]
        self._enter("nvmlDeviceGetHandleByIndex", device)
        return device

    def nvmlDeviceGetName(self, device: FakeDevice) -> str | bytes:
        self._enter("nvmlDeviceGetName", device)
        return device.name

    def nvmlDeviceGetUUID(self, device: FakeDevice) -> str:
        self._enter("nvmlDeviceGetUUID", device)
        return device.uuid

    def nvmlDeviceGetMemoryInfo(self, device: FakeDevice) -> SimpleNamespace:
        self._enter("nvmlDeviceGetMemoryInfo", device)
        return SimpleNamespace(total=device.total, free=device.free, used=device.total - device.free)

    def nvmlDeviceGetCudaComputeCapability(self, device: FakeDevice) -> tuple[int, int]:
        self._enter("nvmlDeviceGetCudaComputeCapability", device)
        return device.capability

    def nvmlDeviceGetPciInfo(self, device: FakeDevice) -> SimpleNamespace:
        self._enter("nvmlDeviceGetPciInfo", device)
        return SimpleNamespace(busId=device.bus_id.encode())

    def nvmlDeviceGetNvLinkState(self, device: FakeDevice, link: int) -> int:
        self._enter("nvmlDeviceGetNvLinkState", device)
        if not device.nvlinks:
            raise FakeNVMLError(NOT_SUPPORTED)
        if link >= len(device.nvlinks):
            raise FakeNVMLError(INVALID_ARGUMENT)
        return 1

    def nvmlDeviceGetNvLinkRemotePciInfo(self, device: FakeDevice, link: int) -> SimpleNamespace:
        self._enter("nvmlDeviceGetNvLinkRemotePciInfo", device)
        return SimpleNamespace(busId=device.nvlinks[link])

    def nvmlDeviceGetP2PStatus(self, a: FakeDevice, b: FakeDevice, index: int) -> int:
        self._enter("nvmlDeviceGetP2PStatus", a)
        pair = frozenset({self.devices.index(a), self.devices.index(b)})
        return self.NVML_P2P_STATUS_OK if pair in self.p2p_nvlink else self.NVML_P2P_STATUS_NOT_SUPPORTED


def h100(index: int, free: int = 79 * GIB, **kwargs: Any) -> FakeDevice:
    """An H100 SXM at PCI bus index+1, UUID GPU-0000000<index>-…"""
    kwargs.setdefault("uuid", f"GPU-{index:08d}-aaaa-bbbb-cccc-dddddddddddd")
    return FakeDevice(
        name="NVIDIA H100 80GB HBM3",
        total=85_520_809_984,
        free=free,
        capability=(9, 0),
        bus_id=f"00000000:{index + 1:02X}:00.0",
        **kwargs,
    )


# --------------------------------------------------------------------------- torch


def fake_rocm_torch(names: list[str], total: int, initialized: bool = False) -> Any:
    """Enough of torch for ROCm detection: version.hip, cuda.* device queries."""
    cuda = SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: len(names),
        get_device_properties=lambda i: SimpleNamespace(name=names[i], total_memory=total),
        is_initialized=lambda: initialized,
        mem_get_info=lambda i: (total // 2, total),
    )
    return SimpleNamespace(version=SimpleNamespace(hip="6.2", cuda=None), cuda=cuda)


def fake_mps_torch(recommended: int | None) -> Any:
    """Enough of torch for Apple MPS detection."""
    mps = SimpleNamespace()
    if recommended is not None:
        mps.recommended_max_memory = lambda: recommended
    return SimpleNamespace(
        version=SimpleNamespace(hip=None, cuda=None),
        cuda=SimpleNamespace(is_available=lambda: False),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: True)),
        mps=mps,
    )
