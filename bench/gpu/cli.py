"""The command line of `python -m bench.gpu`: options to Settings, then the run (or, with the hidden --child,
one step's process). Imports the benchmark's steps, runner and child modules.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench._common import GiB
from bench.gpu.child import child_main
from bench.gpu.runner import child_env, default_work_dir, run
from bench.gpu.steps import MODELS, Settings

DESCRIPTION = "Berth's memory and speed estimates against one real GPU, on random-weight models built from catalog fields."


def make_parser() -> argparse.ArgumentParser:
    """The options (bench/GPU.md lists them)."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=DESCRIPTION)
    parser.add_argument("--tiny", action="store_true", help="CPU check with 2-4-layer versions of the cards.")
    parser.add_argument("--budget-s", type=float, default=480.0, help="Wall-clock budget for the whole run.")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="Default 2048 (64 with --tiny).")
    parser.add_argument("--new-tokens", type=int, default=None, help="Default 256 (16 with --tiny).")
    parser.add_argument("--compare-new-tokens", type=int, default=None, help="Offload cases; default 16 (8).")
    parser.add_argument("--max-time-s", type=float, default=60.0, help="Stop any one generation after this.")
    parser.add_argument("--gpu-budget-gib", type=float, default=20.0, help="GPU 0 budget of the comparison.")
    parser.add_argument("--cpu-budget-gib", type=float, default=64.0, help="RAM budget of the comparison.")
    parser.add_argument(
        "--models", default=",".join(k for k, _, _ in MODELS), help="Comma-separated: danube,mistral,qwen14."
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Results folder (default $OUT, else bench/results)."
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="Where models are written (deleted after)."
    )
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """The run's settings from the command line (defaults depend on --tiny), and the parsed options."""
    parser = make_parser()
    args = parser.parse_args(argv)
    return settings_from(args, parser), args


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """Settings from parsed options; an unknown model key is a usage error."""
    known = {k for k, _, _ in MODELS}
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = set(models) - known
    if unknown:
        parser.error(
            f"unknown model key(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(known))}"
        )
    tiny = bool(args.tiny)
    out = args.out or (
        Path(os.environ["OUT"])
        if os.environ.get("OUT")
        else Path(__file__).resolve().parent.parent / "results"
    )
    if args.work_dir is not None:
        work = args.work_dir
    elif tiny:
        work = Path(tempfile.mkdtemp(prefix="berth-gpu-tiny-"))
    else:
        work = default_work_dir()
    return Settings(
        tiny=tiny,
        budget_s=args.budget_s,
        prompt_tokens=args.prompt_tokens or (64 if tiny else 2048),
        new_tokens=args.new_tokens or (16 if tiny else 256),
        compare_new_tokens=args.compare_new_tokens or (8 if tiny else 16),
        max_time_s=args.max_time_s,
        gpu_budget_bytes=int(args.gpu_budget_gib * GiB),
        cpu_budget_bytes=int(args.cpu_budget_gib * GiB),
        models=models,
        out_dir=out,
        work_dir=work,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with --child, one step of it); the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.child is not None:
        return child_main(args.child)
    settings = settings_from(args, parser)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for key, value in child_env(settings).items():
        os.environ.setdefault(key, value)
    try:
        run(settings)
    finally:
        if settings.tiny and args.work_dir is None:
            shutil.rmtree(settings.work_dir, ignore_errors=True)
    return 0
