"""Safe YAML loading with a bound on the document's expanded size, so aliases cannot multiply it (billion laughs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Most values (mappings, lists and scalars, each alias counted again in full) one document may expand to.
#: The shipped catalog is about 5,000; a hostile document of a few hundred bytes can reach billions.
MAX_YAML_NODES = 2_000_000


#: Where a YAML alias (`*name`) could stand: a `*` and a name character after the start of a line, a space or
#: a flow/key/entry indicator. A `*` inside text ("h*h") does not match; a false match only costs the walk.
_MAYBE_ALIAS = re.compile(r"(?:^|[\s\[\]{},:])\*\S", re.MULTILINE)


class YamlTooLargeError(yaml.MarkedYAMLError):
    """A document whose values, with every alias expanded, number more than the limit (or repeat themselves)."""


def load_yaml_bounded(text: str, max_nodes: int = MAX_YAML_NODES) -> Any:
    """The document in `text` through the safe loader (libyaml's where PyYAML has it); YamlTooLargeError, a
    yaml.YAMLError with the line of the offending node, when it expands to more than `max_nodes` values."""
    return load_yaml_bounded_with_node(text, max_nodes)[0]


def load_yaml_bounded_with_node(text: str, max_nodes: int = MAX_YAML_NODES) -> tuple[Any, yaml.Node | None]:
    """`load_yaml_bounded`, also returning the composed root node (for line numbers without composing again).

    Only a document with an alias can expand beyond what it spells out; one without (no `*` anywhere in the
    text where an alias could stand) holds at most one value per character, which the input file cap already
    bounds, so the walk that counts expanded values is skipped for it (most of the load time of a large
    catalog otherwise)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _MAYBE_ALIAS.search(text):
            check_expanded_size(node, max_nodes)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def check_expanded_size(root: yaml.Node, max_nodes: int = MAX_YAML_NODES) -> int:
    """The number of values the node stands for once every alias is expanded, computed in time linear in the
    document (each node once); YamlTooLargeError past `max_nodes` or for an alias inside itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > max_nodes:
                raise _too_large(node, f"the document expands to more than {max_nodes:,} values")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _too_large(node, "an alias refers to the value that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _too_large(node: yaml.Node, problem: str) -> YamlTooLargeError:
    return YamlTooLargeError(
        problem=f"{problem} (YAML aliases repeat values; write them out or remove them)",
        problem_mark=node.start_mark,
    )
