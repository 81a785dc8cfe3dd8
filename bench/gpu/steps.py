"""What a run does, in order: the models, their cases, each step's rough cost and the time-budget rule.

Pure decisions plus the step specs a child process reads back; imports registry and launcher.plan (no torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bench._common import GiB
from registry.memory import Quant
from registry.schema import ModelCard

#: The three models: short key, catalog id, and what a --tiny run shrinks each to (same family and layout).
MODELS: tuple[tuple[str, str, dict[str, int]], ...] = (
    (
        "danube",
        "h2oai/h2o-danube-1.8b-chat",
        {"num_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
         "num_key_value_heads": 1, "vocab_size": 512},
    ),
    (
        "mistral",
        "mistralai/Mistral-7B-v0.1",
        {"num_layers": 3, "hidden_size": 64, "intermediate_size": 224, "num_attention_heads": 4,
         "num_key_value_heads": 1, "vocab_size": 512},
    ),
    (
        "qwen14",
        "Qwen/Qwen2.5-14B-Instruct",
        {"num_layers": 4, "hidden_size": 80, "intermediate_size": 216, "num_attention_heads": 5,
         "num_key_value_heads": 1, "vocab_size": 1024},
    ),
)  # fmt: skip
#: The model compared against the plain pipeline under a forced budget (the others run bf16, int8, nf4).
COMPARE_MODEL = "qwen14"
QUANTS: tuple[Quant, ...] = ("int8", "nf4")

#: Rough seconds for the budget check on an H100 (kept deliberately pessimistic): a fresh process with torch
#: and CUDA, building a model (init on the GPU + writing safetensors), reading weights, and decode tokens/s.
PROCESS_S = 12.0
BUILD_BYTES_PER_S = 0.8e9
LOAD_BYTES_PER_S = 2.0e9
FLOOR_TOKENS_PER_S: dict[str, float] = {"bf16": 25.0, "int8": 7.0, "nf4": 12.0, "offload": 0.5}
TINY_STEP_S = 12.0

StepKind = Literal["build", "case", "cleanup"]
Mode = Literal["berth", "pipeline"]


@dataclass(frozen=True)
class Settings:
    """Everything a run is asked to do (from the command line)."""

    tiny: bool
    budget_s: float
    prompt_tokens: int
    new_tokens: int
    compare_new_tokens: int
    max_time_s: float
    gpu_budget_bytes: int
    cpu_budget_bytes: int
    models: tuple[str, ...]
    out_dir: Path
    work_dir: Path


@dataclass(frozen=True)
class StepSpec:
    """What a step's process works on: the model's folder and card; for a case, how to load and generate."""

    model: str
    folder: str
    card: ModelCard
    mode: Mode | None = None
    """None: build the model; 'berth': Berth's own path; 'pipeline': the plain transformers pipeline."""
    quant: Quant | Literal["none"] | None = None
    max_memory: dict[str, int] | None = None
    """Per device ('0', 'cpu') as JSON keys; passed to Berth's PlanRequest and to the pipeline alike."""
    new_tokens: int = 0

    def device_max_memory(self) -> dict[int | str, int] | None:
        """max_memory with GPU indexes as ints, as PlanRequest and from_pretrained take it."""
        if not self.max_memory:
            return None
        return {int(k) if k.isdigit() else k: int(v) for k, v in self.max_memory.items()}


@dataclass(frozen=True)
class Job:
    """One step's process: its spec and the run settings it needs, written as JSON for the child to read."""

    name: str
    spec: StepSpec
    result_path: str
    tiny: bool
    prompt_tokens: int
    max_time_s: float

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": self.name,
            "result_path": self.result_path,
            "tiny": self.tiny,
            "prompt_tokens": self.prompt_tokens,
            "max_time_s": self.max_time_s,
            "model": spec.model,
            "folder": spec.folder,
            "card": spec.card.model_dump(mode="json"),
            "mode": spec.mode,
            "quant": spec.quant,
            "max_memory": spec.max_memory,
            "new_tokens": spec.new_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        spec = StepSpec(
            model=data["model"],
            folder=data["folder"],
            card=ModelCard.model_validate(data["card"]),
            mode=data["mode"],
            quant=data["quant"],
            max_memory=data["max_memory"],
            new_tokens=int(data["new_tokens"]),
        )
        return cls(
            name=data["name"],
            spec=spec,
            result_path=data["result_path"],
            tiny=bool(data["tiny"]),
            prompt_tokens=int(data["prompt_tokens"]),
            max_time_s=float(data["max_time_s"]),
        )


@dataclass(frozen=True)
class Step:
    """One unit of the run: build a model, run one case, or delete a model's folder."""

    name: str
    kind: StepKind
    model: str
    expect_s: float
    must: bool
    spec: StepSpec


def tiny_card(card: ModelCard, overrides: Mapping[str, int]) -> ModelCard:
    """The same card with a small architecture (and its parameter count), for a CPU run."""
    from registry.params import count_params

    data = card.model_dump()
    data["architecture"].update(overrides)
    data.update(params_source="computed", stored_extra_params=0, stored_extra_note=None)
    draft = ModelCard.model_validate(data)
    data["params"] = count_params(draft)
    return ModelCard.model_validate(data)


def bf16_bytes(card: ModelCard) -> int:
    """Bytes of the model's weights in bf16 (what is built and saved)."""
    from registry.memory import Precision, weight_bytes

    return weight_bytes(card, Precision("bfloat16"))


def case_expect_s(weights: int, label: str, new_tokens: int, max_time_s: float, tiny: bool) -> float:
    """Rough wall time of one case process: start, load, prefill and warm-up, decode (capped by max_time)."""
    if tiny:
        return TINY_STEP_S
    decode = min(max_time_s, new_tokens / FLOOR_TOKENS_PER_S[label])
    return PROCESS_S + weights / LOAD_BYTES_PER_S + 5.0 + decode


def compare_budget(settings: Settings, card: ModelCard) -> dict[str, int]:
    """The forced budget of the comparison, per device (the same numbers go to Berth and to the pipeline).

    On a GPU: GPU 0 and the CPU capped. In a --tiny run (CPU only): RAM capped so that Berth must put about
    half the weights on disk, which exercises the offload folder path.
    """
    if not settings.tiny:
        return {"0": settings.gpu_budget_bytes, "cpu": settings.cpu_budget_bytes}
    from registry.memory import Precision, activation_bytes, kv_cache_bytes, runtime_bytes

    context = settings.prompt_tokens + settings.compare_new_tokens
    half = (bf16_bytes(card) + kv_cache_bytes(card, context)) // 2
    acts = activation_bytes(card, context, 1, Precision("bfloat16").dtype, "cpu")
    return {"cpu": runtime_bytes("cpu") + acts + half}  # a cap is the process's own: no OS headroom in it


def _model_steps(
    settings: Settings, key: str, card: ModelCard, can_quantize: bool, quant_note: str
) -> tuple[list[Step], list[str]]:
    """One model's build, cases and cleanup (see plan_steps); notes on the cases left out."""
    weights = bf16_bytes(card)
    base = StepSpec(model=key, folder=str(settings.work_dir / "models" / key), card=card)

    def case(
        name: str,
        label: str,
        must: bool,
        mode: Mode,
        new_tokens: int,
        quant: Quant | Literal["none"] | None = None,
        max_memory: dict[str, int] | None = None,
    ) -> Step:
        spec = replace(base, mode=mode, quant=quant, max_memory=max_memory, new_tokens=new_tokens)
        expect = case_expect_s(weights, label, spec.new_tokens, settings.max_time_s, settings.tiny)
        return Step(f"{key}-{name}", "case", key, expect, must, spec)

    full, short = settings.new_tokens, settings.compare_new_tokens
    notes: list[str] = []
    if key == COMPARE_MODEL:
        budget = compare_budget(settings, card)
        cases = [
            case("berth-auto", "int8", True, mode="berth", max_memory=budget, new_tokens=full),
            case("pipeline", "offload", True, mode="pipeline", max_memory=budget, new_tokens=short),
            case("berth-no-quant", "offload", False, mode="berth", quant="none", max_memory=budget, new_tokens=short),
        ]  # fmt: skip
    else:
        cases = [case("bf16", "bf16", True, mode="berth", quant="none", new_tokens=full)]
        for quant in QUANTS:
            if can_quantize:
                cases.append(case(quant, quant, False, mode="berth", quant=quant, new_tokens=full))
            else:
                notes.append(f"{key}-{quant} skipped: {quant_note}")
    build_s = TINY_STEP_S if settings.tiny else PROCESS_S + weights / BUILD_BYTES_PER_S
    build = Step(f"{key}-build", "build", key, build_s, True, base)
    return [build, *cases, Step(f"{key}-cleanup", "cleanup", key, 0.0, True, base)], notes


def plan_steps(
    settings: Settings, cards: Mapping[str, ModelCard], can_quantize: bool, quant_note: str
) -> tuple[list[Step], list[str]]:
    """The run in order, each step with its rough cost and whether it must run; notes on what is left out.

    Per model: build, its cases, cleanup. danube and mistral: bf16 (must), int8 and nf4 (optional). qwen14
    under the forced budget: Berth's own choice (must), the plain pipeline (must), Berth with quantization
    ruled out, i.e. offload (optional). The offload cases generate `compare_new_tokens`.
    """
    steps: list[Step] = []
    notes: list[str] = []
    for key in settings.models:
        more, left_out = _model_steps(settings, key, cards[key], can_quantize, quant_note)
        steps += more
        notes += left_out
    return steps, notes


def reserve_s(step: Step, later: Sequence[Step]) -> float:
    """Time an optional step must leave for the must-run steps after it (0 for a must-run step)."""
    return 0.0 if step.must else sum(s.expect_s for s in later if s.must and s.kind != "cleanup")


def should_run(step: Step, later: Sequence[Step], elapsed: float, budget: float) -> bool:
    """Whether a step fits the time left: must-run steps need their own cost; optional ones also leave the
    cost of every later must-run step."""
    if step.kind == "cleanup":
        return True
    return elapsed + step.expect_s + reserve_s(step, later) <= budget


def disk_ok(spec: StepSpec, settings: Settings, free_bytes: int) -> bool:
    """Whether `free_bytes` of disk hold the model's bf16 files with a margin (always in a --tiny run)."""
    need = int(bf16_bytes(spec.card) * 1.05) + 2 * GiB
    return settings.tiny or free_bytes >= need
