"""launcher.cli.json_text writes exactly json.dumps(value, indent=2)'s text (and json.dumps' errors)."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.cli.json_text import EncodedObject, dumps, members_text, object_text
from launcher.machine.hwspec import parse_hardware_spec
from launcher.plan.request import PlanRequest
from launcher.plan.rows import plan_all, sort_rows

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


_flat_values = st.one_of(_scalars, st.just([]), st.just({}))
_flat_dicts = st.dictionaries(
    st.one_of(st.text(max_size=6), st.integers(), st.booleans(), st.none()), _flat_values
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_flat_dicts, max_size=4), st.integers(min_value=0, max_value=4))
def test_flat_dicts_written_by_the_c_encoder_give_json_dumps_text(rows, depth):
    """Dicts of scalars and empty containers (written by json's C encoder at their depth), any key json takes."""
    value: object = rows
    for _ in range(depth):
        value = {"level": value, "beside": [value]}
    assert dumps(value) == json.dumps(value, indent=2)


def test_a_flat_dict_with_a_key_json_refuses_gets_json_dumps_error():
    with pytest.raises(TypeError, match="keys must be str"):
        dumps([{(1, 2): "tuple key"}])


_object_parts = st.lists(st.dictionaries(st.text(max_size=4), _values, max_size=4), max_size=4)


@settings(max_examples=500, deadline=None)
@given(_object_parts, st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=3))
def test_encoded_objects_give_the_text_of_their_merged_dict(parts, level, elsewhere):
    """An object written from members_text pieces at its depth is the merged dict's text there; placed at
    another depth, or in a document only json.dumps writes, it is written as that merged dict."""
    keys = [key for part in parts for key in part]
    if len(keys) != len(set(keys)):
        return  # parts of one object have distinct keys (members_text's contract)
    merged: dict[str, object] = {}
    for part in parts:
        merged.update(part)
    text = object_text([members_text(part, level) for part in parts], level)
    assert text == dumps(merged, level)
    encoded = EncodedObject(text, level, tuple(parts))
    wrapped: object = encoded
    plain: object = merged
    for _ in range(level):
        wrapped, plain = [wrapped], [plain]
    assert dumps(wrapped) == json.dumps(plain, indent=2)
    for _ in range(elsewhere):
        wrapped, plain = {"deeper": wrapped}, {"deeper": plain}
    assert dumps(wrapped) == json.dumps(plain, indent=2)
    # beside a value only json.dumps writes (a str Enum), the whole document goes to json.dumps
    assert dumps([wrapped, Colour.RED]) == json.dumps([plain, Colour.RED], indent=2)


def test_list_json_rows_are_the_rows_as_dicts(berth, catalog):
    """`berth list --json` writes each row from encoded parts (its plan group's encoded once): the document is
    json.dumps(indent=2) of the rows as dicts, in the fit order."""
    spec = "rtx-4090,ram=64GB,disk=1TB"
    result = berth("list", "--json", "--hardware", spec)
    document = json.loads(result.output)
    assert result.output.rstrip("\n") == json.dumps(document, indent=2)
    rows = sort_rows(plan_all(catalog, parse_hardware_spec(spec, catalog), PlanRequest()), "fit")
    expected = [row.as_dict() | {"measured_tokens_per_s": None, "gguf_only": None} for row in rows]
    assert document["models"] == expected
    assert len({row.plan_group for row in rows}) < len(rows)  # some rows shared their plan
