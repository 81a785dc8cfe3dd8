"""Load only the language model of a multimodal repo (Gemma 3, Llama 4), as its plan counts it. Imports
transformers and registry.

from_pretrained on such a folder builds Gemma3ForConditionalGeneration / Llama4ForConditionalGeneration: the
vision tower and projector too (0.84-1.74 GB the plan does not count), under module names
(`model.language_model.layers.N`) that a planned device map (`model.layers.N`) does not match. Berth's chat is
text only, so it builds the text model (Gemma3ForCausalLM / Llama4ForCausalLM) from the repo's `text_config` and
renames the checkpoint's language-model keys to that model's names; the vision weights are never read into it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from launcher.run.source import ModelSource
from registry.multimodal import STORED_EXTRA_PATTERNS, TEXT_MODEL_TYPES, TEXT_WEIGHT_RENAMES, is_multimodal
from registry.schema import ModelCard


def text_only_arguments(folder: Path, card: ModelCard, trust_remote_code: bool = False) -> dict[str, Any]:
    """from_pretrained's extra arguments (`config` = the text model's config, `key_mapping`) when `folder`
    holds a multimodal repo whose language model `card` plans; empty for any other folder."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # from_pretrained reports a broken config in its own words
    if not isinstance(raw, dict) or not is_multimodal(raw):
        return {}
    if TEXT_MODEL_TYPES[raw["model_type"]] != card.model_type:
        return {}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code).get_text_config()
    return {"config": config, "key_mapping": dict(TEXT_WEIGHT_RENAMES)}


@contextlib.contextmanager
def text_only(source: ModelSource, folder: Path, trust_remote_code: bool = False) -> Iterator[dict[str, Any]]:
    """Within: from_pretrained's extra arguments for `source`'s files in `folder` (empty unless it is a
    multimodal repo planned as its text model), with the vision tower's keys not reported as unexpected."""
    arguments = {} if source.kind == "gguf" else text_only_arguments(folder, source.card, trust_remote_code)
    if not arguments:
        yield arguments
        return
    from transformers import AutoModelForCausalLM

    model_class: Any = AutoModelForCausalLM._model_mapping[type(arguments["config"])]
    before = model_class.__dict__.get("_keys_to_ignore_on_load_unexpected", _UNSET)
    model_class._keys_to_ignore_on_load_unexpected = [
        *(model_class._keys_to_ignore_on_load_unexpected or ()),
        *STORED_EXTRA_PATTERNS,
    ]
    try:
        yield arguments
    finally:
        if before is _UNSET:
            del model_class._keys_to_ignore_on_load_unexpected
        else:
            model_class._keys_to_ignore_on_load_unexpected = before


_UNSET = object()
