"""Plans shared between cards of one planning signature (launcher.plan.sharing) are the plans each card gets
from scratch, and the signature holds every card field the planner reads.

The catalogs here are the shipped cards and copies of them under new ids (how a large catalog or Hub mirror
looks: many repositories of one architecture); the planner is the real one throughout."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan import figures, ladder
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import plan_all
from launcher.plan.sharing import (
    NOT_PLANNED_FIELDS,
    PLANNING_FIELDS,
    RELABELLED_FIELDS,
    planning_signature,
    relabel,
    shareable,
)
from registry.catalog import Catalog
from registry.schema import ModelCard

GB = 10**9
HOSTS = (
    "cpu,ram=8GB,disk=200GB",
    "cpu,ram=64GB",
    "rtx-4090,ram=64GB,disk=1TB",
    "2xa100-80gb,ram=512GB,disk=2TB",
    "h100-sxm,ram=256GB",
    "m4-max,ram=128GB",
)
REQUESTS = (
    PlanRequest(),
    PlanRequest(context=32768, batch=2),
    PlanRequest(context=100_000),  # above many models' maximum: capped per card (or refused)
)


def _fields(result: Plan | DoesNotFitError) -> dict[str, Any]:
    """Everything a result says (a DoesNotFitError by its fields and its message)."""
    if isinstance(result, DoesNotFitError):
        return {"message": str(result), "hint": result.hint, **vars(result)}
    return dict(result.__dict__)


def _without_id(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("model_id", "message", "args")}


def _copies(catalog: Catalog, count: int) -> Catalog:
    """`count` cards cycling through the shipped ones, each under a new id and no aliases."""
    models = tuple(
        catalog.models[i % len(catalog.models)].model_copy(
            update={
                "id": f"copy{i}/{catalog.models[i % len(catalog.models)].id.split('/')[1]}",
                "aliases": [],
            }
        )
        for i in range(count)
    )
    return Catalog(models, catalog.accelerators)


def _clear_caches() -> None:
    figures._layouts.clear()
    figures._figures.clear()
    ladder._last_rungs.clear()


def test_every_card_field_is_classified():
    """A new ModelCard field must be sorted into planning, relabelled or not planned before plans are shared."""
    groups = (set(PLANNING_FIELDS), set(RELABELLED_FIELDS), set(NOT_PLANNED_FIELDS))
    assert set.union(*groups) == set(ModelCard.model_fields)
    assert sum(map(len, groups)) == len(ModelCard.model_fields)  # no field in two groups


def test_the_planner_reads_only_planning_fields_and_the_id(catalog, monkeypatch):
    """Trace every ModelCard field the planner reads, for every shipped card on every host and request (with
    its caches emptied before each card, so nothing is answered from another card's figures)."""
    read: set[str] = set()
    original = ModelCard.__getattribute__

    def tracing(self: ModelCard, name: str) -> Any:
        if name in ModelCard.model_fields:
            read.add(name)
        return original(self, name)

    for spec in HOSTS:
        host = parse_hardware_spec(spec, catalog)
        for card in catalog.models:
            for request in REQUESTS:
                _clear_caches()
                monkeypatch.setattr(ModelCard, "__getattribute__", tracing)
                try:
                    make_plan(card, host, request, explain=False)
                except PlanRequestError:
                    pass
                finally:
                    monkeypatch.setattr(ModelCard, "__getattribute__", original)
    assert read <= set(PLANNING_FIELDS) | set(RELABELLED_FIELDS)
    # The trace does see the reads (not an empty set that passes anything).
    assert {"architecture", "context_length", "id", "params", "gated"} <= read


@pytest.mark.parametrize("spec", HOSTS)
def test_shared_plans_are_the_plans_made_from_scratch(catalog, spec):
    """Copies of the shipped cards under new ids: with sharing every row (plan, verdict, as_dict) is the one
    planned card by card, its id included."""
    host = parse_hardware_spec(spec, catalog)
    copies = _copies(catalog, 3 * len(catalog.models))
    requests = [*REQUESTS]
    if host.gpus:
        requests.append(PlanRequest(max_memory={0: 6 * GB, "cpu": 20 * GB}))
    for request in requests:
        shared = plan_all(copies, host, request)
        fresh = plan_all(copies, host, request, share=False)
        assert [r.card.id for r in shared] == [r.card.id for r in fresh]
        for a, b in zip(shared, fresh, strict=True):
            assert _fields(a.result) == _fields(b.result), a.card.id
            assert a.result.model_id == a.card.id
            assert a.as_dict() == b.as_dict()


def test_a_shared_plan_is_a_fresh_plan_but_for_the_id(catalog):
    """Several real cards planned from scratch under other ids: equal but for the id fields."""
    host = parse_hardware_spec("rtx-4090,ram=64GB,disk=1TB", catalog)
    small = parse_hardware_spec("cpu,ram=8GB", catalog)
    ids = (
        "Qwen/Qwen2.5-0.5B-Instruct",
        "deepseek-ai/DeepSeek-V3",
        "tiiuae/falcon-7b",
        "google/gemma-2-9b-it",
    )
    for model_id in ids:
        card = catalog.get(model_id)
        other = card.model_copy(update={"id": "someone/else", "aliases": ["x"], "description": "another"})
        assert planning_signature(other) == planning_signature(card)
        for where in (host, small):
            mine, theirs = make_plan(card, where, explain=False), make_plan(other, where, explain=False)
            assert shareable(mine, card.id)
            assert _without_id(_fields(relabel(mine, other.id))) == _without_id(_fields(theirs))
            assert _fields(relabel(mine, other.id)) == _fields(theirs)


def test_relabel_is_dataclasses_replace(catalog):
    card = catalog.get("Qwen/Qwen2.5-0.5B-Instruct")
    plan = make_plan(card, parse_hardware_spec("cpu,ram=64GB", catalog), explain=False)
    assert isinstance(plan, Plan)
    assert relabel(plan, "a/b") == replace(plan, model_id="a/b")
    assert relabel(plan, card.id) is plan


def test_a_result_that_names_its_card_is_not_shared(catalog):
    card = catalog.get("Qwen/Qwen2.5-0.5B-Instruct")
    plan = make_plan(card, parse_hardware_spec("cpu,ram=64GB", catalog), explain=False)
    assert isinstance(plan, Plan)
    assert not shareable(replace(plan, reasons=(*plan.reasons, f"see {card.id}")), card.id)
    error = DoesNotFitError(card.id, 10, 5, [f"berth plan {card.id} --hardware h100-sxm"])
    assert not shareable(error, card.id)
    assert shareable(DoesNotFitError(card.id, 10, 5), card.id)


#: For each planning field: a card, a changed value, and a host on which the change changes the plan.
CHANGES: tuple[tuple[str, str, Any, str], ...] = (
    ("architecture", "Qwen/Qwen2.5-0.5B-Instruct", {"num_layers": 48}, "cpu,ram=64GB"),
    ("model_type", "tiiuae/falcon-7b", "llama", "rtx-4090,ram=64GB,disk=1TB"),
    ("task", "Qwen/Qwen2.5-0.5B-Instruct", "fill-mask", "cpu,ram=64GB"),
    ("context_length", "Qwen/Qwen2.5-0.5B-Instruct", 2048, "cpu,ram=64GB"),
    ("params", "Qwen/Qwen2.5-0.5B-Instruct", 5 * 10**9, "cpu,ram=64GB"),
    ("native_dtype", "Qwen/Qwen2.5-0.5B-Instruct", "float32", "cpu,ram=64GB"),
    ("native_quant", "Qwen/Qwen2.5-7B-Instruct", "fp8", "h100-sxm,ram=256GB"),
    ("native_quant_block", "deepseek-ai/DeepSeek-V3", 32, "8xh100-sxm,ram=2TB"),
    ("weight_format", "Qwen/Qwen2.5-0.5B-Instruct", "pickle", "cpu,ram=64GB"),
    ("remote_code", "Qwen/Qwen2.5-0.5B-Instruct", True, "cpu,ram=64GB"),
    ("gated", "Qwen/Qwen2.5-0.5B-Instruct", True, "cpu,ram=64GB"),
    ("unconfirmed", "Qwen/Qwen2.5-0.5B-Instruct", ["task"], "cpu,ram=64GB"),
)
#: Fields that change a plan only with another field set, or for entries the shipped catalog has none of.
DOCUMENTED = {
    "license": "named in the warning of a gated model only (checked with gated set)",
    "measured_layout": "replaces the layout rules for Hub-derived entries; compared by every block it counts",
}


def test_every_planning_field_is_covered_by_a_change_or_documented():
    assert {name for name, *_ in CHANGES} | set(DOCUMENTED) == set(PLANNING_FIELDS)


@pytest.mark.parametrize(("name", "model_id", "value", "spec"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_card_differing_in_a_planning_field_gets_its_own_plan(catalog, name, model_id, value, spec):
    card = catalog.get(model_id)
    if name == "architecture":
        value = card.architecture.model_copy(update=value)
    changed = card.model_copy(update={name: value, "id": "changed/copy"})
    assert planning_signature(changed) != planning_signature(card)
    host = parse_hardware_spec(spec, catalog)
    before, after = make_plan(card, host, explain=False), make_plan(changed, host, explain=False)
    assert _without_id(_fields(before)) != _without_id(_fields(after))
    # plan_all plans it on its own: its row is its fresh plan, not the other card's.
    rows = plan_all(Catalog((card, changed), catalog.accelerators), host, PlanRequest())
    assert _fields(rows[1].result) == _fields(after)


def test_licence_of_a_gated_card_is_in_its_plan(catalog):
    card = catalog.get("Qwen/Qwen2.5-0.5B-Instruct").model_copy(update={"gated": True})
    other = card.model_copy(update={"license": "other-licence", "id": "changed/copy"})
    assert planning_signature(other) != planning_signature(card)
    host = parse_hardware_spec("cpu,ram=64GB", catalog)
    assert _without_id(_fields(make_plan(card, host, explain=False))) != _without_id(
        _fields(make_plan(other, host, explain=False))
    )


def test_measured_layouts_that_differ_do_not_share(catalog):
    from registry.schema import MeasuredBlock, MeasuredLayout

    card = catalog.get("Qwen/Qwen2.5-0.5B-Instruct")
    block = MeasuredBlock(name="model.layers.0", role="layer", linear=10, linear_rows=2, other=1, active=11)
    one = MeasuredLayout(no_split_class="X", blocks=[block], source="test")
    two = MeasuredLayout(no_split_class="X", blocks=[block.model_copy(update={"linear": 12})], source="test")
    first = card.model_copy(update={"measured_layout": one})
    assert planning_signature(first) != planning_signature(card.model_copy(update={"measured_layout": two}))
    assert planning_signature(first) == planning_signature(first.model_copy(update={"id": "a/b"}))
