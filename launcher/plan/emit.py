"""`berth plan --emit python`: the exact transformers code that loads a model the way its plan says (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from launcher.plan.request import Plan
from registry.multimodal import TEXT_WEIGHT_RENAMES, plans_text_of_multimodal
from registry.params import LINEAR_SUBCLASS_FAMILIES
from registry.schema import ModelCard

_TORCH_DTYPE = {"float32": "torch.float32", "bfloat16": "torch.bfloat16", "float16": "torch.float16"}
_LAYER = re.compile(r"^(?P<prefix>.+\.)(?P<index>\d+)$")


def _q(text: str) -> str:
    """A Python string literal in double quotes."""
    return json.dumps(text)


def _device_literal(device: int | str) -> str:
    return str(device) if isinstance(device, int) else _q(device)


def _runs(device_map: dict[str, int | str]) -> Iterator[str]:
    """Dict entries for a device map, with consecutive layers on one device folded into a comprehension."""
    items = list(device_map.items())
    i = 0
    while i < len(items):
        name, device = items[i]
        match = _LAYER.match(name)
        if match is None:
            yield f"    {_q(name)}: {_device_literal(device)},"
            i += 1
            continue
        prefix, first = match["prefix"], int(match["index"])
        last = first
        j = i + 1
        while j < len(items):
            nxt = _LAYER.match(items[j][0])
            if (
                nxt is None
                or nxt["prefix"] != prefix
                or int(nxt["index"]) != last + 1
                or items[j][1] != device
            ):
                break
            last += 1
            j += 1
        if last == first:
            yield f"    {_q(name)}: {_device_literal(device)},"
        else:
            yield f'    **{{f"{prefix}{{i}}": {_device_literal(device)} for i in range({first}, {last + 1})}},'
        i = j


def _bytes_literal(n: int) -> str:
    return f'"{max(n // 2**20, 1)}MiB"'


def python_snippet(card: ModelCard, plan: Plan, source: str | None = None) -> str:
    """Python that loads the model as planned: dtype, device map, offload folder, quantization config (or, for
    a GGUF file planned for llama.cpp, llama-cpp-python's `Llama(...)` with the plan's settings)."""
    if plan.llama_cpp is not None:
        return _llamacpp_snippet(plan, source or card.source or plan.llama_cpp.file_name)
    repo = source or card.id
    auto = "AutoModelForMaskedLM" if card.task == "fill-mask" else "AutoModelForCausalLM"
    precision = plan.precision
    lines = _header(card, plan, auto)
    args = [f"    {_q(repo)},", f"    dtype={_TORCH_DTYPE[precision.dtype]},"]
    device_map = plan.device_map
    if list(device_map) == [""]:
        only = device_map[""]
        target = f"cuda:{only}" if isinstance(only, int) else only
        args.append(f"    device_map={_q(target)},")
    else:
        lines.append("device_map = {")
        lines += list(_runs(device_map))
        lines.append("}")
        lines.append("")
        args.append("    device_map=device_map,")
    if "disk" in set(device_map.values()):
        args.append('    offload_folder="offload",')
    args += _quantization_args(plan)
    if card.remote_code:
        args.append("    trust_remote_code=True,  # read the repository's code first")
    if card.revision:
        args.append(f"    revision={_q(card.revision)},")
    if plans_text_of_multimodal(card):
        lines += _text_config_lines(repo, card.revision)
        args[1:1] = ["    config=text_config,", "    key_mapping=TEXT_WEIGHTS,"]
    lines.append(f"model = {auto}.from_pretrained(")
    lines += args
    lines.append(")")
    lines.append(
        f"tokenizer = AutoTokenizer.from_pretrained({_q(repo)}"
        + (f", revision={_q(card.revision)}" if card.revision else "")
        + ")"
    )
    return "\n".join(lines) + "\n"


def _text_config_lines(repo: str, revision: str | None) -> list[str]:
    """A multimodal repo (Gemma 3, Llama 4): its language model's config and the renaming of its weights, so
    from_pretrained builds only the text model the plan counts and the device map's names match."""
    pinned = f", revision={_q(revision)}" if revision else ""
    renames = ", ".join(f'r"{k}": {_q(v)}' for k, v in TEXT_WEIGHT_RENAMES.items())
    return [
        "# The repo is multimodal: load only its language model, as planned (the vision tower is not read).",
        f"text_config = AutoConfig.from_pretrained({_q(repo)}{pinned}).get_text_config()",
        f"TEXT_WEIGHTS = {{{renames}}}",
        "",
    ]


def _header(card: ModelCard, plan: Plan, auto: str) -> list[str]:
    """The plan as a comment, the imports, and Falcon's nn.Linear swap when it is quantized; a blank line."""
    quant = plan.precision.quant
    lines = [
        f"# {plan.model_id} on {plan.host_label}: {plan.summary}",
        f"# estimated {plan.speed.decode_tokens_per_s:.3g} tokens/s decode ({plan.speed.basis})",
        "import torch",
    ]
    imports = [auto, "AutoTokenizer"]
    if plans_text_of_multimodal(card):
        imports.insert(0, "AutoConfig")
    if quant:
        imports.append("BitsAndBytesConfig")
    lines.append(f"from transformers import {', '.join(imports)}")
    if quant and card.model_type in LINEAR_SUBCLASS_FAMILIES:
        lines += [
            "from torch import nn",
            "from transformers.models.falcon import modeling_falcon",
            "",
            "# bitsandbytes replaces plain nn.Linear only; build Falcon with nn.Linear so it can be quantized.",
            "modeling_falcon.FalconLinear = nn.Linear",
        ]
    lines.append("")
    return lines


def _quantization_args(plan: Plan) -> list[str]:
    """The `quantization_config=BitsAndBytesConfig(...)` argument lines for an int8/4-bit plan; none otherwise."""
    precision = plan.precision
    if precision.quant == "int8":
        extra = ", llm_int8_enable_fp32_cpu_offload=True" if plan.offloaded else ""
        return [f"    quantization_config=BitsAndBytesConfig(load_in_8bit=True{extra}),"]
    if precision.quant in ("nf4", "fp4"):
        return [
            "    quantization_config=BitsAndBytesConfig(",
            "        load_in_4bit=True,",
            f'        bnb_4bit_quant_type="{precision.quant}",',
            f"        bnb_4bit_compute_dtype={_TORCH_DTYPE[precision.dtype]},",
            "        bnb_4bit_use_double_quant=True,",
            "    ),",
        ]
    return []


#: llama_cpp's names of the KV cache types (GGML tensor types).
_KV_GGML = {"f16": "GGML_TYPE_F16", "q8_0": "GGML_TYPE_Q8_0", "q4_0": "GGML_TYPE_Q4_0"}


def _llamacpp_snippet(plan: Plan, path: str) -> str:
    """llama-cpp-python code that runs the GGUF file as planned (what `berth launch` does)."""
    settings = plan.llama_cpp
    assert settings is not None
    kv = f"llama_cpp.{_KV_GGML[settings.kv_cache_type]}"
    lines = [
        f"# {plan.model_id} on {plan.host_label}: {plan.summary}",
        f"# estimated {plan.speed.decode_tokens_per_s:.3g} tokens/s decode ({plan.speed.basis})",
        "import llama_cpp",
        "",
        "llm = llama_cpp.Llama(",
        f"    model_path={_q(path)},",
        f"    n_gpu_layers={settings.n_gpu_layers},",
    ]
    if settings.n_gpu_layers:
        lines.append(f"    main_gpu={settings.main_gpu},")
    lines += [
        f"    n_ctx={plan.context},",
        f"    n_threads={settings.n_threads},",
        f"    n_threads_batch={settings.n_threads},",
        f"    type_k={kv},",
        f"    type_v={kv},",
        f"    flash_attn={settings.flash_attn},",
        ")",
    ]
    return "\n".join(lines) + "\n"
