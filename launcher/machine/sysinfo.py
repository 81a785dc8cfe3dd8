"""Pure parsers of system text: /proc/cpuinfo, cgroup memory limits, CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

from collections.abc import Sequence

#: CPU flags kept on a snapshot (the ones that decide dtype and kernels); the rest of /proc/cpuinfo is noise.
CPU_FEATURES = frozenset(
    {
        # x86
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "avx_vnni",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
        "amx_fp16",
        # arm64
        "asimd",
        "asimdhp",
        "sve",
        "sve2",
        "bf16",
        "i8mm",
    }
)

_MODEL_KEYS = ("model name", "cpu model", "hardware", "model")
_FLAG_KEYS = ("flags", "features")

#: cgroup v1 reports "no limit" as a huge number (close to 2^63); anything above this is no limit.
_NO_LIMIT = 2**60


def parse_cpuinfo(text: str) -> tuple[str | None, frozenset[str]]:
    """The CPU model and its relevant feature flags (lowercase) from /proc/cpuinfo text.

    Only the first processor's block is read; every core of a machine has the same model and flags.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields.get("model name") and any(k in fields for k in _FLAG_KEYS):
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    model = next((fields[k] for k in _MODEL_KEYS if fields.get(k) and not fields[k].isdigit()), None)
    flags = next((fields[k] for k in _FLAG_KEYS if k in fields), "")
    return model, frozenset(flags.lower().split()) & CPU_FEATURES


def cgroup_memory(
    limit_text: str | None, usage_text: str | None, stat_text: str | None
) -> tuple[int | None, int | None]:
    """(limit, available) bytes from a cgroup's memory.max / memory.current / memory.stat text (v1 names too).

    None where there is no limit. Reclaimable page cache (inactive_file) counts as available, as the kernel
    would drop it before killing the process.
    """
    limit = _int_or_none(limit_text)
    if limit is None or limit >= _NO_LIMIT:
        return None, None
    usage = _int_or_none(usage_text)
    if usage is None:
        return limit, None
    inactive = 0
    for line in (stat_text or "").splitlines():
        name, _, value = line.partition(" ")
        if name in ("inactive_file", "total_inactive_file"):
            inactive = _int_or_none(value) or 0
            break
    return limit, max(0, limit - max(0, usage - inactive))


def visible_gpus(value: str | None, uuids: Sequence[str | None]) -> tuple[list[int], str | None]:
    """Which NVML indexes CUDA will see, in CUDA order, for a CUDA_VISIBLE_DEVICES value; and a warning.

    Entries are indexes or (prefixes of) GPU UUIDs; as in CUDA, the list ends at the first entry that
    names no GPU. Unset means every GPU; an empty value means none.
    """
    count = len(uuids)
    if value is None:
        return list(range(count)), None
    chosen: list[int] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        index = _match_visible(entry, uuids)
        if index is None:
            return (
                chosen,
                f"CUDA_VISIBLE_DEVICES entry '{entry}' names no GPU here; later entries are ignored",
            )
        if index in chosen:
            return (
                chosen,
                f"CUDA_VISIBLE_DEVICES lists GPU '{entry}' twice; CUDA ignores the rest of the list",
            )
        chosen.append(index)
    return chosen, None


def _match_visible(entry: str, uuids: Sequence[str | None]) -> int | None:
    if entry.lstrip("-").isdigit():
        index = int(entry)
        return index if 0 <= index < len(uuids) else None
    if entry.upper().startswith("GPU-"):
        hits = [i for i, u in enumerate(uuids) if u and u.upper().startswith(entry.upper())]
        return hits[0] if len(hits) == 1 else None
    return None


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None
