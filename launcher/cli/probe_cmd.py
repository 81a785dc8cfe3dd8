"""`berth probe`: what this machine (or a hardware spec) has, total and free."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json, get_catalog
from launcher.machine.host import GpuInfo, HostSnapshot
from launcher.machine.hwspec import resolve_host
from launcher.machine.probe import probe_host
from launcher.plan.unified import wired_limit_note

HARDWARE_HELP = (
    "Describe named hardware instead of this machine: '2xA100-80GB,ram=512GB', 'cpu,ram=32GB,cores=8', "
    "'8xH100+8xH100' (two nodes) or a YAML file. Default: $BERTH_HARDWARE, else this machine."
)


@click.command("probe")
@click.option("--hardware", metavar="SPEC", default=None, help=HARDWARE_HELP)
@click.option(
    "--measure",
    is_flag=True,
    help="Measure this CPU's memory bandwidth and time a linear layer in fp32/bf16/fp16 now (a few seconds); "
    "remember both for speed estimates and the CPU dtype.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (sizes in bytes).")
@click.pass_context
def probe_command(ctx: click.Context, hardware: str | None, measure: bool, as_json: bool) -> None:
    """What this machine has free: GPUs, RAM, swap, disk and CPU."""
    catalog = get_catalog(ctx)
    if measure:
        if hardware is not None:
            raise click.UsageError("--measure measures this machine; leave out --hardware")
        if os.environ.get("BERTH_HARDWARE", "").strip():
            click.echo("Note: BERTH_HARDWARE is set; --measure shows this machine instead.", err=True)
        host = probe_host(catalog, measure=True)
    else:
        host = resolve_host(hardware, catalog, os.environ)
    if as_json:
        echo_json(host_json(host))
    else:
        click.echo(describe(host))


def host_json(host: HostSnapshot) -> dict[str, Any]:
    """A snapshot as JSON-ready data: every field (bytes as ints) plus the derived figures."""
    data = asdict(host)
    data["gpu_count"] = host.gpu_count
    data["cpu"]["features"] = sorted(host.cpu.features)
    data["cpu"]["fast_bf16"] = host.cpu.fast_bf16
    for gpu, row in zip(host.gpus, data["gpus"], strict=True):
        row["usable_bytes"] = gpu.usable_bytes
        row["supports_bf16"] = gpu.supports_bf16
    return data


def describe(host: HostSnapshot) -> str:
    """A snapshot for people: GPUs as a table, then RAM, disk, CPU and warnings."""
    if host.source == "spec":
        nodes = f"; {host.nodes} nodes, RAM, disk and cores per node" if host.nodes > 1 else ""
        lines = [f"Hardware spec '{host.label}' (nominal figures: GPUs fully free{nodes})", ""]
    else:
        lines = [f"{host.label.capitalize()}", ""]
    if host.gpus:
        lines += [_gpu_table(host), ""]
    else:
        lines += ["GPUs:  none", ""]
    unified = wired_limit_note(host)
    if unified:
        lines += [f"Note:  {unified[0].upper()}{unified[1:]}.", ""]
    swap = f"; swap {display.gib(host.swap_free_bytes)} free" if host.source == "probe" else ""
    available, total = display.gib(host.ram_available_bytes), display.gib(host.ram_total_bytes)
    lines.append(f"RAM:   {available} available of {total}{swap}")
    where = f" at {host.disk_path}" if host.disk_path else ""
    lines.append(f"Disk:  {display.gib(host.disk_free_bytes)} free{where} (Hugging Face cache, offload)")
    cpu = host.cpu
    lines.append(f"CPU:   {cpu.model}, {cpu.physical_cores} physical / {cpu.logical_cores} logical cores")
    if cpu.features:
        native = "native bf16" if cpu.fast_bf16 else "no native bf16 (fp32 is faster on this CPU)"
        lines.append(f"       {' '.join(sorted(cpu.features))}; {native}")
    if cpu.bandwidth_measured:
        origin = "measured"
    elif host.source == "probe":
        origin = "default figure; measure it with `berth probe --measure`"
    else:
        origin = "default figure"
    lines.append(f"       memory bandwidth {display.gb(cpu.memory_bandwidth_bytes_per_s, 0)}/s ({origin})")
    if cpu.linear_seconds:
        times = ", ".join(f"{dtype} {seconds * 1000:.2f} ms" for dtype, seconds in cpu.linear_seconds)
        lines.append(f"       batch-1 2048→8192 linear: {times} (measured; the planner picks the fastest)")
    if host.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in host.warnings]
    return "\n".join(lines)


def _gpu_table(host: HostSnapshot) -> str:
    multi = host.nodes > 1
    headers = (["node"] if multi else []) + [
        "#",
        "GPU",
        "kind",
        "free",
        "total",
        "capability",
        "bandwidth",
        "NVLink peers",
    ]
    rows = [([str(g.node)] if multi else []) + _gpu_row(g) for g in host.gpus]
    first = int(multi)
    return display.table(headers, rows, right=(first, first + 3, first + 4))


def _gpu_row(gpu: GpuInfo) -> list[str]:
    capability = ".".join(map(str, gpu.compute_capability)) if gpu.compute_capability else "-"
    if gpu.vendor == "apple" and gpu.compute_capability:
        capability = f"Metal Apple{gpu.compute_capability[0]}"  # the GPU family, not a CUDA capability
    if gpu.unified_memory:
        capability += " (unified memory)"
    bandwidth = f"{display.gb(gpu.bandwidth_bytes_per_s, 0)}/s" if gpu.bandwidth_bytes_per_s else "-"
    return [
        str(gpu.index),
        gpu.name,
        gpu.accelerator_id or "-",
        display.gib(gpu.free_bytes),
        display.gib(gpu.total_bytes),
        capability,
        bandwidth,
        _ranges(gpu.nvlink_peers) or "-",
    ]


def _ranges(indexes: Sequence[int]) -> str:
    """0,1,2,3,5 as '0-3,5'."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(i)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)
