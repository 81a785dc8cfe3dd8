"""A catalog entry derived from what a Hub repository publishes (pure: no network, no files, no clock).

The network half (registry.hub_fetch) gathers a `HubRepo`; this module turns it into a `HubEntry` with the same
code `berth catalog add` uses for a local folder (registry.importer), and checks the config against the weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from registry.errors import BerthError, short_text
from registry.hub_errors import BadRepoIdError, HubError, HubModelError, RemoteCodeRequiredError
from registry.hub_multimodal import TextView, text_view
from registry.importer import ConfigOrigin, GgufTable, TensorInfo, card_from_config, card_from_gguf_table
from registry.params import FAMILIES
from registry.schema import ModelCard, WeightFormat

#: owner/name as the Hub allows them (huggingface_hub's validate_repo_id: 96 characters, no '--' or '..').
_REPO_ID = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.\-]{0,95}/[\w.\-]{1,96})(?:@(?P<revision>[\w.\-/]{1,200}))?$"
)
#: What a weight file the loader can use is called.
_PICKLE = re.compile(r"(^|/)pytorch_model[\w.\-]*\.bin$")
#: How far the parameters stored in the safetensors files may be from what the config describes before Berth
#: says the config does not describe these weights (extra stored values such as DeepSeek-V3's multi-token
#: prediction layer are about 2%).
MAX_MISMATCH = 0.10
#: The note every entry read from the Hub carries.
NOT_VERIFIED = "derived by Berth from the repository's files; not verified by hand"


@dataclass(frozen=True)
class RepoRef:
    """A repository id and the revision asked for (a branch, tag or commit; None for the default branch)."""

    repo_id: str
    revision: str | None = None

    @property
    def text(self) -> str:
        """owner/name or owner/name@revision."""
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def looks_like_repo_id(text: str) -> bool:
    """Whether `text` is shaped like owner/name (optionally @revision) rather than a path or an alias."""
    return text.count("/") >= 1 and not text.startswith(("/", ".", "~")) and "\\" not in text


def parse_repo_ref(text: str) -> RepoRef:
    """`owner/name` or `owner/name@revision`, checked as the Hub checks ids; BadRepoIdError otherwise."""
    match = _REPO_ID.fullmatch(text.strip())
    repo = match.group("repo") if match else ""
    if (
        not match
        or "--" in repo
        or ".." in repo
        or repo.endswith((".", "-"))
        or repo.split("/")[1][0] in ".-"
    ):
        raise BadRepoIdError(
            text,
            f"'{short_text(text, 120)}' is not a Hugging Face repository id",
            "Give it as OWNER/NAME (letters, digits, '-', '_' and '.'; at most 96 characters each), optionally "
            "followed by @REVISION, e.g. `berth plan Qwen/Qwen2.5-0.5B-Instruct`",
        )
    return RepoRef(repo, match.group("revision"))


@dataclass(frozen=True)
class HubFile:
    """One file of a repository and its size in bytes (None where the Hub did not say)."""

    name: str
    size: int | None = None


@dataclass(frozen=True)
class HubRepo:
    """What Berth read from one revision of a repository (the network half fills it in)."""

    repo_id: str
    sha: str
    """The commit the files were read at (the revision the entry pins)."""
    files: tuple[HubFile, ...]
    gated: bool = False
    license: str | None = None
    pipeline_tag: str | None = None
    config: dict[str, Any] | None = None
    chat_template: bool = False
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    """Every tensor of the safetensors files, from their headers."""
    gguf: GgufTable | None = None
    """The header of one GGUF file, for a repository that holds only GGUF files."""
    gguf_file: str | None = None
    code_folder: Path | None = None
    """Where the repository's config and Python files were downloaded (for trusted remote code)."""


class HubFileEntry(BaseModel):
    """A GGUF (or other notable) file of the repository and its size in bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    size: int | None = None


class HubEntry(BaseModel):
    """A catalog entry derived from the Hub, with what the card itself has no field for; cached as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    card: ModelCard
    requested_revision: str | None = None
    """The revision the user asked for (None: the default branch); `card.revision` is the commit it resolved to."""
    pipeline_tag: str | None = None
    gguf_files: list[HubFileEntry] = []
    note: str = NOT_VERIFIED
    planned_as: str | None = None
    """How Berth reads a repository it plans through other rules than its own model_type's (a multimodal
    repository's language model, Kimi K2 as DeepSeek-V3); None for the rest."""


def needs_remote_code(config: dict[str, Any]) -> bool:
    """Whether the model class lives in the repository's own code: an auto_map for a model_type Berth (and so
    transformers) does not know natively."""
    return bool(config.get("auto_map")) and config.get("model_type") not in FAMILIES


def weight_format_of(files: tuple[HubFile, ...]) -> WeightFormat | None:
    """safetensors, else pickle, else gguf, else None, from the repository's file names."""
    names = [f.name for f in files]
    if any(n.endswith(".safetensors") and "/" not in n for n in names):
        return "safetensors"
    if any(_PICKLE.search(n) and "/" not in n for n in names):
        return "pickle"
    if any(n.endswith(".gguf") for n in names):
        return "gguf"
    return None


def gguf_files(files: tuple[HubFile, ...]) -> list[HubFileEntry]:
    """The repository's GGUF files, by name."""
    return [
        HubFileEntry(name=f.name, size=f.size)
        for f in sorted(files, key=lambda f: f.name)
        if f.name.endswith(".gguf")
    ]


def entry_from_repo(repo: HubRepo, requested: str | None, trust_remote_code: bool = False) -> HubEntry:
    """The catalog entry for a repository, pinned to the commit it was read at.

    Raises HubModelError when the files cannot describe a plannable model (HubModelError and the importer's
    errors are both exit 2), RemoteCodeRequiredError for repository code without `trust_remote_code`.
    """
    card = _card(repo, trust_remote_code)
    update: dict[str, Any] = {
        "revision": repo.sha,
        "gated": repo.gated,
        "source": f"https://huggingface.co/{repo.repo_id}/tree/{repo.sha}",
        "description": f"read from the Hugging Face Hub at {repo.sha[:12]}; {NOT_VERIFIED}",
        "unconfirmed": ["all fields (read from the Hub on demand)"],
    }
    if repo.license and card.license == "unknown":
        update["license"] = repo.license
    pinned = ModelCard.model_validate({**card.model_dump(), **update})
    return HubEntry(
        card=pinned,
        requested_revision=requested,
        pipeline_tag=repo.pipeline_tag,
        gguf_files=gguf_files(repo.files),
        planned_as=card.description or None,
    )


def _card(repo: HubRepo, trust_remote_code: bool) -> ModelCard:
    where = f"{repo.repo_id}@{repo.sha[:12]}"
    try:
        if repo.config is not None:
            return _config_card(repo, where, trust_remote_code)
        if repo.gguf is not None:
            return card_from_gguf_table(
                repo.gguf, repo.repo_id, f"{where}/{repo.gguf_file}", source=repo.repo_id, description=""
            )
    except HubError:
        raise
    except BerthError as error:
        raise HubModelError(
            repo.repo_id, f"{repo.repo_id}: {error.message}", _lying_hint(repo.repo_id)
        ) from None
    raise HubModelError(
        repo.repo_id,
        f"{repo.repo_id} has neither a config.json nor a GGUF file, so it does not describe a model Berth can plan",
        "Check the repository name on https://huggingface.co, or give a local model folder or .gguf file",
    )


def _config_card(repo: HubRepo, where: str, trust_remote_code: bool) -> ModelCard:
    assert repo.config is not None
    view = text_view(repo.config, repo.tensors)
    if view is not None:
        return _viewed_card(repo, view, where)
    remote = needs_remote_code(repo.config)
    if remote and not trust_remote_code:
        raise RemoteCodeRequiredError(
            repo.repo_id,
            f"{repo.repo_id} needs its own Python code to build the model (config.json has an auto_map for "
            f"model_type '{short_text(str(repo.config.get('model_type')), 60)}'), and running a repository's "
            "code is refused by default",
            f"Read the code on the Hub first; to run it anyway add --trust-remote-code "
            f"(`berth plan {repo.repo_id} --trust-remote-code`)",
        )
    origin = _origin(repo, where)
    if repo.config.get("model_type") in FAMILIES:
        card = card_from_config(repo.config, repo.tensors, origin)
    elif not isinstance(repo.config.get("model_type"), str):
        raise HubModelError(
            repo.repo_id, f"{where}: config.json has no model_type", _lying_hint(repo.repo_id)
        )
    else:
        # No layout rules: count what transformers builds on the meta device (the only path that loads torch).
        from registry.hub_meta import measured_card

        card = measured_card(repo.config, repo.tensors, origin, repo.code_folder if remote else None)
    _check_against_weights(repo, card)
    return card


def _origin(repo: HubRepo, where: str) -> ConfigOrigin:
    weight_format = weight_format_of(repo.files)
    if weight_format is None or weight_format == "gguf":
        weight_format = "safetensors" if repo.tensors else weight_format or "safetensors"
    return ConfigOrigin(
        model_id=repo.repo_id,
        where=where,
        weight_format=weight_format,
        chat_template=repo.chat_template,
        source=repo.repo_id,
        description="",
        license=repo.license,
    )


def _viewed_card(repo: HubRepo, view: TextView, where: str) -> ModelCard:
    """The entry of a multimodal repository's language model (the other parts counted as stored extras), or of
    a model planned with a twin family's rules (remote_code kept: running it needs its own code)."""
    card = card_from_config(view.config, view.tensors, _origin(repo, where))
    _check_against_weights(repo, card, view.tensors)
    update: dict[str, Any] = {"description": view.summary}
    if view.twin_of is not None:
        update["remote_code"] = True
    if view.extra_values:
        extra = card.stored_extra_params + view.extra_values
        update["params"] = card.params + view.extra_values
        update["stored_extra_params"] = extra
        update["params_source"] = "hub-safetensors"
        update["stored_extra_note"] = " ".join(filter(None, [view.extras_note, card.stored_extra_note]))
    return card.model_copy(update=update)


def _check_against_weights(
    repo: HubRepo, card: ModelCard, tensors: dict[str, TensorInfo] | None = None
) -> None:
    """Refuse a config whose architecture does not match the stored tensors (a config that lies); `tensors`:
    the ones the card describes, where that is not all of the repository's (a multimodal language model)."""
    stored = sum(t.numel for t in (repo.tensors if tensors is None else tensors).values())
    if not stored:
        return
    built = card.params - card.stored_extra_params
    if abs(stored - built) > MAX_MISMATCH * max(stored, built):
        raise HubModelError(
            repo.repo_id,
            f"{repo.repo_id}: config.json describes {built:,} parameters but the safetensors files hold "
            f"{stored:,}, so the config does not describe these weights",
            _lying_hint(repo.repo_id),
        )


def _lying_hint(repo_id: str) -> str:
    return (
        f"Nothing was cached. Check {repo_id}'s config.json on the Hub (or ask its authors); to plan from a "
        "corrected copy, download the folder, fix config.json and run `berth catalog add FOLDER`"
    )
