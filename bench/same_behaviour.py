"""Check that a refactor changed no output: run Berth's read commands from two source trees and diff them.

The commands are the ones people script against: `berth list --json` and `berth plan MODEL --json` for seven
seed models on three hardware specs, `berth show MODEL --json`, and the three exports of `examples/fleet.yaml`
(plus `berth fleet plan --json`). Each tree runs in its own process with an empty BERTH_HOME and the Hub
offline, so nothing on this machine (overlay, measurements) leaks into the output.

    .venv/bin/python -m bench.same_behaviour                 # this tree against main before the house refactor
    .venv/bin/python -m bench.same_behaviour --base HEAD~3   # this tree against any commit

Prints one line per command (same / DIFFERENT) and exits 1 when any output differs.
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEED_MODELS = [
    "h2oai/h2o-danube-1.8b-chat",
    "mosaicml/mpt-7b",
    "tiiuae/falcon-7b",
    "tiiuae/falcon-180B",
    "mistralai/Mistral-7B-v0.1",
    "openai-community/gpt2",
    "google-bert/bert-base-uncased",
]
HARDWARE = ["cpu,ram=32GB,cores=8", "rtx-4090,ram=64GB", "2xA100-80GB,ram=512GB"]
FLEET_FILE = "examples/fleet.yaml"
BEFORE_REFACTOR = "0c51c7d"  # main before the packages of the house issue


def commands() -> list[list[str]]:
    """Every command whose output must not change, as argument lists for `berth`."""
    runs: list[list[str]] = []
    for spec in HARDWARE:
        runs.append(["list", "--json", "--hardware", spec])
        runs.extend(["plan", model, "--json", "--hardware", spec] for model in SEED_MODELS)
    runs.extend(["show", model, "--json"] for model in SEED_MODELS)
    runs.append(["fleet", "plan", FLEET_FILE, "--json"])
    runs.extend(["fleet", "export", FLEET_FILE, "--format", fmt] for fmt in ("ray-serve", "kuberay", "vllm"))
    return runs


def run_all(tree: Path) -> list[tuple[str, str]]:
    """(command line, exit code + stdout) for every command, run from `tree`'s sources."""
    outputs = []
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, BERTH_HOME=home, HF_HUB_OFFLINE="1", PYTHONPATH=str(tree))
        env.pop("BERTH_HARDWARE", None)
        for args in commands():
            proc = subprocess.run(
                [sys.executable, "-c", "from launcher.cli import main; main()", *args],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            outputs.append((" ".join(args), f"exit {proc.returncode}\n{proc.stdout}"))
    return outputs


def checkout(base: str, into: Path) -> Path:
    """A detached worktree of `base` under `into`."""
    target = into / "base"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(target), base], cwd=ROOT, check=True, capture_output=True
    )
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", default=BEFORE_REFACTOR, help=f"commit to compare against ({BEFORE_REFACTOR})"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = checkout(args.base, Path(scratch))
        try:
            before = run_all(base_tree)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
    after = run_all(ROOT)
    differing = 0
    for (name, old), (_, new) in zip(before, after, strict=True):
        same = old == new
        differing += not same
        print(f"{'same     ' if same else 'DIFFERENT'}  berth {name}")
        if not same:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), "before", "after", lineterm="", n=1
            )
            print("\n".join(list(diff)[:40]))
    print(f"{len(after) - differing} of {len(after)} outputs identical to {args.base}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
