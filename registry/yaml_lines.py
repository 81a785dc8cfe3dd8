"""Line numbers of the nodes of a YAML document, so errors can say file:line for a field (imports PyYAML and
registry.fast_yaml)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from registry.fast_yaml import Lines as FastLines
from registry.fast_yaml import Unsupported as FastUnsupported

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLines:
    """Line numbers of the nodes of a YAML document, by path of keys and list indexes."""

    def __init__(self, text: str | None, root: yaml.Node | None = None) -> None:
        """Compose `text`, or use the already composed `root` when text is None. Text that registry.fast_yaml
        reads is not composed: its reader gives the same lines, several times faster."""
        self._root: yaml.Node | None = root
        self._fast: FastLines | None = None
        if text is not None:
            try:
                self._fast = FastLines(text)
                return
            except (FastUnsupported, RecursionError):
                pass
            try:
                self._root = yaml.compose(text, Loader=_Loader)
            except yaml.YAMLError:
                self._root = None

    def line(self, loc: Sequence[Any]) -> int | None:
        """1-based line of the deepest node found along `loc` (the key's line for mapping entries)."""
        if self._fast is not None:
            return self._fast.line(loc)
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = None
                for key, value in node.value:
                    if key.value == str(part):
                        found, line = value, key.start_mark.line + 1
                        break
                if found is None:
                    break
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line
