"""Hostile catalogs and overlays: every one ends in exit 2 with one paragraph naming file and line, in bounded
time and memory; `catalog validate` agrees with loading."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.bounded_read import read_text_capped
from registry.catalog import check_catalog, load_catalog
from registry.errors import CatalogError, InputFileError, UserPathError, short_repr
from registry.paths import expand_user_path
from registry.safe_yaml import MAX_YAML_NODES, load_yaml_bounded

HUGE = "9" * 400


def _laughs(field: str, levels: int = 9) -> str:
    """An overlay whose `field` expands to 9**levels strings through nested aliases (a few hundred bytes)."""
    anchors = "[&l0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"
    for i in range(1, levels):
        anchors += f", &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]"
    return f"models:\n  - id: me/laughs\n    description: x\n    unconfirmed: {anchors}]\n    {field}: *l{levels - 1}\n"


#: Overlay documents that must each be refused with exit 2, and a fragment of the message.
HOSTILE: dict[str, tuple[str, str]] = {
    "laughs_family": (_laughs("family"), "expands to more than"),
    "laughs_aliases": (_laughs("aliases"), "expands to more than"),
    "alias_inside_itself": ("models: &a [*a]\n", "refers to the value that contains it"),
    "huge_params": (f"models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    params: {HUGE}\n", "401 digits"),
    "huge_stored_extra": (
        f"models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    stored_extra_params: {HUGE}\n"
        "    stored_extra_note: x\n",
        "less than or equal",
    ),
    "huge_size_text": (
        f"accelerators:\n  - id: a100-80gb\n    memory_bytes: {'9' * 40}GB\n",
        "more than 1 PB",
    ),
    "huge_size_int": (f"accelerators:\n  - id: a100-80gb\n    memory_bytes: {HUGE}\n", "401 digits"),
    "huge_config_extra": (
        f"models:\n  - id: tiiuae/falcon-7b\n    architecture: {{config_extras: {{bias: {HUGE}}}}}\n",
        "beyond ±2**53",
    ),
    "huge_sliding_window": (
        f"models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    architecture: {{sliding_window: {HUGE}}}\n",
        "sliding_window",
    ),
    "id_list": ("models:\n  - id: [1, 2]\n", "valid string"),
    "id_mapping": ("models:\n  - id: {a: 1}\n", "valid string"),
    "accelerator_id_list": ("accelerators:\n  - id: [1, 2]\n", "valid string"),
    "alias_clash": (
        "models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    aliases: [gpt2]\n",
        "duplicate alias 'gpt2'",
    ),
    "unknown_model_type": (
        "models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    model_type: nosuch\n",
        "'nosuch' is not a model_type",
    ),
    "infinite_tflops": ("accelerators:\n  - id: a100-80gb\n    bf16_tflops: .inf\n", "finite"),
    "nan_extra": (
        "models:\n  - id: tiiuae/falcon-7b\n    architecture: {config_extras: {x: .nan}}\n",
        "finite",
    ),
    "mixed_top_keys": ("1: x\nmodles: []\n", "unknown key"),
    "long_key": (f"models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    {'k' * 1000}: 1\n", "unknown key"),
    "longer_key": (f"models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    {'k' * 100_000}: 1\n", "invalid YAML"),
    "bool_version": ("schema_version: true\n", "schema_version"),
}


def _one_paragraph(text: str) -> None:
    assert "Traceback" not in text
    assert "\n\n" not in text.strip(), text
    assert len(text) < 2000, text[:300]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_overlay_is_one_paragraph_and_exit_2(berth, berth_home, name):
    text, fragment = HOSTILE[name]
    overlay = berth_home / "catalog.yaml"
    overlay.write_text(text)
    result = berth("list")
    assert result.exit_code == 2, result.output
    _one_paragraph(result.stderr)
    flat = " ".join(result.stderr.split())
    assert fragment in flat and "catalog.yaml:" in flat
    checked = berth("catalog", "validate", str(overlay))
    assert checked.exit_code == 2
    assert fragment in " ".join(checked.stderr.split())
    assert "Traceback" not in checked.output


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_and_load_agree(tmp_path, name):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(HOSTILE[name][0])
    problems = check_catalog(overlay=overlay)
    with pytest.raises(CatalogError) as err:
        load_catalog(overlay=overlay)
    assert problems and str(problems[0]) == str(err.value)


def test_a_partial_override_validates_and_loads(berth, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("models:\n  - id: h2oai/h2o-danube-1.8b-chat\n    context_length: 8192\n")
    result = berth("catalog", "validate", str(overlay))
    assert result.exit_code == 0, result.output
    assert load_catalog(overlay=overlay).get("danube-1.8b-chat").context_length == 8192


def test_validate_lists_every_problem(berth, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(HOSTILE["unknown_model_type"][0] + HOSTILE["infinite_tflops"][0])
    result = berth("catalog", "validate", str(overlay))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "model_type" in lines[0] and "finite" in lines[1]


def test_validate_without_file_checks_the_overlay_too(berth, berth_home):
    (berth_home / "catalog.yaml").write_text(HOSTILE["alias_clash"][0])
    result = berth("catalog", "validate")
    assert result.exit_code == 2 and "duplicate alias 'gpt2'" in result.stderr


def _run_limited(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """`berth ARGS` in a child limited to 512 MB of address space (the limit is the assertion)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))

    env = {**os.environ, "BERTH_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[1])}
    code = "import sys; from launcher.cli import main; sys.argv = ['berth', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        check=False,
    )


def test_billion_laughs_ends_within_512_mb(berth_home):
    (berth_home / "catalog.yaml").write_text(_laughs("family", levels=10))
    for args in (["list"], ["catalog", "validate", str(berth_home / "catalog.yaml")]):
        done = _run_limited(args, berth_home)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "expands to more than" in " ".join(done.stderr.split())
        assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr


def test_dev_zero_as_catalog_is_refused(berth):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    result = berth("--catalog", "/dev/zero", "list")
    assert result.exit_code == 2
    _one_paragraph(result.stderr)
    assert "larger than 64 MiB" in " ".join(result.stderr.split())
    assert berth("catalog", "validate", "/dev/zero").exit_code == 2


def test_bounded_read_refuses_large_binary_and_missing_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a" * 101)
    with pytest.raises(InputFileError, match="larger than 100 bytes"):
        read_text_capped(big, limit=100)
    assert read_text_capped(big, limit=101) == "a" * 101
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_text_capped(binary)
    with pytest.raises(InputFileError, match="file not found"):
        read_text_capped(tmp_path / "missing.yaml")
    with pytest.raises(InputFileError, match="is a folder"):
        read_text_capped(tmp_path)


def test_unknown_user_in_a_path_is_reported(berth):
    with pytest.raises(UserPathError, match="no user 'nosuchuser"):
        expand_user_path("~nosuchuser_berth/x.yaml")
    with pytest.raises(UserPathError, match="NUL"):
        expand_user_path("a\0b")
    for args in (
        ["catalog", "add", "~nosuchuser_berth/model"],
        ["catalog", "validate", "~nosuchuser_berth/overlay.yaml"],
        ["--catalog", "~nosuchuser_berth/catalog.yaml", "list"],
    ):
        result = berth(*args)
        assert result.exit_code == 2, (args, result.output)
        _one_paragraph(result.stderr)
        assert "no user 'nosuchuser_berth'" in " ".join(result.stderr.split())


def test_unknown_user_in_berth_home_is_reported(berth):
    result = berth("catalog", "validate", env={"BERTH_HOME": "~nosuchuser_berth"})
    assert result.exit_code == 2
    assert "no user 'nosuchuser_berth'" in " ".join(result.stderr.split())


def test_add_with_a_name_too_long_for_the_system(berth):
    result = berth("catalog", "add", "x" * 5000)
    assert result.exit_code == 2
    _one_paragraph(result.stderr)


def test_expanded_size_is_linear_and_bounded():
    assert load_yaml_bounded("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(Exception, match="expands to more than 10 values"):
        load_yaml_bounded("a: &x [1, 2, 3, 4]\nb: [*x, *x]\n", max_nodes=10)
    assert MAX_YAML_NODES > 10 * 3600  # the shipped catalog is about 3,600 values


def test_short_repr_is_bounded_for_any_value():
    nested: object = ["lol"] * 9
    for _ in range(30):  # 9**30 strings, shared
        nested = [nested] * 9
    assert len(short_repr(nested)) <= 80
    assert short_repr(10**5000) == "<an integer of 5,001 digits>"
    assert len(short_repr("x" * 10**7, limit=40)) <= 40


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    ["id", "aliases", "family", "model_type", "params", "architecture", "memory_bytes", "bf16_tflops"]
)
_overlays = st.dictionaries(
    st.sampled_from(["models", "accelerators", "schema_version"]),
    st.lists(
        st.dictionaries(_fields, _values, max_size=4)
        | st.just({"id": "h2oai/h2o-danube-1.8b-chat"})
        | st.builds(lambda v: {"id": "h2oai/h2o-danube-1.8b-chat", "params": v}, _values),
        max_size=3,
    )
    | _values,
    max_size=3,
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_overlays)
def test_random_overlays_raise_only_catalog_errors_and_validate_agrees(tmp_path, document):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(document))
    problems = check_catalog(overlay=overlay)
    try:
        load_catalog(overlay=overlay)
    except CatalogError as err:
        assert problems and str(problems[0]) == str(err)
        assert len(str(err)) < 2000
    else:
        assert not problems
