"""The run's report: its JSON skeleton, the tables for people (.md), one summary line per case, and writing both
after every step. Imports the benchmark's compare module and launcher.machine's host type.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench._common import GiB, write_json_atomic
from bench.gpu.compare import case_summary, constants_in_use, implied_constants
from bench.gpu.steps import Settings
from launcher.machine.host import HostSnapshot
from registry.schema import ModelCard

#: Version of the JSON layout. 2: `plan` is `berth plan --json`'s dict (plus summary, precision label and
#: blocks per device) and `estimate.placements` its devices with their totals.
SCHEMA = 2


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GiB:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def versions() -> dict[str, str | None]:
    """Installed versions of what the run depends on (read without importing torch)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "bitsandbytes", "safetensors", "tokenizers",
                 "pydantic", "nvidia-ml-py", "huggingface_hub"):  # fmt: skip
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def host_record(host: HostSnapshot) -> dict[str, Any]:
    """The probed host as JSON (CPU features sorted)."""
    data = asdict(host)
    data["cpu"]["features"] = sorted(data["cpu"]["features"])
    return data


def new_report(
    settings: Settings,
    gpu_name: str | None,
    cards: Mapping[str, ModelCard],
    host: HostSnapshot,
    notes: list[str],
) -> dict[str, Any]:
    """The report before any step has run: settings, versions, host and the constants in use."""
    return {
        "schema": SCHEMA,
        "gpu": gpu_name or "none (--tiny, CPU)",
        "tiny": settings.tiny,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "budget_s": settings.budget_s,
            "prompt_tokens": settings.prompt_tokens,
            "new_tokens": settings.new_tokens,
            "compare_new_tokens": settings.compare_new_tokens,
            "max_time_s": settings.max_time_s,
            "gpu_budget_bytes": settings.gpu_budget_bytes,
            "cpu_budget_bytes": settings.cpu_budget_bytes,
            "models": {k: card.id for k, card in cards.items()},
            "work_dir": str(settings.work_dir),
        },
        "versions": versions(),
        "host": host_record(host),
        "constants": constants_in_use(),
        "steps": [],
        "cases": [],
        "summary": [],
        "implied": {},
        "notes": notes,
    }


class ReportFiles:
    """Where the report goes (`<stem>.json`, `.md`, `.log` in the results folder), and its rewriting."""

    def __init__(self, out_dir: Path, stem: str, began: float, cuda_runtime_bytes: int, pcie: int | None):
        self.json = out_dir / f"{stem}.json"
        self.md = out_dir / f"{stem}.md"
        self.log = out_dir / f"{stem}.log"
        self.began = began
        self.cuda_runtime_bytes = cuda_runtime_bytes
        self.pcie = pcie
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")

    def save(self, report: dict[str, Any]) -> None:
        """Summaries, implied constants and tables from the cases so far; both files rewritten."""
        report["elapsed_s"] = time.perf_counter() - self.began
        try:  # a bug in the summaries must not lose the raw figures
            report["summary"] = [case_summary(c, self.cuda_runtime_bytes) for c in report["cases"]]
            report["implied"] = implied_constants(report["cases"], report["constants"], self.pcie)
            text = markdown(report)
        except Exception:
            report["summary_error"] = traceback.format_exc()[-3000:]
            text = f"summary failed; see summary_error in {self.json.name}\n"
        write_json_atomic(self.json, report)
        self.md.write_text(text)


def markdown(report: Mapping[str, Any]) -> str:
    """The report's tables for people (GiB = 2^30 bytes; err = (estimated - measured) / measured)."""
    settings, found = report["settings"], report["versions"]
    lines = [
        f"# Berth estimates vs measured: {report['gpu']}",
        "",
        f"{report['started']} · torch {found.get('torch')} · transformers {found.get('transformers')} · "
        f"bitsandbytes {found.get('bitsandbytes')} · prompt {settings['prompt_tokens']} tokens, "
        f"{settings['new_tokens']} new · elapsed {report.get('elapsed_s', 0):.0f} s. "
        "Targets: memory within 5%, decode speed within 25%.",
    ]
    summary = report.get("summary", [])
    lines += _gpu_memory_table(summary) + _cpu_memory_table(summary) + _speed_table(summary)
    lines += ["", "## Steps", "", "| step | status | seconds | note |", "|---|---|---:|---|"]
    for step in report.get("steps", []):
        note = str(step.get("note") or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {step['name']} | {step['status']} | {_num(step.get('seconds'))} | {note} |")
    implied = report.get("implied") or {}
    if any(implied.values()):
        lines += ["", "## Implied constants", "", "```", json.dumps(implied, indent=1), "```"]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def _gpu_memory_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## GPU memory (GiB)",
        "",
        "NVML Δ: used memory less the reading before the process started CUDA; estimate + runtime adds "
        "CUDA_RUNTIME_BYTES. After generating, the estimate is for the tokens really held.",
        "",
        "| case | plan | device | load: est. weights | torch alloc. | err | est. + runtime | NVML Δ | err | "
        "gen: est. | torch max reserved | err | torch max alloc. | est. + runtime | NVML Δ | err |",
        "|---|---|---|" + "---:|" * 13,
    ]
    for row in summary:
        for device, d in row["devices"].items():
            if not device.startswith("cuda:"):
                continue
            a, g = d["after_load"], d["after_generate"]
            lines.append(
                f"| {row['case']} | {row['plan']} | {device} | {_gib(a['estimated_weights'])} | "
                f"{_gib(a['torch_allocated'])} | {_pct(a['error_weights_vs_allocated'])} | "
                f"{_gib(a['estimated_with_runtime'])} | {_gib(a['nvml_used_delta'])} | {_pct(a['error_vs_nvml'])} | "
                f"{_gib(g['estimated_excl_runtime'])} | {_gib(g['torch_max_reserved'])} | "
                f"{_pct(g['error_vs_torch_max_reserved'])} | {_gib(g['torch_max_allocated'])} | "
                f"{_gib(g['estimated_with_runtime'])} | {_gib(g['nvml_used_delta'])} | {_pct(g['error_vs_nvml'])} |"
            )
    return lines


def _cpu_memory_table(summary: list[dict[str, Any]]) -> list[str]:
    rows = [
        (row, d) for row in summary for device, d in row["devices"].items() if not device.startswith("cuda:")
    ]
    if not rows:
        return []
    lines = [
        "",
        "## CPU memory (GiB; process RSS peak while generating)",
        "",
        "| case | plan | est. | RSS peak | err |",
        "|---|---|---:|---:|---:|",
    ]
    for row, d in rows:
        lines.append(
            f"| {row['case']} | {row['plan']} | {_gib(d['estimated'])} | {_gib(d['rss_peak'])} | "
            f"{_pct(d['error_vs_rss_peak'])} |"
        )
    return lines


def _speed_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Speed",
        "",
        "| case | status | plan | new tokens | est. tok/s | meas. tok/s | err | est. TTFT s | meas. TTFT s | err | "
        "load s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        dec, ttft = row["decode_tokens_per_s"], row["time_to_first_token_s"]
        lines.append(
            f"| {row['case']} | {row['status']} | {row['plan']} | {row['new_tokens'] or '-'} | "
            f"{_num(dec['estimated'])} | {_num(dec['measured'])} | {_pct(dec['error'])} | "
            f"{_num(ttft['estimated'], 3)} | {_num(ttft['measured'], 3)} | {_pct(ttft['error'])} | "
            f"{_num(row['load_seconds']['measured'])} |"
        )
    return lines


def one_line(row: Mapping[str, Any]) -> str:
    """A case's summary row as one line for the console: memory per device and speed, estimated vs measured."""
    parts = [str(row.get("plan"))]
    for device, d in row["devices"].items():
        if device.startswith("cuda:"):
            a, g = d["after_load"], d["after_generate"]
            parts.append(
                f"{device} load: est {_gib(a['estimated_with_runtime'])} vs NVML {_gib(a['nvml_used_delta'])} GiB "
                f"({_pct(a['error_vs_nvml'])}); gen: est {_gib(g['estimated_with_runtime'])} vs NVML "
                f"{_gib(g['nvml_used_delta'])} GiB ({_pct(g['error_vs_nvml'])}), torch max reserved "
                f"{_gib(g['torch_max_reserved'])} ({_pct(g['error_vs_torch_max_reserved'])})"
            )
        else:
            parts.append(
                f"{device} est {_gib(d['estimated'])} vs RSS {_gib(d['rss_peak'])} GiB ({_pct(d['error_vs_rss_peak'])})"
            )
    dec, ttft = row["decode_tokens_per_s"], row["time_to_first_token_s"]
    parts.append(
        f"{_num(dec['measured'])} tok/s (est {_num(dec['estimated'])}, {_pct(dec['error'])}), "
        f"TTFT {_num(ttft['measured'], 3)} s (est {_num(ttft['estimated'], 3)})"
    )
    return "; ".join(parts)
