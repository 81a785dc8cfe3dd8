"""A Hub config.json Berth plans through another family's layout rules (pure; imports registry.importer,
registry.params, registry.multimodal and registry.errors only).

Multimodal repositories (Gemma 3, Llama 4, Mistral 3) publish a wrapper config whose `text_config` is a
language model Berth has rules for; Berth plans that language model, as the catalog's google/gemma-3-*-it and
meta-llama/Llama-4-* entries do, and counts the vision tower and projector from the safetensors headers as
values stored beside it. Kimi K2 says model_type kimi_k2 with an auto_map to its own code, but that code is
DeepSeek-V3's (architectures DeepseekV3ForCausalLM), so Berth plans it with the deepseek_v3 rules and keeps
`remote_code` set: running it still needs --trust-remote-code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry import multimodal
from registry.errors import short_text
from registry.importer import TensorInfo
from registry.params import FAMILIES

#: Names of the other parts, by the first of these words a tensor name contains.
_PARTS = (
    ("multi_modal_projector", "multimodal projector"),
    ("projector", "multimodal projector"),
    ("vision", "vision tower"),
    ("visual", "vision tower"),
    ("audio", "audio tower"),
)
#: model_type -> (the family whose rules describe it, the architectures class that shows it is that family).
TWINS: dict[str, tuple[str, str]] = {"kimi_k2": ("deepseek_v3", "DeepseekV3ForCausalLM")}


@dataclass(frozen=True)
class TextView:
    """What Berth plans of a repository: the language model's config and tensors, the values stored beside them
    by part, and sentences saying so."""

    config: dict[str, Any]
    tensors: dict[str, TensorInfo]
    extras: dict[str, int]
    """Values of the other parts ('vision tower', 'multimodal projector' …) from the safetensors headers."""
    summary: str
    """How Berth reads the repository, in one sentence (shown by show and plan)."""
    extras_note: str
    """What the other parts add (the entry's stored_extra_note); empty when there are none."""
    twin_of: str | None = None
    """The model_type config.json declared, when Berth plans it as another family (Kimi K2 as DeepSeek-V3)."""

    @property
    def extra_values(self) -> int:
        """All values stored beside the language model."""
        return sum(self.extras.values())


def text_view(config: dict[str, Any], tensors: dict[str, TensorInfo]) -> TextView | None:
    """The language model of a multimodal wrapper config, or a twin family's view; None for any other config."""
    twin = _twin_view(config, tensors)
    if twin is not None:
        return twin
    text = config.get("text_config")
    wrapper = config.get("model_type")
    if not isinstance(text, dict) or not isinstance(wrapper, str):
        return None
    model_type = text.get("model_type") or multimodal.TEXT_MODEL_TYPES.get(wrapper)
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        return None
    merged = multimodal.merged_text_config(config, model_type)
    text_tensors = {n: t for n, t in tensors.items() if multimodal.is_text_weight(n)}
    if tensors and not text_tensors:
        return None  # weights named in a way Berth cannot split: counted whole on the meta device instead
    extras: dict[str, int] = {}
    for name, info in tensors.items():
        if name not in text_tensors:
            part = next((label for word, label in _PARTS if word in name), "other stored values")
            extras[part] = extras.get(part, 0) + info.numel
    summary = (
        f"Multimodal repository (model_type {short_text(wrapper, 40)}): Berth plans its language model "
        f"({model_type}) with that family's layout rules"
    )
    if extras:
        names = " and ".join(sorted(extras, key=lambda part: -extras[part]))
        summary += f"; the {names} stored beside it ({sum(extras.values()):,} values) are not in the plan"
    summary += "."
    return TextView(merged, text_tensors, extras, summary, _multimodal_note(extras) if extras else "")


def _multimodal_note(extras: dict[str, int]) -> str:
    """What loading the whole repository adds to the language model, part by part (largest first)."""
    total = sum(extras.values())
    parts = " and ".join(f"the {label} ({n:,})" for label, n in sorted(extras.items(), key=lambda p: -p[1]))
    return (
        f"The repository is multimodal: {parts} are stored beside the language model Berth plans; loading the "
        f"whole model adds these {total:,} values."
    )


def _twin_view(config: dict[str, Any], tensors: dict[str, TensorInfo]) -> TextView | None:
    """A config whose own model_type Berth has no rules for but whose architecture class is a family it has."""
    declared = config.get("model_type")
    twin = TWINS.get(declared) if isinstance(declared, str) else None
    architectures = config.get("architectures")
    if twin is None or not isinstance(architectures, list) or twin[1] not in architectures:
        return None
    family, cls = twin
    note = (
        f"config.json says model_type {declared}, but its model class is {cls}: Berth plans it with the "
        f"{family} layout rules; running it loads the repository's own code (--trust-remote-code)."
    )
    return TextView({**config, "model_type": family}, tensors, {}, note, "", twin_of=str(declared))
