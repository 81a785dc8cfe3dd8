"""registry.fast_yaml reads catalog files exactly as yaml.safe_load does, or declines (Unsupported) so that
PyYAML reads them: on the shipped catalog, on catalogs yaml.safe_dump writes, on tricky documents, and on
thousands of randomly mutated documents, whatever it returns equals PyYAML's result, value and type."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import fast_yaml
from registry.catalog import default_catalog_path

_PYYAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _typed(value: Any) -> Any:
    """The value with every type spelt out (True, 1 and 1.0 compare equal in Python; here they do not)."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def _agrees(text: str) -> bool:
    """fast_yaml gives PyYAML's result or declines; True when it read the text itself."""
    try:
        fast = fast_yaml.load(text)
    except fast_yaml.Unsupported:
        return False
    slow = yaml.load(text, Loader=_PYYAML)  # must not raise: fast_yaml read something PyYAML would refuse
    assert _typed(fast) == _typed(slow), text
    return True


def _shipped_text() -> str:
    return Path(default_catalog_path()).read_text(encoding="utf-8")


def test_the_shipped_catalog_is_read_exactly():
    assert _agrees(_shipped_text())


@pytest.mark.parametrize("width", [80, 40, 200])
def test_catalogs_written_by_safe_dump_are_read_exactly(width):
    data = yaml.load(_shipped_text(), Loader=_PYYAML)
    for entry in data["models"][::3]:
        entry["id"] = f"copy/{entry['id'].split('/')[1]}"
    assert _agrees(yaml.safe_dump(data, sort_keys=False, width=width))
    _agrees(
        yaml.safe_dump(data, sort_keys=True, width=width, default_flow_style=None)
    )  # may wrap [...]: declined


TRICKY = [
    "a: yes\nb: No\nc: on\nd: OFF\ne: ~\nf: null\ng: Null\n",
    "a: 0x1F\nb: 0o17\nc: 017\nd: 1_000\ne: 1:30\nf: +5\ng: -0\nh: 0b101\n",
    "a: .5\nb: 1e3\nc: 1.0e+3\nd: .inf\ne: -.Inf\nf: .NaN\ng: 6.8523015e+5\nh: 1_0.5\n",
    "a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00\n",
    "a: '1'\nb: \"true\"\nc: 'it''s'\nd: \"tab\\there \\u00e9 \\x41 \\\\ \\\"q\\\"\"\n",
    "a: [1, '2', \"3\", yes, x y, -1]\nb: []\nc: {}\nd: {k: 1, j: two}\n",
    "a: plain # comment\nb: 'quoted' # comment\n# full comment\n\nc: 3\n",
    "a:\n- 1\n- - 2\n",
    "a:\n  - x\n  -\n    k: v\n  - k: v\n    j: w\n",
    "a: one\n  two\n  three\nb: 'one\n  two'\nc: \"one\n  two\\\n  three\"\n",
    "a: one\n\n  two\n",
    "a: one\n  # c\n  two\n",
    "a: &x 1\nb: *x\n",
    "<<: {a: 1}\n",
    "a: !!str 1\n",
    "a: |\n  block\n",
    "a: >\n  folded\n",
    "a: b: c\n",
    "a: 'unclosed\n",
    'a: "unclosed\n',
    "a: [1, 2\n",
    "a: [1, 2,]\n",
    "a: {x: 1\n",
    "a: 1\n a: 2\n",
    "a: 1\n  b: 2\n",
    " a: 1\nb: 2\n",
    "a: 1\na: 2\n",
    "1: one\n",
    "true: 1\n",
    "- a\n- b\n",
    "-\n  a: 1\n",
    "a:\n\tb: 1\n",
    "a: 1\r\nb: 2\r\n",
    "---\na: 1\n",
    "a: 1\n...\n",
    "%YAML 1.1\n---\na: 1\n",
    "a: -\n",
    "a: - b\n",
    "a: ? b\n",
    "a: x:y\n",
    "a: x #y\n",
    "a: x# y\n",
    "a: '#not a comment'\n",
    "a: [a:b]\n",
    "a: {k: v: w}\n",
    "a: =\n",
    "a: <<\n",
    "\ufeffa: 1\n",
    "a: \x85b\n",
    "a: b\u2028c\n",
    "",
    "\n\n",
    "# only a comment\n",
    "a\n",
    "[1, 2]\n",
    "a: 'x'y\n",
    'a: "x"y\n',
    "a: 'x'\n  b\n",
    "a: [x]\n  b\n",
    "models:\n- id: x\n  aliases: []\n  architecture:\n    num_layers: 2\n- id: y\n",
    'a: "\\U0010FFFF \\UFFFFFFFF"\n',
    'a: "\\q"\n',
    "a: 'é ü ✓'\nb: 日本\n",
    'a: "one\\   \n  two"\n',  # an escaped space before the line break: kept, then folded
    "a: 'one   \n  two'\n",
    f"{'k' * 1000}: 1\n",
    f"{'k' * 1100}: 1\n",  # PyYAML takes at most 1,024 characters as a key written like this
    f"a: {{{'k' * 1100}: 1}}\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_documents_agree_or_are_declined(text):
    try:
        yaml.load(text, Loader=_PYYAML)
    except yaml.YAMLError:
        with pytest.raises(fast_yaml.Unsupported):
            fast_yaml.load(text)
        return
    _agrees(text)


def test_most_tricky_documents_are_read_not_declined():
    """The subset is not empty: the plain, quoted, flow and nested cases above are read by fast_yaml itself."""
    read = 0
    for text in TRICKY:
        try:
            yaml.load(text, Loader=_PYYAML)
        except yaml.YAMLError:
            continue
        read += _agrees(text)
    assert read >= 12


_MUTATIONS = [
    "'",
    '"',
    "#",
    ":",
    ": ",
    "-",
    "- ",
    "[",
    "]",
    "{",
    "}",
    " ",
    "  ",
    "\n",
    "\n\n",
    "&a",
    "*a",
    "|",
    ">",
    ",",
    "\\",
    "\t",
    "!",
    "?",
    "%",
    "@",
    "0",
    "yes",
    "...",
]


def test_mutated_catalogs_agree_or_are_declined():
    """Random edits to a safe_dump'ed catalog (characters YAML gives meaning to, put anywhere, lines dropped or
    doubled): fast_yaml never returns something PyYAML would not, nor anything different."""
    data = yaml.load(_shipped_text(), Loader=_PYYAML)
    base = yaml.safe_dump({"models": data["models"][:6], "accelerators": data["accelerators"][:2]}, width=60)
    rng = random.Random(13)
    read = declined = 0
    for _ in range(3000):
        text = base
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            kind = rng.random()
            if kind < 0.6:
                text = text[:at] + rng.choice(_MUTATIONS) + text[at:]
            elif kind < 0.8:
                text = text[:at] + text[at + rng.randint(1, 4) :]
            else:
                lines = text.split("\n")
                n = rng.randrange(len(lines))
                lines.insert(n, lines[n]) if rng.random() < 0.5 else lines.pop(n)
                text = "\n".join(lines)
        try:
            slow = yaml.load(text, Loader=_PYYAML)
        except yaml.YAMLError:
            with pytest.raises(fast_yaml.Unsupported):
                fast_yaml.load(text)
            declined += 1
            continue
        try:
            fast = fast_yaml.load(text)
        except fast_yaml.Unsupported:
            declined += 1
            continue
        assert _typed(fast) == _typed(slow), text
        read += 1
    assert read > 500 and declined > 500  # both sides of the property were exercised


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "yes",
            "No",
            "~",
            "1_000",
            "0x1F",
            "1:30",
            "2001-12-14",
            ".5",
            "-",
            "- a",
            "a: b",
            "#x",
            "x #y",
            "'",
            '"',
            "",
        ]
    ),
)
_keys = st.text(alphabet="abcxyz_019.-/", min_size=1, max_size=8)
_documents = st.recursive(
    st.dictionaries(_keys, _scalars, max_size=4),
    lambda children: st.one_of(
        st.dictionaries(_keys, st.one_of(children, _scalars, st.lists(_scalars, max_size=3)), max_size=4),
        st.lists(children, max_size=3),
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_documents, st.sampled_from([20, 60, 80, 1000]), st.booleans())
def test_generated_documents_agree_or_are_declined(document, width, flow):
    text = yaml.safe_dump(
        document, width=width, default_flow_style=None if flow else False, allow_unicode=flow
    )
    _agrees(text)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path of keys and indexes in the value, and a missing key or index below each container."""
    found = [prefix]
    if isinstance(value, dict):
        found.append((*prefix, "no-such-key"))
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        found += [(*prefix, len(value)), *([(*prefix, -1)] if value else [])]
        for n, item in enumerate(value):
            found += _paths(item, (*prefix, n))
    return found


def _documents_with_lines() -> list[str]:
    from registry.catalog import default_catalog_path as shipped

    folder = Path(__file__).parent / "broken_catalogs"
    texts = [Path(shipped()).read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))]
    data = yaml.load(texts[0], Loader=_PYYAML)
    texts.append(yaml.safe_dump({"models": data["models"][:20]}, width=50))
    texts += [t for t in TRICKY if t]
    return texts


def test_line_numbers_from_the_fast_reader_are_pyyaml_nodes_lines():
    """registry.yaml_lines.YamlLines answers from fast_yaml where it reads the text: the same line for every
    path (and for paths that go missing part way) as from PyYAML's composed nodes."""
    from registry.yaml_lines import YamlLines

    checked = 0
    for text in _documents_with_lines():
        try:
            fast = fast_yaml.Lines(text)
            root = yaml.compose(text, Loader=_PYYAML)
        except (fast_yaml.Unsupported, yaml.YAMLError):
            continue
        composed = YamlLines(None, root)
        for path in _paths(yaml.load(text, Loader=_PYYAML)):
            assert fast.line(path) == composed.line(path), (path, text[:200])
            checked += 1
        assert YamlLines(text)._fast is not None  # YamlLines itself takes the fast reader's lines
    assert checked > 5000


def test_a_value_pyyaml_cannot_construct_is_declined_not_raised():
    """An int past Python's 4,300-digit conversion limit: PyYAML raises ValueError constructing it, so the
    reader declines the document (the caller reads it with PyYAML and reports that error as it always did)."""
    text = "ram: " + "9" * 5000 + "\n"
    with pytest.raises(ValueError):
        yaml.safe_load(text)
    with pytest.raises(fast_yaml.Unsupported):
        fast_yaml.load(text)
    with pytest.raises(fast_yaml.Unsupported):
        fast_yaml.Lines(text)
