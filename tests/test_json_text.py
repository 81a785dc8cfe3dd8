"""launcher.cli.json_text writes exactly json.dumps(value, indent=2)'s text (and json.dumps' errors)."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.cli.json_text import Joined, dumps, written
from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.request import PlanRequest
from launcher.plan.rows import plan_all

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.text(),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
        st.tuples(children, children),
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(_values)
def test_generated_values_give_json_dumps_text(value):
    assert dumps(value) == json.dumps(value, indent=2)


class Colour(str, Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key", None: "null key", False: "bool key", 2.5: "float key"},
        OrderedDict(a=1),
        [Colour.RED, {"c": Colour.RED}],
        {"nan": math.nan, "inf": [math.inf, -math.inf], "big": 10**30, "neg": -0.0},
        {"é": "ü ✓ \u2028 \x00 \ud800", "nested": [[[]], {}, [{}], {"a": []}]},
        [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]],
    ],
)
def test_unusual_values_give_json_dumps_text(value):
    assert dumps(value) == json.dumps(value, indent=2)


def test_deep_nesting_and_errors_are_json_dumps_own():
    deep: list[object] = []
    for _ in range(500):
        deep = [deep]
    assert dumps(deep) == json.dumps(deep, indent=2)
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(circular)
    with pytest.raises(TypeError):
        dumps({"set": {1, 2}})


def test_list_rows_give_json_dumps_text(catalog):
    host = parse_hardware_spec("rtx-4090,ram=64GB,disk=1TB", catalog)
    document = {
        "host": host.label,
        "models": [row.as_dict() for row in plan_all(catalog, host, PlanRequest())],
    }
    assert dumps(document) == json.dumps(document, indent=2)


_parts = st.lists(
    st.tuples(st.dictionaries(st.text(max_size=4), _values, max_size=4), st.booleans()),
    max_size=4,
)


@settings(max_examples=500, deadline=None)
@given(_parts, st.integers(min_value=0, max_value=3))
def test_joined_objects_give_the_text_of_their_merged_dict(parts, depth):
    """Parts with keys in common, containers among the values and Written parts reused at any depth."""
    joined = Joined(tuple(written(part) if encoded else part for part, encoded in parts))
    merged: dict[str, object] = {}
    for part, _ in parts:
        merged.update(part)
    value: object = joined
    plain: object = merged
    for _ in range(depth):
        value, plain = [value, {"again": value}], [plain, {"again": plain}]
    assert dumps(value) == json.dumps(plain, indent=2)


def test_list_rows_written_from_shared_plan_parts_are_the_rows_text(catalog):
    """`berth list --json` writes each row from its card fields and its plan group's encoded plan fields."""
    host = parse_hardware_spec("cpu,ram=64GB", catalog)
    rows = plan_all(catalog, host, PlanRequest())
    assert any(row.plan_group is not None and row.plan_group != i for i, row in enumerate(rows))
    shared = {}
    joined = [
        Joined((row.card_fields(), shared.setdefault(row.plan_group, written(row.plan_fields()))))
        if row.plan_group is not None
        else Joined((row.card_fields(), row.plan_fields()))
        for row in rows
    ]
    assert dumps({"models": joined}) == json.dumps({"models": [row.as_dict() for row in rows]}, indent=2)
