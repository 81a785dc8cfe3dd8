"""AMD GPUs under ROCm: read through amdsmi when it is installed, else from the amdgpu driver's sysfs files.

Imports launcher.machine.host and registry only. The amdsmi module is passed in (tests pass a stand-in that
returns recorded answers) and the sysfs root is a parameter (tests pass a recorded tree); the rest is parsing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from launcher.machine.host import GpuInfo
from registry.catalog import Catalog
from registry.schema import Accelerator

AMD_VENDOR_ID = 0x1002
#: Names of AMD PCI device ids, from the PCI ID database (pci.ids, https://pci-ids.ucw.cz/read/PC/1002):
#: '74a1 Aqua Vanjaram [Instinct MI300X]', '74a5 Aqua Vanjaram [Instinct MI325X]', '740c Aldebaran/MI200
#: [Instinct MI250X/MI250]', '740f Aldebaran/MI200 [Instinct MI210]', '7448 Navi 31 [Radeon Pro W7900]',
#: '744c Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]'. 744c covers three cards told apart by memory.
PCI_NAMES: dict[int, str] = {
    0x74A1: "AMD Instinct MI300X",
    0x74A5: "AMD Instinct MI325X",
    0x740C: "AMD Instinct MI250X",
    0x740F: "AMD Instinct MI210",
    0x7448: "AMD Radeon PRO W7900",
}
NAVI31_GAMING = 0x744C
#: Less dedicated memory than this is an integrated GPU's carve-out (APUs reserve 0.5-8 GB; the smallest
#: discrete ROCm cards have 8 GB).
MIN_DISCRETE_VRAM_BYTES = 4 * 2**30
#: Navi 31 gaming cards by VRAM (GiB): the XTX has 24, the XT 20, the GRE 16.
NAVI31_BY_GIB = {24: "AMD Radeon RX 7900 XTX", 20: "AMD Radeon RX 7900 XT", 16: "AMD Radeon RX 7900 GRE"}
#: ROCm's compute capability for a catalog-less card is unknown; bf16 is assumed on CDNA2+ and RDNA3.
_CARD = re.compile(r"^card(\d+)$")


@dataclass(frozen=True)
class SysfsCard:
    """One amdgpu card as sysfs shows it."""

    card: int
    device_id: int | None
    total_bytes: int | None
    used_bytes: int | None
    product_name: str | None = None


def read_sysfs_cards(root: Path) -> list[SysfsCard]:
    """AMD cards under `root` (normally /sys/class/drm): card<N>/device with vendor 0x1002 and a VRAM size.

    Connector entries (card0-DP-1) and other vendors' cards are skipped; cards come back in card order.
    """
    cards: list[SysfsCard] = []
    try:
        entries = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _CARD.match(p.name)))
    except OSError:
        return []
    for number, path in entries:
        device = path / "device"
        if _hex(_read(device / "vendor")) != AMD_VENDOR_ID:
            continue
        total = _int(_read(device / "mem_info_vram_total"))
        if not total:
            continue  # an APU's display block or a card without the amdgpu memory files
        cards.append(
            SysfsCard(
                card=number,
                device_id=_hex(_read(device / "device")),
                total_bytes=total,
                used_bytes=_int(_read(device / "mem_info_vram_used")),
                product_name=(_read(device / "product_name") or "").strip() or None,
            )
        )
    return cards


def card_name(device_id: int | None, total_bytes: int | None, product_name: str | None = None) -> str:
    """A card's marketing name: the board's product_name when the driver has one, else the PCI id's name."""
    if product_name:
        return product_name
    if device_id == NAVI31_GAMING and total_bytes:
        return NAVI31_BY_GIB.get(round(total_bytes / 2**30), "AMD Radeon RX 7900 series")
    if device_id in PCI_NAMES:
        return PCI_NAMES[device_id]
    return f"AMD GPU {device_id:#06x}" if device_id is not None else "AMD GPU"


def sysfs_gpus(root: Path, catalog: Catalog) -> tuple[GpuInfo, ...]:
    """AMD GPUs from the driver's sysfs files, indexed in card order as ROCm numbers them."""
    gpus = []
    for index, card in enumerate(read_sysfs_cards(root)):
        name = card_name(card.device_id, card.total_bytes, card.product_name)
        total = card.total_bytes or 0
        free = total - card.used_bytes if card.used_bytes is not None else None
        gpus.append(_gpu(index, name, total, free, card.used_bytes, catalog.match_gpu_name(name)))
    return tuple(gpus)


def discrete_gpus(gpus: tuple[GpuInfo, ...], warnings: list[str]) -> tuple[GpuInfo, ...]:
    """The GPUs with at least MIN_DISCRETE_VRAM_BYTES of their own memory, renumbered from 0: an APU's small
    VRAM carve-out (the rest of its memory is system RAM) is no GPU to plan weights for."""
    kept = [g for g in gpus if g.total_bytes >= MIN_DISCRETE_VRAM_BYTES]
    for gpu in gpus:
        if gpu.total_bytes < MIN_DISCRETE_VRAM_BYTES:
            warnings.append(
                f"{gpu.name} is left out: {gpu.total_bytes / 2**30:.1f} GiB of dedicated memory (an integrated GPU)"
            )
    return tuple(replace(g, index=i) for i, g in enumerate(kept))


def amdsmi_gpus(amdsmi: Any, catalog: Catalog, warnings: list[str]) -> tuple[GpuInfo, ...] | None:
    """AMD GPUs through the amdsmi Python library; None when it cannot start (the caller falls back on sysfs).

    Uses amdsmi_get_gpu_asic_info (market_name, device_id) and amdsmi_get_gpu_vram_usage (vram_total and
    vram_used in MB, i.e. MiB), as documented in ROCm's amdsmi Python API reference.
    """
    try:
        amdsmi.amdsmi_init()
    except Exception as error:  # the library's boundary: a missing driver is a reading that failed
        warnings.append(f"amdsmi did not start ({type(error).__name__}: {error}); reading sysfs instead")
        return None
    try:
        handles = amdsmi.amdsmi_get_processor_handles()
        return tuple(_amdsmi_gpu(amdsmi, i, h, catalog, warnings) for i, h in enumerate(handles))
    except Exception as error:
        warnings.append(f"amdsmi failed ({type(error).__name__}: {error}); reading sysfs instead")
        return None
    finally:
        with contextlib.suppress(Exception):
            amdsmi.amdsmi_shut_down()


def _amdsmi_gpu(amdsmi: Any, index: int, handle: Any, catalog: Catalog, warnings: list[str]) -> GpuInfo:
    asic = _answer(amdsmi.amdsmi_get_gpu_asic_info, handle)
    vram = _answer(amdsmi.amdsmi_get_gpu_vram_usage, handle)
    market = str(asic.get("market_name") or "").strip()
    device_id = _hex(str(asic.get("device_id", "")))
    total_mib, used_mib = _int(vram.get("vram_total")), _int(vram.get("vram_used"))
    total = total_mib * 2**20 if total_mib else None
    name = market if market and market.upper() != "N/A" else card_name(device_id, total)
    acc = catalog.match_gpu_name(name)
    if total is None:
        total = acc.total_bytes if acc else 0
        warnings.append(f"GPU {index}: total memory {'taken from the catalog' if acc else 'unknown'}")
    used = used_mib * 2**20 if used_mib is not None else None
    free = total - used if used is not None else None
    return _gpu(index, name, total, free, used, acc)


def _gpu(
    index: int, name: str, total: int, free: int | None, used: int | None, acc: Accelerator | None
) -> GpuInfo:
    capability = acc.compute_capability.partition(".") if acc else None
    return GpuInfo(
        index=index,
        name=name,
        total_bytes=total,
        free_bytes=max(free, 0) if free is not None else None,
        used_bytes=used,
        compute_capability=(int(capability[0]), int(capability[2])) if capability else None,
        vendor="amd",
        accelerator_id=acc.id if acc else None,
        bandwidth_bytes_per_s=acc.bandwidth_bytes_per_s if acc else None,
        bf16_tflops=acc.bf16_tflops if acc else None,
    )


def _answer(func: Any, handle: Any) -> Mapping[str, Any]:
    try:
        value = func(handle)
    except Exception:  # one reading failing leaves the others
        return {}
    return value if isinstance(value, Mapping) else {}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def _hex(text: str | None) -> int | None:
    try:
        return int((text or "").strip(), 16) if text and text.strip() else None
    except ValueError:
        return None
