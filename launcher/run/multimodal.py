"""Load only the language model of a multimodal repo (Gemma 3, Llama 4), as its plan counts it. Imports
transformers and registry.

from_pretrained on such a folder builds Gemma3ForConditionalGeneration / Llama4ForConditionalGeneration: the
vision tower and projector too (0.84-1.74 GB the plan does not count), under module names
(`model.language_model.layers.N`) that a planned device map (`model.layers.N`) does not match. Berth's chat is
text only, so it builds the text model (Gemma3ForCausalLM / Llama4ForCausalLM) from the repo's `text_config` and
renames the checkpoint's language-model keys to that model's names; the vision weights are never read into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from registry.multimodal import TEXT_MODEL_TYPES, TEXT_WEIGHT_RENAMES, is_multimodal
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
