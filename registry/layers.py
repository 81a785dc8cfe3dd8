"""Layer patterns: how each layer attends (full, sliding window, chunked, linear) and what its cache keeps.

Pure; imports registry.schema only. registry.memory sizes caches with these functions."""

from __future__ import annotations

from typing import Literal

from registry.schema import Architecture

LayerKind = Literal["full", "sliding", "chunked", "linear"]

#: transformers keeps a linear-attention layer's recurrent state in float32 whatever the model's dtype (its
#: convolution state is in the model's dtype): measured on a bfloat16 Qwen3-Next (tests/test_layers.py).
RECURRENT_STATE_BYTES = 4


def layer_kind(arch: Architecture, layer: int) -> LayerKind:
    """How layer `layer` (0-based) attends: every Nth (1-based) of a hybrid is full attention and the rest are
    linear; with a window or chunk, every `global_attention_every`th attends globally and the rest slide or
    are chunked; otherwise full attention."""
    if arch.full_attention_interval:
        return "full" if (layer + 1) % arch.full_attention_interval == 0 else "linear"
    local: LayerKind | None = (
        "sliding" if arch.sliding_window is not None else "chunked" if arch.attention_chunk_size else None
    )
    if local is None:
        return "full"
    every = arch.global_attention_every
    return "full" if every is not None and (layer + 1) % every == 0 else local


def kept_tokens(arch: Architecture, layer: int, tokens: int, trim: int = 0) -> int:
    """Tokens one layer keeps in its KV cache for a sequence of `tokens`: a sliding layer at most its window
    less `trim` (transformers keeps window - 1), a chunked layer at most one chunk, a linear layer none (it
    keeps a fixed state instead)."""
    kind = layer_kind(arch, layer)
    if kind == "sliding":
        assert arch.sliding_window is not None
        return min(tokens, arch.sliding_window - trim)
    if kind == "chunked":
        assert arch.attention_chunk_size is not None
        return min(tokens, arch.attention_chunk_size)
    if kind == "linear":
        return 0
    return tokens


def recurrent_state_bytes(arch: Architecture, width: int) -> int:
    """Bytes one sequence's state takes in one linear-attention layer, whatever its length: the float32
    recurrent matrix per value head (key width x value width) and, in the model's dtype (`width` bytes), the
    convolution's last `linear_conv_kernel_dim` inputs over the mixed q/k/v channels."""
    if not arch.full_attention_interval:
        return 0
    assert arch.linear_num_key_heads and arch.linear_num_value_heads and arch.linear_key_head_dim
    assert arch.linear_value_head_dim and arch.linear_conv_kernel_dim
    key_dim = arch.linear_num_key_heads * arch.linear_key_head_dim
    value_dim = arch.linear_num_value_heads * arch.linear_value_head_dim
    matrix = arch.linear_num_value_heads * arch.linear_key_head_dim * arch.linear_value_head_dim
    conv = (2 * key_dim + value_dim) * arch.linear_conv_kernel_dim
    return matrix * RECURRENT_STATE_BYTES + conv * width


def attention_layers(arch: Architecture) -> int:
    """Layers that keep a KV cache (all but the linear-attention layers of a hybrid)."""
    return sum(1 for layer in range(arch.num_layers) if layer_kind(arch, layer) != "linear")
