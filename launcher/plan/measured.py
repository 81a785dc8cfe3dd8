"""What a launch really used on a machine, as a plain value the planner's reports can show beside their
estimates, and the stable key of a machine's hardware. Imports only the machine layer (no I/O here)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from launcher.machine.host import HostSnapshot


def machine_key(host: HostSnapshot) -> str:
    """A stable name for this machine's hardware: CPU model, RAM size and GPU names (not free memory)."""
    gpus = ",".join(f"{g.name}/{round(g.total_bytes / 2**30)}GiB" for g in host.gpus) or "no-gpu"
    text = f"{host.cpu.model}|{round(host.ram_total_bytes / 2**30)}GiB|{gpus}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Measurement:
    """What one launch really used on this machine, next to what the planner estimated."""

    model_id: str
    precision: str
    """Precision label (fp32, bf16, int8, nf4)."""
    strategy: str
    context: int
    """Context the plan was made for."""
    tokens_used: int
    """Tokens held in the cache when the peak was read (prompt + reply)."""
    machine_key: str
    host_label: str
    peak_bytes: int
    """Peak memory over all devices while loading and generating the first reply."""
    estimated_bytes: int
    """The planner's estimate for the same devices at `tokens_used` tokens."""
    devices: Mapping[str, int] = field(default_factory=dict)
    """Peak per device: 'cpu' (process RSS), 'cuda:0' (torch peak reserved) …"""
    load_seconds: float | None = None
    time_to_first_token_s: float | None = None
    tokens_per_s: float | None = None
    estimated_tokens_per_s: float | None = None
    """The planner's decode estimate for this launch (before any calibration)."""
    created_at: str = ""
    id: int | None = None

    @property
    def error(self) -> float:
        """Relative error of the estimate: (estimated - measured) / measured."""
        return (self.estimated_bytes - self.peak_bytes) / self.peak_bytes if self.peak_bytes else 0.0
