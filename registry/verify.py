"""Build a catalog entry's real transformers model on the meta device and read its true figures (imports torch)."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Any

from registry.hf_config import config_kwargs
from registry.schema import ModelCard


@dataclass(frozen=True)
class MetaCounts:
    """What transformers really builds for a card."""

    total: int
    """Parameters, tied weights once."""
    quantizable_linear: int
    """Weights of nn.Linear / Conv1D modules that bitsandbytes would replace."""
    module_params: dict[str, int]
    """Parameters per top-level block, keyed by module path (tied weights under their first owner)."""


def build_config(card: ModelCard) -> Any:
    """The transformers PretrainedConfig for a card."""
    from transformers import AutoConfig

    with quiet_transformers():
        return AutoConfig.for_model(card.model_type, **config_kwargs(card))


def build_meta_model(card: ModelCard) -> Any:
    """The real transformers model class for the card's task, with every tensor on the meta device."""
    return meta_model(build_config(card), masked=card.task == "fill-mask")


def meta_model(config: Any, masked: bool, trust_remote_code: bool = False) -> Any:
    """transformers' masked-LM or causal-LM class built from a PretrainedConfig, every tensor on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForMaskedLM if masked else AutoModelForCausalLM
    with quiet_transformers(), torch.device("meta"):
        return auto.from_config(config, trust_remote_code=trust_remote_code)


def meta_counts(card: ModelCard, block_names: list[str] | None = None) -> MetaCounts:
    """Count the meta model's parameters the way Berth's analytic layout splits them."""
    model = build_meta_model(card)
    total = _count_once(model.parameters(), set())  # parameters() yields a tied tensor once
    per_block: dict[str, int] = {}
    if block_names:
        owned: set[int] = set()
        for block in block_names:
            try:
                module = model.get_submodule(block)
            except AttributeError:
                per_block[block] = 0
                continue
            per_block[block] = _count_once(module.parameters(), owned)
    return MetaCounts(total=total, quantizable_linear=_quantizable_weights(model), module_params=per_block)


def _count_once(params: Any, seen: set[int]) -> int:
    """Elements of the parameters not in `seen` (by identity), adding them to it."""
    count = 0
    for param in params:
        if id(param) not in seen:
            seen.add(id(param))
            count += param.numel()
    return count


def _quantizable_weights(model: Any) -> int:
    """Elements of the nn.Linear / Conv1D weights bitsandbytes would replace (the output head is kept)."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    skip = {name for name, mod in model.named_modules() if mod is model.get_output_embeddings()}
    quantizable = 0
    for name, module in model.named_modules():
        if name in skip:
            continue
        if (type(module) is nn.Linear or isinstance(module, Conv1D) or _is_linear_subclass(module)) and (
            module.weight.data_ptr() is not None
        ):
            quantizable += module.weight.numel()
    return quantizable


def _is_linear_subclass(module: Any) -> bool:
    """Falcon's FalconLinear: Berth's loader swaps it for nn.Linear so bitsandbytes quantizes it."""
    from torch import nn

    return isinstance(module, nn.Linear) and type(module).__name__ == "FalconLinear"


@contextlib.contextmanager
def quiet_transformers() -> Any:
    """Silence transformers' config warnings about token ids while building throwaway configs."""
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
