"""Fuzz every parser with hostile input (issue 15): per parser, the examples run, the escapes (target 0) with
the first few distinct kinds and an input that reproduces each, the slowest example's CPU time and the largest
memory the worker reached. Each example runs in a forked worker limited to 2 s of CPU and 256 MB over its
baseline (bench/fuzz_inputs.py); the inputs are derandomized, so a run repeats.

Run: .venv/bin/python -m bench.fuzz [--examples 10000] [--parser NAME ...]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings

from bench.fuzz_inputs import TARGETS, Outcome, Worker

MiB = 2**20
SHOWN_ESCAPES = 3


@dataclass
class Tally:
    """What one parser's run found."""

    examples: int = 0
    escapes: int = 0
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)  # kind -> (detail, input)
    slowest_s: float = 0.0
    slowest_input: str = ""
    peak_bytes: int = 0

    def add(self, text: str, outcome: Outcome) -> None:
        self.examples += 1
        if outcome.cpu_s > self.slowest_s:
            self.slowest_s, self.slowest_input = outcome.cpu_s, text
        self.peak_bytes = max(self.peak_bytes, outcome.peak_bytes)
        if outcome.escape:
            self.escapes += 1
            key = f"{outcome.escape}: {outcome.detail.splitlines()[-1][:120] if outcome.detail else ''}"
            self.kinds.setdefault(key, (outcome.detail, text))


def fuzz(name: str, examples: int) -> tuple[Tally, int]:
    """Run `examples` generated inputs through one parser; the tally and the worker's baseline memory."""
    tally = Tally()
    target = TARGETS[name]
    with Worker(name) as worker:

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(target.strategy)
        def run(text: str) -> None:
            tally.add(text, worker.run(text))

        run()
        return tally, worker.baseline_bytes


def _shown(text: str, limit: int = 160) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


def report(name: str, tally: Tally, baseline: int) -> None:
    print(f"{name}: {tally.examples} examples, {tally.escapes} escapes (target 0), {len(tally.kinds)} kinds")
    for kind, (_detail, text) in list(tally.kinds.items())[:SHOWN_ESCAPES]:
        print(f"    {kind}\n        input: {_shown(text)}")
    print(f"    slowest example: {tally.slowest_s:.3f} s CPU  input: {_shown(tally.slowest_input, 80)}")
    print(
        f"    largest memory: {tally.peak_bytes / MiB:.0f} MiB resident "
        f"({(tally.peak_bytes - baseline) / MiB:+.0f} MiB over the worker's {baseline / MiB:.0f} MiB start)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=int, default=10_000, help="Examples per parser.")
    parser.add_argument("--parser", action="append", choices=sorted(TARGETS), help="Only these parsers.")
    args = parser.parse_args()
    total = 0
    for name in args.parser or list(TARGETS):
        tally, baseline = fuzz(name, args.examples)
        report(name, tally, baseline)
        total += tally.escapes
    print(f"total escapes: {total} (target 0)")


if __name__ == "__main__":
    main()
