"""The parent process: probes the host, runs every step in its own process within the time budget, and rewrites
the report after each. Imports the benchmark's steps and report modules, registry and launcher.machine (no torch).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench._common import ROOT, GiB, write_json_atomic
from bench.gpu.compare import case_summary
from bench.gpu.report import ReportFiles, new_report, one_line
from bench.gpu.steps import MODELS, Job, Settings, Step, disk_ok, plan_steps, reserve_s, should_run, tiny_card
from launcher.machine.host import HostSnapshot
from registry.schema import ModelCard


def safe_name(text: str) -> str:
    """A file-name-safe version of a GPU name: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unknown"


def default_work_dir() -> Path:
    """The folder with the most free space among the usual scratch places (the 14B needs ~31 GB)."""
    candidates = [Path(tempfile.gettempdir()), Path("/var/tmp"), Path.home()]
    best = max(
        (c for c in candidates if c.is_dir() and os.access(c, os.W_OK)),
        key=lambda c: shutil.disk_usage(c).free,
    )
    return best / "berth-gpu-bench"


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a step's process: offline, unbuffered, its own BERTH_HOME; no GPU in --tiny."""
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        TRANSFORMERS_VERBOSITY="error",
        BERTH_HOME=str(settings.work_dir / "berth-home"),
    )
    if settings.tiny:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_child(
    settings: Settings, step: Step, timeout: float, log: Path
) -> tuple[str, dict[str, Any], str | None]:
    """Run one step in a fresh process (`python -m bench.gpu --child JOB`); (status, what it recorded, error)."""
    job_path = settings.work_dir / "steps" / f"{step.name}.job.json"
    result_path = settings.work_dir / "steps" / f"{step.name}.result.json"
    result_path.unlink(missing_ok=True)
    job = Job(
        step.name, step.spec, str(result_path), settings.tiny, settings.prompt_tokens, settings.max_time_s
    )
    write_json_atomic(job_path, job.to_json())
    command = [sys.executable, "-m", "bench.gpu", "--child", str(job_path)]
    status, error = "ok", None
    with log.open("a") as handle:
        handle.write(f"\n===== {step.name} ({datetime.now(timezone.utc).isoformat(timespec='seconds')})\n")
        handle.flush()
        try:
            done = subprocess.run(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=child_env(settings),
                cwd=ROOT,
                timeout=timeout,
            )
            if done.returncode != 0:
                status, error = "failed", f"exit status {done.returncode} (see the log)"
        except subprocess.TimeoutExpired:
            status, error = "timeout", f"killed after {timeout:.0f} s"
    recorded: dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {}
    if recorded.get("error"):
        status, error = "failed", recorded["error"]
    elif status == "ok" and not recorded.get("done"):
        status, error = "failed", "the step ended without recording its figures"
    return status, recorded, error


@dataclass
class Run:
    """A run under way: its settings, steps, report and files, and the models whose build failed."""

    settings: Settings
    steps: list[Step]
    report: dict[str, Any]
    files: ReportFiles
    began: float
    broken: set[str]

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def save(self) -> None:
        self.files.save(self.report)


def _cards(settings: Settings) -> dict[str, ModelCard]:
    """The catalog cards of the chosen models (shrunk in a --tiny run)."""
    from registry.catalog import load_catalog

    catalog = load_catalog(overlay=False)
    cards = {}
    for key, model_id, overrides in MODELS:
        if key in settings.models:
            card = catalog.get(model_id)
            cards[key] = tiny_card(card, overrides) if settings.tiny else card
    return cards


def _quant_note(settings: Settings, gpu_name: str | None) -> str | None:
    """Why the int8/nf4 cases cannot run here, or None when they can."""
    if settings.tiny:
        return "a --tiny run is CPU-only"
    if not gpu_name:
        return "no NVIDIA GPU found"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed"
    return None


def _start(settings: Settings) -> Run:
    """Probe, choose the steps, write the empty report and say what will run."""
    from launcher.machine.probe import probe_host
    from registry.catalog import load_catalog
    from registry.memory import CUDA_RUNTIME_BYTES

    began = time.perf_counter()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    host = probe_host(load_catalog(overlay=False), environ=child_env(settings))
    gpu_name = host.gpus[0].name if host.gpus and not settings.tiny else None
    stem = f"gpu-{safe_name(gpu_name)}" if gpu_name else "gpu-tiny-CPU"
    pcie = host.gpus[0].pcie_bandwidth_bytes_per_s if host.gpus else None
    files = ReportFiles(settings.out_dir, stem, began, CUDA_RUNTIME_BYTES, pcie)
    cards = _cards(settings)
    note = _quant_note(settings, gpu_name)
    steps, notes = plan_steps(settings, cards, note is None, note or "")
    for line in notes:
        print(f"note: {line}")
    run = Run(settings, steps, new_report(settings, gpu_name, cards, host, notes), files, began, set())
    run.save()
    _announce(run, host if gpu_name else None)
    return run


def _announce(run: Run, host: HostSnapshot | None) -> None:
    for g in host.gpus if host else ():
        print(
            f"GPU {g.index}: {g.name}, {g.usable_bytes / GiB:.1f} GiB free of {g.total_bytes / GiB:.1f}, "
            f"catalog entry {g.accelerator_id} ({(g.bandwidth_bytes_per_s or 0) / 1e12:.2f} TB/s, "
            f"{g.bf16_tflops} bf16 TFLOP/s)"
        )
    work = run.settings.work_dir
    print(
        f"{run.report['gpu']}: {len([s for s in run.steps if s.kind != 'cleanup'])} steps, "
        f"budget {run.settings.budget_s:.0f} s, models in {work} "
        f"({shutil.disk_usage(work).free / GiB:.0f} GiB free), results in {run.files.json}"
    )


def _skip_reason(run: Run, step: Step, later: Sequence[Step]) -> str | None:
    """Why a step is skipped (its model unbuilt, no time, no disk), or None to run it."""
    elapsed = run.elapsed()
    if step.model in run.broken:
        return "its model was not built"
    if not should_run(step, later, elapsed, run.settings.budget_s):
        return f"time: {elapsed:.0f} s gone, ~{step.expect_s:.0f} s needed"
    if step.kind == "build" and not disk_ok(
        step.spec, run.settings, shutil.disk_usage(run.settings.work_dir).free
    ):
        return "not enough free disk for the model's files"
    return None


def _run_step(run: Run, step: Step, later: Sequence[Step]) -> None:
    """One build or case: skipped with a note, or run in its own process and recorded; the report saved."""
    record: dict[str, Any] = {"name": step.name, "kind": step.kind, "must": step.must}
    run.report["steps"].append(record)
    reason = _skip_reason(run, step, later)
    if reason is not None:
        if step.kind == "build":
            run.broken.add(step.model)
        record.update(status="skipped", note=reason)
        print(f"[{run.elapsed():6.0f} s] {step.name}: skipped ({reason})")
        run.save()
        return
    left = run.settings.budget_s - run.elapsed() - reserve_s(step, later)
    timeout = max(30.0, min(left, 3 * step.expect_s + 60))
    print(
        f"[{run.elapsed():6.0f} s] {step.name} (~{step.expect_s:.0f} s, timeout {timeout:.0f} s) ...",
        flush=True,
    )
    t0 = time.perf_counter()
    status, recorded, error = run_child(run.settings, step, timeout, run.files.log)
    record.update(status=status, seconds=time.perf_counter() - t0, note=error)
    if step.kind == "build":
        record["build"] = recorded
        if status != "ok":
            run.broken.add(step.model)
    else:
        recorded.update(name=step.name, status=status)
        if error:
            recorded["error"] = error
        run.report["cases"].append(recorded)
    run.save()
    print(f"[{run.elapsed():6.0f} s] {step.name}: {status}{f' ({error})' if error else ''}")
    if step.kind == "case":
        try:
            print("    " + one_line(case_summary(recorded, run.files.cuda_runtime_bytes)), flush=True)
        except Exception as failure:  # the figures are saved; only this line is lost
            print(f"    (no summary line: {failure!r})")


def run(settings: Settings) -> dict[str, Any]:
    """The whole run: every step in order within the budget; the report is rewritten after each step."""
    state = _start(settings)
    for i, step in enumerate(state.steps):
        if step.kind == "cleanup":
            shutil.rmtree(step.spec.folder, ignore_errors=True)
        else:
            _run_step(state, step, state.steps[i + 1 :])
    shutil.rmtree(settings.work_dir / "models", ignore_errors=True)
    state.save()
    files = state.files
    print(f"done in {state.report['elapsed_s']:.0f} s: {files.json}, {files.md.name}, {files.log.name}")
    return state.report
