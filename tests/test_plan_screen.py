"""The planner's closed-form screen and prefix-sum fill give exactly the plans of block-by-block placement.

`make_plan(screen=False)` places every rung block by block (accelerate's greedy fill, as before the screen);
the default lets the sums decide where they can. Over the whole shipped catalog, on hosts that exercise every
rung (CPU only, one GPU with offload and disk, two A100s, a Mac), every verdict, plan, reason and row must be
identical."""

from __future__ import annotations

import functools
from dataclasses import replace

import pytest

from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.errors import DoesNotFitError
from launcher.plan.ladder import make_plan
from launcher.plan.placement import Rung, try_rung
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import plan_all
from registry.memory import Precision
from registry.params import layout

GB = 10**9

HOSTS = (
    "cpu,ram=8GB,disk=200GB",
    "cpu,ram=64GB",
    "rtx-4090,ram=64GB,disk=1TB",
    "2xa100-80gb,ram=512GB,disk=2TB",
    "m4-max,ram=128GB",
)
REQUESTS = (
    PlanRequest(),
    PlanRequest(context=32768, batch=2),
    # A small cap on GPU 0 forces splits between GPU, RAM and disk at many different blocks.
    PlanRequest(max_memory={0: 6 * GB, "cpu": 20 * GB}),
)


def _same(result: Plan | DoesNotFitError) -> object:
    """Everything a result says: a Plan compares as a dataclass, a DoesNotFitError by its fields."""
    return result if isinstance(result, Plan) else (str(result), vars(result))


@pytest.mark.parametrize("spec", HOSTS)
def test_screen_gives_the_plans_of_full_placement(catalog, spec):
    host = parse_hardware_spec(spec, catalog)
    verdicts = set()
    for request in REQUESTS:
        if request.max_memory and not host.gpus:
            request = replace(request, max_memory={"cpu": 20 * GB})
        fast = plan_all(catalog, host, request)
        full = plan_all(catalog, host, request, planner=functools.partial(make_plan, screen=False))
        assert [r.card.id for r in fast] == [r.card.id for r in full]
        for a, b in zip(fast, full, strict=True):
            assert _same(a.result) == _same(b.result), a.card.id
            assert a.as_dict() == b.as_dict()
            verdicts.add(a.as_dict()["verdict"])
    # The hosts do exercise the placements the screen short-cuts and the ones it leaves to the fill.
    assert len(verdicts) >= 2


def test_explained_plans_match_too(catalog):
    """berth plan (explain=True: the advice re-plans at other contexts and on named hardware)."""
    host = parse_hardware_spec("rtx-4090,ram=32GB,disk=1TB", catalog)
    for card in catalog.models[::7]:
        request = PlanRequest(context=min(8192, card.context_length))
        fast = make_plan(card, host, request, catalog.accelerators)
        full = make_plan(card, host, request, catalog.accelerators, screen=False)
        assert _same(fast) == _same(full), card.id


def test_prefix_fill_splits_like_the_greedy_fill(catalog):
    """A GPU capped at every size from nothing to the whole model: each split point of an offloaded model is
    the same by prefix sums as block by block, tied head and all."""
    card = catalog.get("Qwen/Qwen2.5-0.5B-Instruct")
    assert any(b.tied_to for b in layout(card).blocks)
    host = parse_hardware_spec("rtx-4090,ram=64GB,disk=1TB", catalog)
    gpu = host.gpus[0]
    splits = set()
    for cap in range(0, 3 * GB, GB // 20):
        capped = replace(host, gpus=(replace(gpu, free_bytes=min(gpu.usable_bytes, cap)),))
        rung = Rung("offload", Precision("bfloat16"), capped.gpus, True, False)
        fast = try_rung(card, layout(card), capped, rung, 4096, 1)
        full = try_rung(card, layout(card), capped, rung, 4096, 1, screen=False)
        assert fast == full
        if fast.placements:
            splits.add(fast.placements[0].layers)
    assert len(splits) > 5  # many different split points were compared
