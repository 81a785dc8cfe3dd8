"""Describe this machine (NVML, AMD and Apple GPUs, RAM, swap, disk, CPU); the only module that imports pynvml,
amdsmi and psutil and runs the vendor tools (through `run_tool`)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from launcher.machine.amd import amdsmi_gpus, discrete_gpus, sysfs_gpus
from launcher.machine.apple import AppleChip, Runner, apple_gpu, cpu_label, read_chip
from launcher.machine.bandwidth import (
    cached_bandwidth,
    cached_linear_seconds,
    measure_bandwidth,
    save_bandwidth,
)
from launcher.machine.dtype_timing import measure_linear
from launcher.machine.errors import ProbeError
from launcher.machine.host import DEFAULT_CPU_BANDWIDTH, CpuInfo, GpuInfo, HostSnapshot
from launcher.machine.sysinfo import cgroup_memory, parse_cpuinfo, visible_gpus
from registry.catalog import Catalog
from registry.schema import Accelerator

#: Default for the `nvml` and `torch` parameters: use the real module (pynvml imported; torch only if loaded).
REAL: Any = object()
LABEL = "this machine"
#: Where the amdgpu driver lists cards.
DRM_ROOT = Path("/sys/class/drm")
#: Longest a vendor tool (sysctl, system_profiler) may take before its reading counts as failed.
TOOL_TIMEOUT_S = 10

_NVML_FEATURE_ENABLED = 1
_NVML_P2P_CAPS_INDEX_NVLINK = 2
_NVML_P2P_STATUS_OK = 0
_NVML_ERROR_GPU_IS_LOST = 15


class NvmlQuery:
    """The one gateway to NVML: each call goes through `query`, and any failure there becomes a missing
    reading plus a warning, never an exception (after nvitop's `nvmlQuery(func, *args, default=NA)`).

    `module` is pynvml or anything with the same names (tests pass a fake).
    """

    def __init__(self, module: Any, warnings: list[str]) -> None:
        self.module = module
        self.warnings = warnings
        self.last_error: BaseException | None = None
        """The failure of the latest call, or None when it succeeded."""

    def query(self, func: str, *args: Any, default: Any = None, quiet: bool = False, what: str = "") -> Any:
        """`module.func(*args)`, or `default` (with a warning unless quiet) when the call fails in any way."""
        self.last_error = None
        fn = getattr(self.module, func, None)
        try:
            if not callable(fn):
                raise AttributeError(f"this nvidia-ml-py has no {func}")
            return fn(*args)
        except Exception as error:  # the library boundary: NVMLError, ctypes and OS errors alike
            self.last_error = error
            if not quiet:
                self.warn(func, what)
            return default

    def warn(self, func: str, what: str = "") -> None:
        """Record the latest call's failure as a warning: '<what>: unknown (<why>)'."""
        self.warnings.append(f"{what or func}: unknown ({self.reason(func)})")

    def reason(self, func: str) -> str:
        """Why the latest call of `func` failed, in words."""
        error = self.last_error
        if isinstance(error, AttributeError):
            return str(error)
        return f"NVML {func} failed: {describe_nvml_error(error)}" if error else "no error"

    @property
    def gpu_lost(self) -> bool:
        """Whether the latest call failed because the GPU fell off the bus."""
        error = self.last_error
        return error is not None and (
            getattr(error, "value", None) == _NVML_ERROR_GPU_IS_LOST or "GpuIsLost" in type(error).__name__
        )

    def constant(self, name: str, default: int) -> int:
        """An NVML constant, or the value it has in every nvidia-ml-py release so far."""
        value = getattr(self.module, name, default)
        return value if isinstance(value, int) else default


def describe_nvml_error(error: BaseException) -> str:
    """An NVML error in words (its __str__ may itself call into NVML, so guard that too)."""
    try:
        text = str(error)
    except Exception:
        text = ""
    return text or type(error).__name__


def load_nvml() -> Any | None:
    """The pynvml module, or None when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


# --------------------------------------------------------------------------- GPUs


def probe_nvidia_gpus(
    nvml_module: Any, catalog: Catalog, environ: Mapping[str, str], warnings: list[str]
) -> tuple[GpuInfo, ...]:
    """Every NVIDIA GPU CUDA will see, through NVML; () with a warning when NVML cannot start."""
    nvml = NvmlQuery(nvml_module, warnings)
    nvml.query("nvmlInit", quiet=True)
    if nvml.last_error is not None:
        reason = describe_nvml_error(nvml.last_error)
        warnings.append(f"no NVIDIA GPU found: NVML did not start ({reason}; is an NVIDIA driver installed?)")
        return ()
    try:
        return _read_gpus(nvml, catalog, environ)
    finally:
        nvml.query("nvmlShutdown", quiet=True)


def _read_gpus(nvml: NvmlQuery, catalog: Catalog, environ: Mapping[str, str]) -> tuple[GpuInfo, ...]:
    count = nvml.query("nvmlDeviceGetCount", what="number of NVIDIA GPUs")
    if not isinstance(count, int) or count <= 0:
        return ()
    cuda_visible = environ.get("CUDA_VISIBLE_DEVICES")
    handles = [nvml.query("nvmlDeviceGetHandleByIndex", i, quiet=True) for i in range(count)]
    uuids: list[str | None] = [None] * count
    if cuda_visible is not None and "gpu-" in cuda_visible.lower():
        uuids = [
            _text(nvml.query("nvmlDeviceGetUUID", h, quiet=True)) if h is not None else None for h in handles
        ]
    order, warning = visible_gpus(cuda_visible, uuids)
    if warning:
        nvml.warnings.append(warning)
    gpus: list[GpuInfo] = []
    kept: list[Any] = []
    for cuda_index, nvml_index in enumerate(order):  # a GPU left out keeps its index free, as in CUDA
        handle = handles[nvml_index]
        if handle is None:
            handle = nvml.query("nvmlDeviceGetHandleByIndex", nvml_index, quiet=True)
        if handle is None:
            why = nvml.reason("nvmlDeviceGetHandleByIndex")
            nvml.warnings.append(f"GPU {cuda_index} is left out: it cannot be opened ({why})")
            continue
        try:
            gpu = _read_gpu(nvml, handle, cuda_index, catalog)
        except _GpuLost:
            nvml.warnings.append(
                f"GPU {cuda_index} is lost (fell off the bus) and is left out; reset it or reboot"
            )
            continue
        gpus.append(gpu)
        kept.append(handle)
    return _with_nvlink_peers(nvml, gpus, kept)


class _GpuLost(Exception):
    """A GPU stopped answering in the middle of being read (internal)."""


def _read_gpu(nvml: NvmlQuery, handle: Any, index: int, catalog: Catalog) -> GpuInfo:
    label = f"GPU {index}"

    def read(func: str, what: str) -> Any:
        value = nvml.query(func, handle, quiet=True)
        if nvml.gpu_lost:
            raise _GpuLost(label)
        if nvml.last_error is not None:
            nvml.warn(func, f"{label} {what}")
        return value

    name = _text(read("nvmlDeviceGetName", "name"))
    memory = read("nvmlDeviceGetMemoryInfo", "free memory")
    capability = read("nvmlDeviceGetCudaComputeCapability", "compute capability")
    acc = catalog.match_gpu_name(name) if name else None
    total = _int(getattr(memory, "total", None))
    if total is None:
        total = acc.total_bytes if acc else 0
        where = f"taken from the catalog ({acc.id})" if acc else "unknown"
        nvml.warnings.append(f"{label}: total memory {where}")
    return GpuInfo(
        index=index,
        name=name or (acc.name if acc else label),
        total_bytes=total,
        free_bytes=_int(getattr(memory, "free", None)),
        used_bytes=_int(getattr(memory, "used", None)),
        compute_capability=_capability(capability) or _catalog_capability(acc),
        vendor="nvidia",
        **_catalog_figures(acc),
    )


def _catalog_figures(acc: Accelerator | None) -> dict[str, Any]:
    if acc is None:
        return {}
    return {
        "accelerator_id": acc.id,
        "bandwidth_bytes_per_s": acc.bandwidth_bytes_per_s,
        "bf16_tflops": acc.bf16_tflops,
    }


def _with_nvlink_peers(nvml: NvmlQuery, gpus: list[GpuInfo], handles: list[Any]) -> tuple[GpuInfo, ...]:
    if len(gpus) < 2:
        return tuple(gpus)
    max_links = nvml.constant("NVML_NVLINK_MAX_LINKS", 18)
    bus_ids = [_bus_id(nvml.query("nvmlDeviceGetPciInfo", h, quiet=True)) for h in handles]
    remotes = [_nvlink_remotes(nvml, h, max_links) for h in handles]
    nvlink_index = nvml.constant("NVML_P2P_CAPS_INDEX_NVLINK", _NVML_P2P_CAPS_INDEX_NVLINK)
    ok = nvml.constant("NVML_P2P_STATUS_OK", _NVML_P2P_STATUS_OK)

    def p2p(a: int, b: int) -> bool:
        status = nvml.query("nvmlDeviceGetP2PStatus", handles[a], handles[b], nvlink_index, quiet=True)
        return status is not None and status == ok

    peers = nvlink_peers(bus_ids, remotes, p2p)  # positions in `gpus`, turned into GPU indexes below
    return tuple(_replace_peers(g, tuple(gpus[j].index for j in p)) for g, p in zip(gpus, peers, strict=True))


def _replace_peers(gpu: GpuInfo, peers: tuple[int, ...]) -> GpuInfo:
    return replace(gpu, nvlink_peers=peers) if peers else gpu


def _nvlink_remotes(nvml: NvmlQuery, handle: Any, max_links: int) -> list[str | None]:
    """PCI bus ids at the far end of each active NVLink (None where NVML does not say)."""
    enabled = nvml.constant("NVML_FEATURE_ENABLED", _NVML_FEATURE_ENABLED)
    remotes: list[str | None] = []
    for link in range(max_links):
        state = nvml.query("nvmlDeviceGetNvLinkState", handle, link, quiet=True)
        if state is None:  # no NVLink on this GPU, or no more links
            break
        if state == enabled:
            remotes.append(_bus_id(nvml.query("nvmlDeviceGetNvLinkRemotePciInfo", handle, link, quiet=True)))
    return remotes


def nvlink_peers(
    bus_ids: Sequence[str | None],
    remotes: Sequence[Sequence[str | None]],
    p2p: Callable[[int, int], bool],
) -> list[tuple[int, ...]]:
    """Each GPU's NVLink peers: GPUs whose bus id is at the far end of one of its links, and, where links end
    at something else (an NVSwitch), GPUs NVML says it reaches peer-to-peer over NVLink."""
    index_of = {bus: i for i, bus in enumerate(bus_ids) if bus}
    peers: list[set[int]] = [set() for _ in bus_ids]
    switched = [False] * len(bus_ids)
    for i, ends in enumerate(remotes):
        for end in ends:
            j = index_of.get(end) if end else None
            if j is None:
                switched[i] = True
            elif j != i:
                peers[i].add(j)
                peers[j].add(i)
    for i in range(len(bus_ids)):
        for j in range(i + 1, len(bus_ids)):
            if switched[i] and switched[j] and j not in peers[i] and p2p(i, j):
                peers[i].add(j)
                peers[j].add(i)
    return [tuple(sorted(p)) for p in peers]


def probe_torch_gpus(
    torch: Any, catalog: Catalog, ram_total: int, ram_available: int, cpu_model: str, warnings: list[str]
) -> tuple[GpuInfo, ...]:
    """AMD (ROCm) or Apple (MPS) GPUs, read through an already-imported torch; never imports it."""
    try:
        if getattr(getattr(torch, "version", None), "hip", None) and torch.cuda.is_available():
            return tuple(_rocm_gpu(torch, i, catalog) for i in range(torch.cuda.device_count()))
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        if mps is not None and mps.is_available():
            limit = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
            total = int(limit()) if callable(limit) else ram_total
            acc = catalog.match_gpu_name(cpu_model)
            return (
                GpuInfo(
                    index=0,
                    name=cpu_model,
                    total_bytes=total,
                    free_bytes=min(total, ram_available),
                    vendor="apple",
                    unified_memory=True,
                    **_catalog_figures(acc),
                ),
            )
    except Exception as error:  # torch's boundary: a driver problem must not stop the probe
        warnings.append(f"GPU detection through torch failed: {type(error).__name__}: {error}")
    return ()


def _rocm_gpu(torch: Any, index: int, catalog: Catalog) -> GpuInfo:
    props = torch.cuda.get_device_properties(index)
    # mem_get_info creates a context on the device: only ask once torch has one anyway.
    free = int(torch.cuda.mem_get_info(index)[0]) if torch.cuda.is_initialized() else None
    acc = catalog.match_gpu_name(str(props.name))
    return GpuInfo(
        index=index,
        name=str(props.name),
        total_bytes=int(props.total_memory),
        free_bytes=free,
        vendor="amd",
        **_catalog_figures(acc),
    )


def run_tool(argv: Sequence[str]) -> str | None:
    """A vendor tool's standard output, or None when it is missing, fails or takes longer than TOOL_TIMEOUT_S."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def load_amdsmi() -> Any | None:
    """The amdsmi module (ROCm's SMI library), or None when it is not installed."""
    try:
        import amdsmi
    except Exception:  # ImportError, or its shared library failing to load
        return None
    return amdsmi


def probe_amd_gpus(
    amdsmi: Any,
    sysfs_root: Path,
    catalog: Catalog,
    warnings: list[str],
    environ: Mapping[str, str] | None = None,
) -> tuple[GpuInfo, ...]:
    """AMD GPUs torch's ROCm build will see: through amdsmi when it is installed and starts, else from the
    amdgpu driver's sysfs files; integrated GPUs left out, HIP_VISIBLE_DEVICES (or ROCR_VISIBLE_DEVICES,
    CUDA_VISIBLE_DEVICES) applied and the rest renumbered from 0, as HIP does."""
    found = amdsmi_gpus(amdsmi, catalog, warnings) if amdsmi is not None else None
    gpus = found if found is not None else sysfs_gpus(sysfs_root, catalog)
    discrete = discrete_gpus(gpus, warnings)
    environ = environ or {}
    variable = next(
        (v for v in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES") if v in environ),
        None,
    )
    if variable is None:
        return discrete
    order, warning = visible_gpus(environ[variable], [None] * len(discrete))
    if warning:
        warnings.append(warning.replace("CUDA_VISIBLE_DEVICES", variable))
    return tuple(replace(discrete[i], index=new) for new, i in enumerate(order))


def _apple(
    run: Runner, catalog: Catalog, ram_available: int, warnings: list[str]
) -> tuple[AppleChip | None, tuple[GpuInfo, ...]]:
    chip = read_chip(run, warnings)
    if chip is None:
        return None, ()
    return chip, (apple_gpu(chip, catalog, min(ram_available, chip.memory_bytes)),)


# --------------------------------------------------------------------------- RAM, disk, CPU


def probe_ram(warnings: list[str]) -> tuple[int, int, int]:
    """(total, available, swap free) bytes, a cgroup memory limit applied; ProbeError if RAM is unknown."""
    try:
        import psutil

        memory = psutil.virtual_memory()
        total, available = int(memory.total), int(memory.available)
        swap_free = int(psutil.swap_memory().free)
    except Exception as error:  # psutil missing or broken: fall back on sysconf
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * page
            available = os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            raise ProbeError(f"cannot read this machine's RAM ({error})", reading="ram") from error
        swap_free = 0
        warnings.append(f"psutil unavailable ({error}): RAM read with sysconf, swap unknown")
    limit, limited_available = _cgroup_limit()
    if limit is not None and limit < total:
        warnings.append(
            f"a cgroup memory limit allows this process {limit / 2**30:.1f} GiB of the machine's"
            f" {total / 2**30:.1f} GiB RAM"
        )
        total = limit
        available = min(available, limited_available if limited_available is not None else limit)
    return total, available, swap_free


def _cgroup_limit() -> tuple[int | None, int | None]:
    base = Path("/sys/fs/cgroup")
    own = _read(Path("/proc/self/cgroup")) or ""
    v2 = next((line[3:] for line in own.splitlines() if line.startswith("0::")), None)
    candidates = [base / v2.lstrip("/")] if v2 and v2 != "/" else []
    for folder in (*candidates, base):
        if (folder / "memory.max").exists():
            return cgroup_memory(
                _read(folder / "memory.max"), _read(folder / "memory.current"), _read(folder / "memory.stat")
            )
    v1 = base / "memory"
    return cgroup_memory(
        _read(v1 / "memory.limit_in_bytes"), _read(v1 / "memory.usage_in_bytes"), _read(v1 / "memory.stat")
    )


def hf_cache_dir(environ: Mapping[str, str]) -> Path:
    """The Hugging Face hub cache, as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    explicit = environ.get("HF_HUB_CACHE") or environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "huggingface" / "hub"


def probe_disk(environ: Mapping[str, str], warnings: list[str]) -> tuple[int | None, str]:
    """Free bytes where the Hugging Face cache goes (its nearest existing folder), and that folder."""
    path = hf_cache_dir(environ)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path(path.anchor or "/"))
    try:
        return shutil.disk_usage(existing).free, str(existing)
    except OSError as error:
        warnings.append(f"free disk space at {existing}: unknown ({error.strerror or error})")
        return None, str(existing)


def probe_cpu(warnings: list[str], measure: bool = False, bandwidth_cache: Path | None = None) -> CpuInfo:
    """CPU model, cores, relevant flags, and memory bandwidth (measured now only when `measure`)."""
    model, features = parse_cpuinfo(_read(Path("/proc/cpuinfo")) or "")
    model = model or _darwin_cpu_model() or platform.processor() or platform.machine() or "unknown CPU"
    affinity = getattr(os, "sched_getaffinity", None)
    logical = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    physical = logical
    try:
        import psutil

        physical = min(psutil.cpu_count(logical=False) or logical, logical)
    except Exception as error:
        warnings.append(f"physical core count unknown ({error}); counted logical cores")
    if measure:
        measured = measure_bandwidth(threads=physical)
        linear = measure_linear()
        save_bandwidth(model, measured, bandwidth_cache, linear_seconds=linear)
        bandwidth: int | None = measured
    else:
        bandwidth, warning = cached_bandwidth(model, bandwidth_cache)
        if warning:
            warnings.append(warning)
        linear = cached_linear_seconds(model, bandwidth_cache) if bandwidth else {}
    return CpuInfo(
        model=model,
        physical_cores=max(1, physical),
        logical_cores=max(1, logical),
        features=features,
        memory_bandwidth_bytes_per_s=bandwidth or DEFAULT_CPU_BANDWIDTH,
        bandwidth_measured=bandwidth is not None,
        linear_seconds=tuple(sorted(linear.items())),
    )


def _darwin_cpu_model() -> str | None:
    if sys.platform != "darwin":
        return None
    try:
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# --------------------------------------------------------------------------- the whole machine


def probe_host(
    catalog: Catalog,
    *,
    nvml: Any = REAL,
    torch: Any = REAL,
    environ: Mapping[str, str] | None = None,
    measure: bool = False,
    bandwidth_cache: Path | None = None,
    run: Runner = run_tool,
    amdsmi: Any = REAL,
    sysfs_root: Path = DRM_ROOT,
    platform_name: str | None = None,
) -> HostSnapshot:
    """What this machine has, total and free, now.

    `nvml` is the NVML module (default: pynvml; None: as if nvidia-ml-py were missing). `torch` is used for
    AMD/Apple GPUs only when already imported (default: `sys.modules.get("torch")`). `measure` runs the CPU
    bandwidth measurement (about a second) and caches it; otherwise the cached figure or the default is used.
    Failed readings become warnings on the snapshot; only unreadable RAM raises ProbeError.
    """
    environ = os.environ if environ is None else environ
    warnings: list[str] = []
    ram_total, ram_available, swap_free = probe_ram(warnings)
    cpu = probe_cpu(warnings, measure=measure, bandwidth_cache=bandwidth_cache)
    gpus: tuple[GpuInfo, ...] = ()
    if (platform_name or sys.platform) == "darwin":  # macOS has had no NVIDIA driver since 10.14
        chip, gpus = _apple(run, catalog, ram_available, warnings)
        if chip is not None:
            ram_total, ram_available = chip.memory_bytes, min(ram_available, chip.memory_bytes)
            cores = (chip.performance_cores or 0) + (chip.efficiency_cores or 0)
            physical = cores or cpu.physical_cores  # Apple silicon has no SMT: one thread per core
            cpu = replace(
                cpu,
                model=cpu_label(chip),
                physical_cores=physical,
                logical_cores=max(cpu.logical_cores, physical),
            )
    else:
        gpus = _linux_gpus(catalog, environ, warnings, nvml, amdsmi, sysfs_root)
    torch_module = sys.modules.get("torch") if torch is REAL else torch
    if not gpus and torch_module is not None:
        gpus = probe_torch_gpus(torch_module, catalog, ram_total, ram_available, cpu.model, warnings)
    disk_free, disk_path = probe_disk(environ, warnings)
    return HostSnapshot(
        label=LABEL,
        gpus=gpus,
        ram_total_bytes=ram_total,
        ram_available_bytes=ram_available,
        cpu=cpu,
        swap_free_bytes=swap_free,
        disk_free_bytes=disk_free,
        disk_path=disk_path,
        source="probe",
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _linux_gpus(
    catalog: Catalog,
    environ: Mapping[str, str],
    warnings: list[str],
    nvml: Any,
    amdsmi: Any,
    sysfs_root: Path,
) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs through NVML, else AMD GPUs (amdsmi or sysfs); NVML's complaints are dropped when AMD GPUs
    are found (an AMD machine has no NVIDIA driver to report)."""
    nvidia_warnings: list[str] = []
    gpus: tuple[GpuInfo, ...] = ()
    module = load_nvml() if nvml is REAL else nvml
    if module is None:
        nvidia_warnings.append("NVIDIA GPUs not probed: nvidia-ml-py (pynvml) is not installed")
    else:
        gpus = probe_nvidia_gpus(module, catalog, environ, nvidia_warnings)
    if not gpus:
        smi = load_amdsmi() if amdsmi is REAL else amdsmi
        gpus = probe_amd_gpus(smi, sysfs_root, catalog, warnings, environ)
    if not any(g.vendor == "amd" for g in gpus):
        warnings.extend(nvidia_warnings)
    return gpus


# --------------------------------------------------------------------------- small conversions


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _capability(value: Any) -> tuple[int, int] | None:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    return None


def _catalog_capability(acc: Accelerator | None) -> tuple[int, int] | None:
    if acc is None:
        return None
    major, _, minor = acc.compute_capability.partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def _bus_id(pci: Any) -> str | None:
    """A PCI bus id in one spelling (domain:bus:device.function; '00000000:07:00.0' == '0000:07:00.0')."""
    text = _text(getattr(pci, "busId", None))
    if not text:
        return None
    parts = text.lower().split(":")
    try:
        if len(parts) == 3:
            return f"{int(parts[0], 16):x}:{int(parts[1], 16):02x}:{parts[2]}"
        if len(parts) == 2:
            return f"0:{int(parts[0], 16):02x}:{parts[1]}"
    except ValueError:
        pass
    return text.lower()
