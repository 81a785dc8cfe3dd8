"""Count an architecture Berth has no layout rules for by building it with transformers on the meta device
(no memory, no weights): its block tree and exact parameter counts become the entry's measured layout.
The only Hub module that imports torch and transformers, and only inside `measured_card`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.errors import short_text
from registry.hf_config import architecture_fields, context_length_of
from registry.hub_errors import HubModelError
from registry.importer import ConfigOrigin, TensorInfo, config_card
from registry.schema import MeasuredBlock, MeasuredLayout, ModelCard
from registry.verify import meta_model, quiet_transformers

#: Architecture fields every entry needs, and the transformers config attribute that holds each.
_REQUIRED = {
    "num_layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "vocab_size": "vocab_size",
}


def measured_card(
    config: dict[str, Any],
    tensors: dict[str, TensorInfo],
    origin: ConfigOrigin,
    code_folder: Path | None = None,
) -> ModelCard:
    """An entry whose parameter layout comes from transformers' meta-device build of `config` (with the
    repository's own code from `code_folder` when it was trusted)."""
    hf_config = _hf_config(config, origin, code_folder)
    model = _meta_model(hf_config, config, origin, trusted=code_folder is not None)
    measured = _measured_layout(model, _routed_share(hf_config))
    model_type = str(config["model_type"])
    fields = architecture_fields(model_type, config)
    for field, attribute in _REQUIRED.items():
        value = getattr(hf_config, attribute, None)
        if field not in fields and isinstance(value, int):
            fields[field] = value
    fields["tie_word_embeddings"] = any(b.tied_to for b in measured.blocks)
    context = context_length_of(model_type, config) or getattr(hf_config, "max_position_embeddings", None)
    if not isinstance(context, int):
        raise HubModelError(origin.model_id, f"{origin.where}: config.json gives no context length", "")
    return config_card(
        config,
        tensors,
        origin,
        model_type,
        fields,
        context,
        remote_code=code_folder is not None,
        measured_layout=measured,
    )


def _hf_config(config: dict[str, Any], origin: ConfigOrigin, code_folder: Path | None) -> Any:
    from transformers import AutoConfig

    try:
        with quiet_transformers():
            if code_folder is not None:
                return AutoConfig.from_pretrained(code_folder, trust_remote_code=True)
            kwargs = {k: v for k, v in config.items() if k != "model_type"}
            return AutoConfig.for_model(str(config["model_type"]), **kwargs)
    except Exception as error:  # transformers raises ValueError, KeyError, ImportError … for unknown types
        import transformers

        raise HubModelError(
            origin.model_id,
            f"{origin.where}: transformers {transformers.__version__} cannot build model_type "
            f"'{short_text(str(config.get('model_type')), 60)}' ({short_text(str(error), 160)})",
            "Nothing was cached. A newer transformers may know it (pip install -U transformers)",
        ) from None


def _meta_model(hf_config: Any, config: dict[str, Any], origin: ConfigOrigin, trusted: bool) -> Any:
    masked = any("MaskedLM" in str(a) for a in config.get("architectures") or [])
    try:
        return meta_model(hf_config, masked, trust_remote_code=trusted)
    except Exception as error:  # an architecture transformers has no class for, or code that fails
        raise HubModelError(
            origin.model_id,
            f"{origin.where}: transformers cannot build this model on the meta device ({short_text(str(error), 160)})",
            "Nothing was cached",
        ) from None


def _routed_share(hf_config: Any) -> float | None:
    """experts_per_token / routed experts for a mixture of experts (what share of expert weights a token uses)."""
    used = getattr(hf_config, "num_experts_per_tok", None)
    for name in ("num_experts", "num_local_experts", "n_routed_experts"):
        experts = getattr(hf_config, name, None)
        if isinstance(used, int) and isinstance(experts, int) and 0 < used <= experts:
            return used / experts
    return None


def _measured_layout(model: Any, routed_share: float | None = None) -> MeasuredLayout:
    """Blocks as accelerate places them: the embedding, each no-split layer, leftovers, the output head."""
    import transformers

    no_split = list(getattr(model, "_no_split_modules", None) or [])
    layer_names = [
        name
        for name, module in model.named_modules()
        if type(module).__name__ in no_split and name and not any(name.startswith(p + ".") for p in no_split)
    ]
    layer_names = [n for n in layer_names if not any(n.startswith(other + ".") for other in layer_names)]
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    names = {id(m): n for n, m in model.named_modules()}
    embed_name = names.get(id(embed), "")
    head_name = names.get(id(head), "") if head is not None else ""
    tied = head is not None and head.weight is embed.weight
    owners = [embed_name, *layer_names, *([head_name] if head_name else [])]
    blocks: list[MeasuredBlock] = []
    seen: set[int] = set()
    before, after = _leftovers(model, owners)
    for name in [embed_name, *before]:
        blocks.append(_block(model, name, "embedding", seen))
    blocks += [_block(model, name, "layer", seen, routed_share=routed_share) for name in layer_names]
    blocks += [_block(model, name, "norm", seen) for name in after]
    if head_name:
        blocks.append(_block(model, head_name, "head", seen, tied_to=embed_name if tied else None))
    return MeasuredLayout(
        no_split_class=no_split[0] if no_split else "",
        blocks=blocks,
        source=f"transformers {transformers.__version__} {type(model).__name__} built on the meta device",
    )


def _leftovers(model: Any, owners: list[str]) -> tuple[list[str], list[str]]:
    """Parent modules of parameters no block owns, split into those before the first layer and after."""
    before: list[str] = []
    after: list[str] = []
    seen_layer = False
    for name, _param in model.named_parameters():
        owner = next((o for o in owners if o and (name == o or name.startswith(o + "."))), None)
        if owner is not None:
            seen_layer = seen_layer or owner not in (owners[0], owners[-1])
            continue
        parent = name.rsplit(".", 1)[0]
        target = after if seen_layer else before
        if parent not in before and parent not in after:
            target.append(parent)
    return before, after


def _block(
    model: Any,
    name: str,
    role: str,
    seen: set[int],
    tied_to: str | None = None,
    routed_share: float | None = None,
) -> MeasuredBlock:
    """One block's counts; with `routed_share`, a token uses only that share of the routed experts' weights."""
    from torch import nn

    module = model.get_submodule(name)
    total = routed = 0
    for param_name, param in module.named_parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
            if ".experts." in f".{param_name}" and "shared" not in param_name:
                routed += param.numel()
    active = total if routed_share is None else total - routed + round(routed * routed_share)
    linear = rows = 0
    if role != "head":
        for sub in module.modules():
            if type(sub) is nn.Linear or type(sub).__name__ == "Conv1D":
                linear += sub.weight.numel()
                rows += sub.weight.shape[0]
    linear = min(linear, total)
    return MeasuredBlock(
        name=name,
        role=role,
        linear=linear,
        linear_rows=rows,
        other=total - linear,
        active=active,
        tied_to=tied_to,
    )
