"""Berth's decode estimates against every published measurement in registry/corpus/decode.yaml (issue 11):
each row within its bound, the median error at most 25%, none off by more than 2x, and the "±N%" the plan
prints is the corpus's measured error."""

from __future__ import annotations

import re

import pytest

from bench.predictions import (
    TARGET_MEDIAN,
    TARGET_WORST,
    evaluate,
    load_rows,
    ratio,
    summarize,
)
from launcher.plan.speed import (
    BASIS_ESTIMATED,
    CORPUS_MEDIAN_ERROR_PCT,
    CORPUS_P90_ERROR_PCT,
    CORPUS_ROWS,
)


@pytest.fixture(scope="module")
def pairs(catalog):
    return evaluate(catalog)


def test_the_corpus_is_cited_and_large_enough():
    rows = load_rows()
    assert len(rows) >= 40
    for row in rows:
        assert row.source.startswith("https://"), row
        # The quoted table cell holds the number the row records.
        assert re.search(rf"\b{row.tokens_per_s:.2f}\b", row.quote), (row.tokens_per_s, row.quote)
        assert row.runtime in ("transformers", "vllm")
        assert 1 < row.bound <= 2.0


def test_every_row_within_its_bound(pairs):
    assert len(pairs) >= 40
    off = [
        f"{row.model} {row.gpus}x{row.accelerator} {row.runtime} prompt {row.input_tokens}: "
        f"estimated {est:.2f}, measured {row.tokens_per_s}"
        for row, est in pairs
        if ratio(est, row.tokens_per_s) > row.bound
    ]
    assert not off


def test_median_and_worst_meet_the_targets(pairs):
    summary = summarize(pairs)
    assert summary.median_error <= TARGET_MEDIAN
    assert summary.worst_ratio <= TARGET_WORST
    for runtime in ("transformers", "vllm"):
        assert summarize([p for p in pairs if p[0].runtime == runtime]).median_error <= TARGET_MEDIAN


def test_the_plan_shows_the_corpus_error(pairs):
    summary = summarize(pairs)
    measured = (summary.rows, round(summary.median_error * 100), round(summary.p90_error * 100))
    assert measured == (CORPUS_ROWS, CORPUS_MEDIAN_ERROR_PCT, CORPUS_P90_ERROR_PCT), (
        f"update launcher/plan/speed.py: CORPUS_ROWS, CORPUS_MEDIAN_ERROR_PCT, CORPUS_P90_ERROR_PCT = {measured}"
    )
    assert f"±{CORPUS_MEDIAN_ERROR_PCT}%" in BASIS_ESTIMATED and f"{CORPUS_ROWS} published" in BASIS_ESTIMATED
