"""Values the fleet planner takes and returns: node groups, workloads, replica shapes and the plan.

Everything here is an immutable dataclass with int bytes; the planner (`launcher.fleet.planner`) builds them, the
report and the exporters only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from registry.schema import Accelerator, Dtype, ModelCard

#: Quantizations a fleet can ask vLLM to apply while loading: fp8 (8-bit weights, online, no calibration
#: data) and nf4 (bitsandbytes 4-bit in-flight quantization).
FleetQuant = Literal["fp8", "nf4", "mxfp4"]

ModelStatus = Literal["ok", "short", "does-not-fit"]


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class NodeGroup:
    """`count` identical machines: their GPUs, memory, CPUs and how the GPUs inside one are linked."""

    name: str
    accelerator: Accelerator
    gpus_per_node: int
    count: int
    ram_bytes: int
    cpus: int
    nvlink: bool
    """Whether the GPUs inside one node are linked by NVLink (tensor parallelism is cheap there)."""

    def node_name(self, index: int) -> str:
        """The name of one node of the group (NAME-0, NAME-1 …)."""
        return f"{self.name}-{index}"


@dataclass(frozen=True)
class EngineSettings:
    """vLLM settings the plan assumes; the exporters write them out so the engine does what was planned."""

    gpu_memory_utilization: float = 0.9
    """Share of each GPU's total memory vLLM may use (weights, activations, KV cache)."""
    block_size: int = 16
    """Tokens per KV-cache block (vLLM's paged attention)."""
    block_size_set: bool = False
    """Whether fleet.yaml chose the block size (then the exports write it; otherwise vLLM picks)."""
    max_num_seqs: int | None = None
    """Upper bound on sequences a replica runs at once; None: vLLM's default for the GPU size."""
    max_num_batched_tokens: int | None = None
    """Tokens per engine step (prefill chunk); None: vLLM's default for the GPU size."""


@dataclass(frozen=True)
class Workload:
    """One model to serve and the load it must carry."""

    name: str
    """The id clients use (OpenAI `model` field); defaults to the catalog id."""
    card: ModelCard
    context: int
    """Longest sequence a request may reach (vLLM's max_model_len)."""
    concurrency: int | None = None
    """Target sequences in flight at once."""
    requests_per_s: float | None = None
    """Arrival rate; with prompt_tokens and output_tokens it gives the concurrency by Little's law."""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_per_s_per_user: float | None = None
    """Decode speed each sequence must see; None: no speed target."""
    dtype: Dtype | None = None
    """Compute and KV-cache dtype; None: bf16 where the GPU has it, else fp16."""
    quantization: FleetQuant | None = None
    accelerators: tuple[str, ...] = ()
    """Catalog accelerator ids this model may run on; empty: any in the fleet."""
    ttft_s: float | None = None
    """Time-to-first-token target in seconds, queueing for prefill included; None: no target."""


@dataclass(frozen=True)
class FleetRequest:
    """The whole planning problem: machines, engine settings and workloads."""

    groups: tuple[NodeGroup, ...]
    workloads: tuple[Workload, ...]
    engine: EngineSettings = field(default_factory=EngineSettings)
    network_bytes_per_s: int | None = None
    """Bandwidth between nodes, per node; used for pipeline hand-offs of the prompt's hidden states."""


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Shape:
    """Tensor-parallel × pipeline-parallel size of one replica."""

    tp: int
    pp: int

    @property
    def gpus(self) -> int:
        """GPUs one replica takes."""
        return self.tp * self.pp

    @property
    def label(self) -> str:
        """TP2×PP1."""
        return f"TP{self.tp}×PP{self.pp}"


@dataclass(frozen=True)
class ReplicaEstimate:
    """What one replica of a model looks like on one node group, per GPU rank where it says so."""

    group: str
    accelerator: str
    """Catalog accelerator id."""
    shape: Shape
    dtype: Dtype
    quantization: FleetQuant | None
    context: int
    weights_bytes_per_rank: int
    """The largest weight share any rank holds (pipeline stages differ: embeddings, head)."""
    activation_bytes_per_rank: int
    non_torch_bytes_per_rank: int
    kv_cache_bytes_per_rank: int
    """KV cache on the rank that has the least room (vLLM sizes every rank to the smallest)."""
    kv_cache_tokens: int
    """Tokens the replica's cache holds (vLLM's 'GPU KV cache size')."""
    max_concurrent_sequences: int
    """Full-context sequences the cache holds at once (vLLM's 'maximum concurrency')."""
    batch: int
    """Sequences the plan runs per replica: the cache, the speed target and max_num_seqs all allow it."""
    decode_tokens_per_s_per_user: float
    """Each sequence's decode speed at that batch."""
    decode_tokens_per_s: float
    """The replica's total decode throughput at that batch."""
    ttft_s: float
    """Time to first token for one prompt (compute-bound prefill), without queueing."""
    ttft_prompt_tokens: int
    """Prompt length the time to first token is for."""
    max_num_batched_tokens: int
    """Tokens per engine step assumed (and exported)."""
    prefill_tokens_per_s: float = 0.0
    """Prompt tokens per second the replica prefills when prompts keep coming (chunked prefill)."""


@dataclass(frozen=True)
class Capacity:
    """Replicas a workload needs on one replica shape: the larger of what decode and prefill need."""

    concurrency: float
    """Sequences in flight (given, or Little's law)."""
    decode_replicas: int
    """Replicas whose batches hold the sequences in flight."""
    arrival_per_s: float | None
    """Requests per second (given, or the concurrency over the time in the system); None: unknown."""
    prefill_tokens_per_s_needed: float
    """Prompt tokens per second arriving (0 when the prompt length or the rate is unknown)."""
    prefill_utilisation: float
    """Largest share of a replica's prefill time the TTFT target allows (1 without a target)."""
    prefill_replicas: int
    """Replicas whose prefill keeps up with the arriving prompts within that share."""

    @property
    def replicas(self) -> int:
        """Replicas needed: the larger need, at least one."""
        return max(1, self.decode_replicas, self.prefill_replicas)

    @property
    def limit(self) -> str:
        """Which phase sets the replica count: 'decode' or 'prefill'."""
        return "prefill" if self.prefill_replicas > self.decode_replicas else "decode"


@dataclass(frozen=True)
class Alternative:
    """A cheaper way to run a model that does not fit or is short: 8-bit weights, a shorter context."""

    label: str
    quantization: FleetQuant | None
    context: int
    replica: ReplicaEstimate
    replicas: int
    gpus: int
    """GPUs all replicas take together."""
    fits: bool
    """Whether the fleet has room for it, counting the GPUs this model holds now."""


@dataclass(frozen=True)
class ModelPlan:
    """How one workload is served: the replica, how many, and whether the fleet has room."""

    workload: Workload
    status: ModelStatus
    replica: ReplicaEstimate | None
    concurrency_needed: float
    """Sequences in flight the workload needs (given, or Little's law)."""
    replicas_needed: int
    replicas_placed: int
    reasons: tuple[str, ...] = ()
    """Why shapes or node groups were ruled out, in words."""
    alternatives: tuple[Alternative, ...] = ()
    capacity: Capacity | None = None
    """What the replica count is made of: decode and prefill needs, and the headroom left."""
    runner_up: str | None = None
    """The next-best way to run the model and why it lost, in words (None: there was no other)."""

    @property
    def name(self) -> str:
        """The served model id."""
        return self.workload.name

    @property
    def replicas_missing(self) -> int:
        """Replicas the fleet had no room for."""
        return self.replicas_needed - self.replicas_placed


@dataclass(frozen=True)
class StagePlacement:
    """One pipeline stage of one replica: its tensor-parallel group on one node."""

    model: str
    replica: int
    stage: int
    gpu_indices: tuple[int, ...]


@dataclass(frozen=True)
class NodePlan:
    """One machine: what runs on it and what is left."""

    name: str
    group: str
    accelerator: str
    gpus: int
    stages: tuple[StagePlacement, ...]

    @property
    def used_gpus(self) -> int:
        """GPUs taken by placed stages."""
        return sum(len(s.gpu_indices) for s in self.stages)

    @property
    def free_gpus(self) -> int:
        """GPUs nothing runs on."""
        return self.gpus - self.used_gpus


@dataclass(frozen=True)
class Addition:
    """More machines the fleet needs for the replicas that did not fit."""

    group: str
    nodes: int
    accelerator: str
    gpus_per_node: int
    models: tuple[str, ...]


@dataclass(frozen=True)
class FleetPlan:
    """The whole answer: per model, per node, and what to add."""

    models: tuple[ModelPlan, ...]
    nodes: tuple[NodePlan, ...]
    additions: tuple[Addition, ...]
    engine: EngineSettings
    groups: tuple[NodeGroup, ...]
    network_bytes_per_s: int | None = None

    @property
    def total_gpus(self) -> int:
        """GPUs in the fleet."""
        return sum(n.gpus for n in self.nodes)

    @property
    def used_gpus(self) -> int:
        """GPUs the plan uses."""
        return sum(n.used_gpus for n in self.nodes)

    @property
    def free_gpus(self) -> int:
        """GPUs left over."""
        return self.total_gpus - self.used_gpus

    @property
    def missing_gpus(self) -> int:
        """GPUs the replicas without room would need."""
        return sum(m.replicas_missing * m.replica.shape.gpus for m in self.models if m.replica is not None)

    @property
    def complete(self) -> bool:
        """Whether every workload is fully served."""
        return all(m.status == "ok" for m in self.models)

    def group(self, name: str) -> NodeGroup:
        """A node group by name."""
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(name)

    def model(self, name: str) -> ModelPlan:
        """The plan of one served model."""
        for plan in self.models:
            if plan.name == name:
                return plan
        raise KeyError(name)
