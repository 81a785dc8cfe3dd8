"""llama.cpp on an Apple silicon GPU (Metal): decode speed from the chip's bandwidth (pure; imports plan.speed).

Decode reads every weight once per token at a share of the chip's bandwidth, plus a fixed time per layer
(kernel launches and synchronisation, not overlapped with the reads on Metal). Both constants were fitted to the
29 text-generation figures of ggml-org/llama.cpp discussion #4167 (M1 to M4 Max and M2 Ultra, LLaMA-2 7B at
F16, Q8_0 and Q4_0; registry/corpus/apple.yaml): every estimate lands within 8% of its measurement, median 4%
(tests/test_apple_corpus.py). Batch 1 and short contexts: the KV cache is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.plan.speed import read_seconds


@dataclass(frozen=True)
class MetalProfile:
    """What llama.cpp reaches on an Apple GPU at batch 1."""

    engine: str
    decode: float
    """Share of the chip's peak memory bandwidth reached streaming the weights."""
    layer_overhead_s: float
    """Time per decoder layer per token on top of the reads."""


LLAMACPP_METAL = MetalProfile(engine="llama.cpp, Metal, batch 1", decode=0.89, layer_overhead_s=0.00016)


def metal_decode_tokens_per_s(
    weight_bytes: int, layers: int, bandwidth_bytes_per_s: int, profile: MetalProfile = LLAMACPP_METAL
) -> float:
    """Tokens per second generating one sequence: weights read once per token, plus the per-layer time."""
    seconds = (
        read_seconds(weight_bytes, bandwidth_bytes_per_s, profile.decode) + layers * profile.layer_overhead_s
    )
    return 1.0 / seconds
