"""Property fuzz of every parser (issue 15): hostile generated input (bench/fuzz_inputs.py, derandomized) may
only end in the parser's own errors (BerthError, or the documented error of parse_size / --max-memory), each
example within 2 s of CPU and 256 MB, in a forked worker under those limits. bench/fuzz.py runs 10,000 a
parser; here a small budget."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from bench.fuzz_inputs import TARGETS, Worker

EXAMPLES = 50


@pytest.mark.parametrize("name", list(TARGETS))
def test_parser_lets_nothing_escape(name: str) -> None:
    target = TARGETS[name]
    with Worker(name) as worker:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a worker that dies costs a restart
            suppress_health_check=list(HealthCheck),
        )
        @given(target.strategy)
        def check(text: str) -> None:
            outcome = worker.run(text)
            assert not outcome.escape, f"{outcome.escape}: {outcome.detail}\ninput: {text[:500]!r}"

        check()
