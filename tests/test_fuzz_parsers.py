"""Property fuzz of every parser (issue 15): hostile generated input (bench/fuzz_inputs.py, derandomized) may
only end in the parser's own errors (BerthError, or the documented error of parse_size / --max-memory), each
example within 2 s of CPU and 256 MB, in a forked worker under those limits. bench/fuzz.py runs 10,000 a
parser; here a small budget."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from bench.fuzz_inputs import TARGETS, Worker

EXAMPLES = 50

#: Parsers whose first 50 examples still let one escape on main, and the issue's class that covers it
#: (bench/fuzz.py finds escapes in spec-file and fleet-file too, further in).
ESCAPING_ON_MAIN = {
    "spec-text": "class 8 (MemoryError: NVLink peers grow with the square of GPUs per node) and 2, 3",
    "overlay": "class 1 (billion laughs: CPU limit) and 2, 4",
    "size": "class 2 (OverflowError on 400-digit sizes)",
    "max-memory": "class 2, 3 (OverflowError, unicode digits as a device)",
}


def _params() -> list[object]:
    return [
        pytest.param(
            name,
            id=name,
            marks=[pytest.mark.xfail(reason=ESCAPING_ON_MAIN[name], strict=False)]
            if name in ESCAPING_ON_MAIN
            else [],
        )
        for name in TARGETS
    ]


@pytest.mark.parametrize("name", _params())
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
