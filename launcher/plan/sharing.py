"""Plans shared between catalog cards that plan alike: the card fields the planner reads (its planning signature)
and how a plan made for one card is re-labelled for another. Pure; imports registry and the plan layer's types.

A large catalog is mostly many repositories of one architecture (fine-tunes, quantized re-uploads, mirrors):
cards whose planning fields are all equal get the same plan, so `berth list` plans each signature once and
hands the others that plan under their own id. The fields are listed explicitly (PLANNING_FIELDS); tests trace
which fields the planner really reads and check that every ModelCard field is classified here."""

from __future__ import annotations

from operator import itemgetter

from launcher.plan.errors import DoesNotFitError
from launcher.plan.request import Plan
from registry.schema import Architecture, ModelCard

#: Every card field the planner (launcher.plan.ladder.make_plan, registry.params/memory underneath) reads, but
#: the id: cards equal in all of these get equal plans. `architecture` counts whole (every field, config_extras
#: included); `license` is read for the warning of a gated model.
PLANNING_FIELDS = (
    "architecture",
    "model_type",
    "task",
    "context_length",
    "params",
    "native_dtype",
    "native_quant",
    "native_quant_block",
    "weight_format",
    "remote_code",
    "gated",
    "license",
    "unconfirmed",
    "measured_layout",
)
#: Read by the planner only to name the model in the plan: replaced by the other card's own (relabel).
RELABELLED_FIELDS = ("id",)
#: Never read by the planner: shown beside the plan (aliases, family), or provenance only.
NOT_PLANNED_FIELDS = (
    "aliases",
    "family",
    "revision",
    "source",
    "description",
    "params_source",
    "stored_extra_params",
    "stored_extra_note",
)

Signature = tuple[object, ...]

_ARCH_FIELDS = tuple(name for name in Architecture.model_fields if name != "config_extras")
_arch_values = itemgetter(*_ARCH_FIELDS)
#: The planning fields that hold one scalar each (the others are handled one by one below).
_SCALARS = tuple(
    name for name in PLANNING_FIELDS if name not in ("architecture", "unconfirmed", "measured_layout")
)
_scalar_values = itemgetter(*_SCALARS)


def architecture_key(arch: Architecture) -> tuple[object, ...]:
    """Every architecture field as one hashable value (config_extras by its repr: 1, 1.0 and True stay apart)."""
    return (_arch_values(arch.__dict__), repr(arch.config_extras))


def planning_signature(card: ModelCard, arch_keys: dict[int, tuple[object, ...]] | None = None) -> Signature:
    """The card's planning fields as one hashable value. `arch_keys` (by id of the Architecture object) spares
    recomputing the architecture's part for cards that share the object, within one pass over a catalog."""
    arch = card.architecture
    if arch_keys is None:
        arch_part = architecture_key(arch)
    else:
        found = arch_keys.get(id(arch))
        arch_part = found if found is not None else arch_keys.setdefault(id(arch), architecture_key(arch))
    values = card.__dict__
    layout = values["measured_layout"]
    return (
        arch_part,
        _scalar_values(values),
        tuple(values["unconfirmed"]),
        None if layout is None else repr(layout),  # every block it counts
    )


def shareable(result: Plan | DoesNotFitError, model_id: str) -> bool:
    """Whether a result can be handed to other cards under their id: it names the card only in its id field
    (no reason, warning, suggestion or file name mentions it)."""
    if isinstance(result, DoesNotFitError):
        texts: tuple[str, ...] = (*result.suggestions, result.detail, result.reason)
    else:
        texts = (*result.reasons, *result.warnings)
        if result.llama_cpp is not None:
            texts += (result.llama_cpp.file_name,)
    return not any(model_id in text for text in texts)


def relabel(result: Plan | DoesNotFitError, model_id: str) -> Plan | DoesNotFitError:
    """The same result for the card `model_id` (a shareable one: see `shareable`)."""
    if isinstance(result, DoesNotFitError):
        if result.model_id == model_id:
            return result
        return DoesNotFitError(
            model_id,
            result.required_bytes,
            result.available_bytes,
            result.suggestions,
            result.detail,
            result.reason,
        )
    if result.model_id == model_id:
        return result
    # dataclasses.replace(result, model_id=model_id), without re-running __init__ for each of thousands of
    # cards: a shallow copy of the frozen Plan with the one field changed (tests compare it with replace).
    copy = Plan.__new__(Plan)
    copy.__dict__.update(result.__dict__, model_id=model_id)
    return copy
