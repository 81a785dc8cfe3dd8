"""Pydantic models of fleet.yaml: the machines, the network between them, vLLM settings and the workload.

Sizes take '80GB', '2TiB' or plain bytes, as in catalog.yaml. Every field is documented here; unknown keys
are errors with a did-you-mean.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from registry.schema import MAX_CONTEXT, Bytes, Dtype, parse_bytes


def _bytes(value: object) -> object:
    """parse_bytes, with a size too large for a float ('400 digits GB') refused in words, not by OverflowError."""
    try:
        return parse_bytes(value)
    except OverflowError:
        raise ValueError("a size far too large to be a machine's") from None


#: Names that become KubeRay worker group names and served model ids must be simple.
_NAME = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_SERVED = r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$"


class Strict(BaseModel):
    """Base: unknown keys are errors and values are never silently coerced to another meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NodeGroupSpec(Strict):
    """Identical machines: `count` nodes with `gpus_per_node` GPUs of one accelerator each."""

    name: Annotated[str, Field(pattern=_NAME, max_length=40)]
    """Name of the group (lowercase letters, digits, '-'); nodes are NAME-0, NAME-1 … and KubeRay's worker
    group takes this name."""
    accelerator: Annotated[str, Field(min_length=1)]
    """Catalog accelerator id or alias (h100-sxm, a100-80gb, l40s, l4 …)."""
    gpus_per_node: Annotated[int, Field(gt=0, le=64)]
    """GPUs in each node."""
    count: Annotated[int, Field(gt=0, le=100_000)] = 1
    """Number of such nodes."""
    ram: Annotated[Bytes, BeforeValidator(_bytes), Field(gt=0)]
    """System memory of each node ('2TB', '512GiB')."""
    cpus: Annotated[int, Field(gt=0, le=8192)] = 32
    """CPU cores of each node (Ray's CPU resource; KubeRay's pod request)."""
    nvlink: bool | None = None
    """Whether the GPUs inside one node are linked by NVLink; default: what the catalog says is usual for
    the accelerator. Without NVLink the planner prefers pipeline over tensor parallelism."""


class NetworkSpec(Strict):
    """The network between nodes."""

    bandwidth_bytes_per_s: Annotated[int, BeforeValidator(_bytes), Field(gt=0, le=10**15)]
    """Per-node bandwidth in bytes per second ('50GB' for 400 Gb/s InfiniBand, '12.5GB' for 100 GbE)."""


class EngineSpec(Strict):
    """vLLM settings the plan assumes; every export writes them out so the engine does what was planned."""

    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Share of each GPU's total memory vLLM may take (its default is 0.9)."""
    block_size: Literal[8, 16, 32, 64, 128] | None = None
    """Tokens per KV-cache block; default: vLLM's choice (16 on CUDA; some attention backends, such as
    FlashMLA, force 64), which the plan assumes to be 16 and the exports leave to vLLM."""
    max_num_seqs: Annotated[int, Field(gt=0, le=65536)] | None = None
    """Most sequences one replica runs at once (the planned batch may be lower: memory, speed target);
    default: vLLM's OpenAI-server default for the GPU (1,024 on 70 GiB or more, 256 below)."""
    max_num_batched_tokens: Annotated[int, Field(ge=64, le=1_048_576)] | None = None
    """Tokens per engine step; default: vLLM's OpenAI-server default for the GPU (8,192 on 70 GiB or more,
    2,048 below)."""


class WorkloadSpec(Strict):
    """One model to serve and its load: `concurrency`, or `requests_per_s` with prompt and output lengths."""

    model: Annotated[str, Field(min_length=1)]
    """Catalog id or alias (meta-llama/Llama-3.1-8B-Instruct, mixtral-8x7b-instruct …)."""
    name: Annotated[str, Field(pattern=_SERVED, max_length=128)] | None = None
    """The id clients ask for (OpenAI `model`); default: the catalog id."""
    context: Annotated[int, Field(gt=0, le=MAX_CONTEXT)] | None = None
    """Longest sequence (prompt + output) a request may reach, vLLM's max_model_len; default: the model's (at
    most registry.schema.MAX_CONTEXT, the longest a model card may declare)."""
    concurrency: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    """Sequences in flight at once at peak."""
    requests_per_s: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    """Requests arriving per second at peak (needs prompt_tokens and output_tokens)."""
    prompt_tokens: Annotated[int, Field(gt=0)] | None = None
    """Typical prompt length in tokens."""
    output_tokens: Annotated[int, Field(gt=0)] | None = None
    """Typical output length in tokens."""
    tokens_per_s_per_user: Annotated[float, Field(gt=0, le=100_000)] | None = None
    """Decode speed every sequence must see; default: no speed target."""
    dtype: Dtype | None = None
    """Compute and KV-cache dtype; default: bfloat16 where the GPU has it, else float16."""
    quantization: Literal["fp8", "nf4"] | None = None
    """Quantize while loading: fp8 (8-bit weights, vLLM's online fp8) or nf4 (bitsandbytes 4-bit)."""
    accelerator: str | None = None
    """Run only on node groups of this accelerator (catalog id or alias)."""
    ttft_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    """Time-to-first-token target in seconds (mean, waiting for prefill included); replicas are added until
    prefill keeps within it. Default: no target (prefill only has to keep up with the arriving prompts)."""

    @field_validator("quantization", mode="before")
    @classmethod
    def _no_int8(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in ("int8", "8bit", "w8a16", "bnb-int8"):
            raise ValueError(
                "vLLM has no in-flight int8 quantization; use 'fp8' (8-bit weights, the same memory, "
                "no calibration data) or point `model` at a pre-quantized checkpoint"
            )
        return value


class FleetFile(Strict):
    """The whole fleet.yaml."""

    schema_version: Literal[1] = 1
    """Format version of this file."""
    nodes: Annotated[list[NodeGroupSpec], Field(min_length=1)]
    """Groups of identical machines."""
    network: NetworkSpec | None = None
    """The network between nodes; default: 100 Gb/s Ethernet."""
    engine: EngineSpec = Field(default_factory=EngineSpec)
    """vLLM settings the plan assumes."""
    models: Annotated[list[WorkloadSpec], Field(min_length=1)]
    """The workload: models and their load."""


#: The schema class of each section, for did-you-mean on unknown keys.
SECTIONS: dict[str, type[BaseModel]] = {
    "nodes": NodeGroupSpec,
    "network": NetworkSpec,
    "engine": EngineSpec,
    "models": WorkloadSpec,
}
