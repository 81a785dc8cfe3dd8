"""`berth show MODEL` and `berth catalog validate|add`: one entry's needs, and checking catalog files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json, get_catalog
from launcher.cli.errors import EXIT_USAGE
from launcher.cli.hub_out import echo_provenance, hub_json, say_progress, trust_remote_code_option
from launcher.plan.request import DEFAULT_CONTEXT
from launcher.run.source import resolve_source
from registry.catalog import check_catalog, default_catalog_path
from registry.errors import CatalogError, ImportModelError, short_text
from registry.layers import attention_layers, recurrent_state_bytes
from registry.memory import (
    SHOWN_PRECISIONS,
    estimate_memory,
    kv_bytes_per_token,
    kv_cache_bytes,
    native_precision,
)
from registry.params import layout
from registry.paths import expand_user_path
from registry.schema import ModelCard

#: Context used for memory tables when the user does not give one (capped at the model's own maximum).


def default_context(card: ModelCard) -> int:
    """The context length tables use by default."""
    return min(DEFAULT_CONTEXT, card.context_length)


def memory_rows(card: ModelCard, context: int) -> list[dict[str, Any]]:
    """Memory needs per precision at a context length, on a GPU (weights, KV cache, activations, floor)."""
    lay = layout(card)
    rows = []
    shown = list(SHOWN_PRECISIONS)
    if card.native_quant:
        # A checkpoint published in FP8/MXFP4: its own format first; bitsandbytes does not stack on it.
        shown = [native_precision(card, "bfloat16")] + [p for p in shown if p.quant is None]
    for precision in shown:
        est = estimate_memory(card, precision, context, lay=lay)
        rows.append(
            {
                "precision": precision.label,
                "dtype": precision.dtype,
                "quantization": precision.quant or precision.native,
                "weights_bytes": est.weights,
                "kv_cache_bytes": est.kv_cache,
                "activations_bytes": est.activations,
                "overhead_bytes": est.overhead,
                "total_bytes": est.total,
            }
        )
    return rows


def card_summary(card: ModelCard) -> dict[str, Any]:
    """The entry as JSON, with computed counts beside the published one."""
    lay = layout(card)
    data = card.model_dump(mode="json", exclude_none=True)
    data["computed_params"] = lay.total
    data["active_params"] = lay.active
    return data


@click.command("show")
@click.argument("model")
@click.option(
    "--context", type=click.IntRange(min=1), default=None, help="Context length for the memory table."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@trust_remote_code_option
@click.pass_context
def show_command(
    ctx: click.Context, model: str, context: int | None, as_json: bool, trust_remote_code: bool
) -> None:
    """One catalog entry and its memory needs per dtype/quantization. A Hugging Face repository
    OWNER/NAME[@REVISION] that is not in the catalog is read from the Hub (no weights) and cached."""
    source = resolve_source(
        model, get_catalog(ctx), trust_remote_code=trust_remote_code, progress=say_progress
    )
    card = source.card
    if context is not None and context > card.context_length:
        raise click.BadParameter(
            f"{card.id} supports at most {card.context_length:,} tokens of context", param_hint="--context"
        )
    ctx_len = context or default_context(card)
    rows = memory_rows(card, ctx_len)
    kv_1k = kv_cache_bytes(card, 1000, dtype="bfloat16")
    if as_json:
        echo_json(
            {
                "model": card_summary(card),
                "context": ctx_len,
                "memory": rows,
                "kv_cache_per_1000_tokens_bytes": kv_1k,
                "kv_cache_per_token_bytes": kv_bytes_per_token(card),
            }
            | hub_json(source)
        )
        return
    click.echo(_card_text(card, kv_1k))
    click.echo("")
    click.echo(f"Memory on one GPU at {ctx_len:,} tokens of context, batch 1:")
    click.echo(_memory_table(rows))
    if card.unconfirmed and source.hub is None:
        click.echo(f"\nUnconfirmed fields: {', '.join(card.unconfirmed)}")
    echo_provenance(source)


def _card_text(card: ModelCard, kv_1k: int) -> str:
    """The entry's identity, size and architecture, one fact group per line."""
    lay = layout(card)
    arch = card.architecture
    lines = [
        f"{card.id}  ({', '.join(card.aliases) or 'no aliases'})",
        f"  {card.description}" if card.description else None,
        f"  family {card.family}, {card.model_type}, task {card.task}, licence {card.license}"
        + (", gated" if card.gated else "")
        + (", needs remote code" if card.remote_code else ""),
        f"  parameters {display.params(card.params)} ({card.params:,}, {card.params_source});"
        f" transformers builds {lay.total:,}"
        + (f", {lay.active:,} active per token" if lay.active != lay.total else ""),
        f"  native dtype {card.native_dtype}, context {card.context_length:,} tokens, weights {card.weight_format}",
        _native_line(card),
        f"  {arch.num_layers} layers, hidden {arch.hidden_size}, {arch.num_attention_heads} heads"
        f" ({arch.kv_heads} key/value), head_dim {arch.head_width}, vocab {arch.vocab_size:,}"
        + (f", {arch.num_experts} experts ({arch.experts_per_token} per token)" if arch.is_moe else "")
        + (f", MLA latent {arch.kv_lora_rank}+{arch.qk_rope_head_dim}" if arch.is_mla else "")
        + (f", sliding window {arch.sliding_window:,}" if arch.sliding_window else "")
        + _pattern_text(card),
        _kv_text(card, kv_1k),
        f"  also stored: {card.stored_extra_note}" if card.stored_extra_note else None,
    ]
    return "\n".join(line for line in lines if line is not None)


def _pattern_text(card: ModelCard) -> str:
    """Chunked attention (Llama 4) and linear-attention layers (Qwen3-Next), for the architecture line."""
    arch = card.architecture
    if arch.attention_chunk_size:
        every = f", every {arch.global_attention_every}th layer global" if arch.global_attention_every else ""
        return f", chunked attention {arch.attention_chunk_size:,}{every}"
    if arch.full_attention_interval:
        linear = arch.num_layers - attention_layers(arch)
        return f", {linear} of {arch.num_layers} layers linear attention"
    return ""


def _kv_text(card: ModelCard, kv_1k: int) -> str:
    """The KV cache line: what grows with the context, and the fixed state linear-attention layers keep."""
    arch = card.architecture
    fixed = recurrent_state_bytes(arch, 2) * (arch.num_layers - attention_layers(arch))
    if not fixed:
        return f"  KV cache: {display.gib(kv_1k, 2)} per 1,000 tokens (bf16)"
    return (
        f"  KV cache: {display.gib(kv_1k - fixed, 2)} per 1,000 tokens (bf16)"
        f" + {display.gib(fixed, 2)} fixed recurrent state per sequence"
    )


def _native_line(card: ModelCard) -> str | None:
    """How the published low-precision format loads, for checkpoints that have one."""
    if card.native_quant == "fp8":
        block = (
            f"{card.native_quant_block}x{card.native_quant_block} blocks"
            if card.native_quant_block
            else "per-row scales"
        )
        return (
            f"  published in FP8 (e4m3, {block}): transformers keeps it FP8 on compute capability 8.9+ "
            "(Ada, Hopper, Blackwell) and dequantizes to bf16 elsewhere; vLLM loads it as published"
        )
    if card.native_quant == "mxfp4":
        return (
            "  published in MXFP4 (experts; 4.25 bits a weight): transformers keeps it MXFP4 on Hopper or newer "
            "(compute capability 9.0+) and dequantizes to bf16 elsewhere"
        )
    return None


def _memory_table(rows: list[dict[str, Any]]) -> str:
    """Memory needs per precision, one row each, in GiB."""
    keys = ["weights_bytes", "kv_cache_bytes", "activations_bytes", "overhead_bytes", "total_bytes"]
    table_rows = [[r["precision"], *(display.gib(r[key]) for key in keys)] for r in rows]
    return display.table(
        ["precision", "weights", "KV cache", "activations", "overhead", "total"],
        table_rows,
        right=(1, 2, 3, 4, 5),
    )


@click.group("catalog")
def catalog_group() -> None:
    """Check catalog files and add models to your overlay."""


@click.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def validate_command(ctx: click.Context, file: str | None, as_json: bool) -> None:
    """Check catalog files exactly as every command loads them, listing every problem: with no FILE, the
    catalog (shipped or --catalog) with your overlay; with FILE, FILE as an overlay over that catalog (the
    shipped catalog itself, given as FILE, is checked alone)."""
    path, problems = _validate(ctx.find_root().obj or {}, file)
    if as_json:
        echo_json(
            {
                "file": str(path),
                "ok": not problems,
                "problems": [
                    {
                        "message": p.message,
                        "file": str(p.path) if p.path else None,
                        "line": p.line,
                        "field": p.field,
                        "suggestion": p.suggestion,
                        "text": str(p),
                    }
                    for p in problems
                ],
            }
        )
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        if not problems:
            click.echo(f"{path}: ok")
    if problems:
        raise SystemExit(EXIT_USAGE)


def _validate(options: dict[str, Any], file: str | None) -> tuple[Path, list[CatalogError]]:
    """The file named in the verdict and every problem loading meets (the same code path as loading)."""
    base = options.get("catalog_path")
    overlay = options.get("overlay", True)
    if file is None:
        return expand_user_path(base) if base else default_catalog_path(), check_catalog(base, overlay)
    path = expand_user_path(file)
    if _same_file(path, default_catalog_path()) and not base:
        return path, check_catalog(path, overlay=False)
    return path, check_catalog(base, overlay=path)


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except (OSError, RuntimeError):
        return False


@click.command("add")
@click.argument("path_or_repo")
@click.option(
    "--id", "model_id", default=None, help="Catalog id for it (default: local/<folder or file name>)."
)
@click.option("--alias", "aliases", multiple=True, help="A short name to type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the new entry as JSON.")
@click.pass_context
def add_command(
    ctx: click.Context, path_or_repo: str, model_id: str | None, aliases: tuple[str, ...], as_json: bool
) -> None:
    """Add a model to your overlay from a local folder (config.json + safetensors), a GGUF file, or a Hub
    repo (from your Hugging Face cache, else read from the Hub without weights and pinned to its commit)."""
    from registry.importer import card_from_dir, card_from_gguf
    from registry.overlay import add_to_overlay
    from registry.userdirs import overlay_path

    path = expand_user_path(path_or_repo)
    kind = _kind_of(path)
    if kind == "file":
        card = card_from_gguf(path, model_id)
    elif kind == "folder":
        card = card_from_dir(path, model_id)
    elif _REPO_ID.fullmatch(path_or_repo):
        snapshot = _cached_repo(path_or_repo)
        if snapshot is None:
            card = _card_from_hub(path_or_repo, model_id)
        else:
            card = card_from_dir(snapshot, model_id or path_or_repo)
            card = card.model_copy(update={"source": f"https://huggingface.co/{path_or_repo}"})
    else:
        raise ImportModelError(f"{short_text(path_or_repo, 120)}: no such folder or file")
    if aliases:
        card = card.model_copy(update={"aliases": list(aliases)})
    get_catalog(ctx)  # the shipped catalog must load before we add to it
    target = add_to_overlay(card, overlay_path())
    if as_json:
        echo_json({"overlay": str(target), "model": card_summary(card)})
        return
    click.echo(f"Added {card.id} ({display.params(card.params)} parameters, {card.task}) to {target}.")
    click.echo(f"Next: berth plan {card.id}")


def _card_from_hub(repo: str, model_id: str | None) -> ModelCard:
    """A repository that is not in the local cache, read from the Hub without weights (pinned to its commit);
    offline, the way to get it instead."""
    from registry.hub_fetch import hub_entry, settings_from_env

    if settings_from_env().offline:
        raise ImportModelError(
            f"{repo} is not in your Hugging Face cache and HF_HUB_OFFLINE is set. Download it first "
            f"(`hf download {repo}`), then run this again, or add a local folder or GGUF file"
        )
    card = hub_entry(repo, progress=say_progress).card
    if card.measured_layout is not None:
        raise ImportModelError(
            f"{repo} is a '{card.model_type}' model, which Berth sizes only by building it with transformers; "
            f"the catalog takes families with layout rules. Plan it directly: `berth plan {repo}`"
        )
    return card.model_copy(update={"id": model_id}) if model_id else card


#: What a Hub repo id looks like (owner/name), as opposed to a path.
_REPO_ID = re.compile(r"[\w\-][\w.\-]{0,95}/[\w.\-]{1,96}")


def _kind_of(path: Path) -> str | None:
    """'file', 'folder' or None (nothing there); ImportModelError when the path cannot be looked at."""
    try:
        return "file" if path.is_file() else "folder" if path.is_dir() else None
    except OSError as err:
        raise ImportModelError(f"{short_text(str(path), 120)}: cannot be read ({err.strerror})") from None


def _cached_repo(repo: str) -> Path | None:
    """The newest snapshot folder of a Hub repo in the local cache, if any."""
    from launcher.run.download import hub_cache

    snapshots = hub_cache() / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    folders = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return folders[-1] if folders else None


catalog_group.add_command(validate_command)
catalog_group.add_command(add_command)
