"""Fetch what a plan needs from the Hugging Face Hub into the user's usual cache: config, tokenizer, one weight copy.

`select_files` is pure: from a repository's file list it picks config and tokenizer files and exactly one copy
of the weights (safetensors shards; pickle only when allowed), never both. `fetch` lists the repository (or the
cached snapshot when offline), selects, and downloads through `snapshot_download` with only those files allowed:
resumable, progress in bytes with speed and ETA, HF_HUB_OFFLINE and HF_ENDPOINT respected (read when called),
gated repositories and missing tokens turned into messages that say how to log in. `fetch_gguf` downloads one
quant file of a GGUF repository (all parts of a split one) and nothing else.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.machine.probe import hf_cache_dir
from launcher.plan.gguf import part_names
from launcher.run.errors import DownloadError, GatedModelError, UnsafeWeightsError
from registry.hub_fetch import settings_from_env
from registry.schema import ModelCard

#: Model configuration files transformers reads.
CONFIG_FILES = ("config.json", "generation_config.json")
#: Tokenizer files of every tokenizer kind transformers supports (only those present are fetched).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "chat_template.jinja",
    "chat_template.json",
)
_SAFETENSORS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_PICKLE = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
_PICKLE_INDEX = "pytorch_model.bin.index.json"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: Weight files that are not transformers' own layout (Mistral's consolidated format, adapters, optimizers).
_NOT_MODEL_WEIGHTS = ("consolidated", "adapter_", "optimizer", "training_args", "rng_state", "scheduler")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository, with its size when known."""

    path: str
    size: int | None = None


@dataclass(frozen=True)
class FileSelection:
    """The files to fetch for one model, and the weight copies left out."""

    files: tuple[RepoFile, ...]
    weight_format: str
    """'safetensors' or 'pickle'."""
    skipped: tuple[str, ...] = ()
    """Other weight files in the repository that are not fetched (another format, another layout)."""

    @property
    def names(self) -> tuple[str, ...]:
        """File paths, in repository order."""
        return tuple(f.path for f in self.files)

    @property
    def total_bytes(self) -> int:
        """Bytes of the files whose size is known."""
        return sum(f.size or 0 for f in self.files)


@dataclass(frozen=True)
class DownloadPlan:
    """What `fetch` would do: the selection, and which of its files are already in the cache."""

    model_id: str
    revision: str | None
    selection: FileSelection
    cached: tuple[str, ...]
    offline: bool

    @property
    def bytes_to_download(self) -> int:
        """Bytes of the selected files not yet cached."""
        return sum(f.size or 0 for f in self.selection.files if f.path not in self.cached)


def select_files(
    files: Sequence[RepoFile],
    model_id: str = "",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> FileSelection:
    """Config, tokenizer files and one copy of the weights (safetensors first; pickle only if allowed)."""
    top = [f for f in files if "/" not in f.path]
    names = {f.path for f in top}
    wanted: set[str] = {n for n in (*CONFIG_FILES, *TOKENIZER_FILES) if n in names}
    if trust_remote_code:
        wanted |= {n for n in names if n.endswith(".py")}
    safetensors = {n for n in names if _SAFETENSORS.match(n)}
    if not safetensors:
        safetensors = {
            n for n in names if n.endswith(".safetensors") and not n.startswith(_NOT_MODEL_WEIGHTS)
        }
    pickle = {n for n in names if _PICKLE.match(n)}
    all_weights = {
        f.path
        for f in files
        if f.path.endswith((".safetensors", ".gguf", ".h5", ".msgpack", *_PICKLE_SUFFIXES))
    }
    if safetensors:
        weights = safetensors | ({_SAFETENSORS_INDEX} & names)
        fmt = "safetensors"
    elif pickle:
        if not allow_pickle:
            raise UnsafeWeightsError(model_id, sorted(pickle))
        weights = pickle | ({_PICKLE_INDEX} & names)
        fmt = "pickle"
    else:
        raise DownloadError(
            model_id,
            f"{model_id} has no weights transformers can load (model*.safetensors or pytorch_model*.bin)",
            hint="pick another repository, or pass a local folder or --gguf FILE",
        )
    wanted |= weights
    if "config.json" not in wanted:
        raise DownloadError(model_id, f"{model_id} has no config.json at the top of the repository")
    chosen = tuple(f for f in top if f.path in wanted)
    skipped = tuple(sorted(all_weights - weights))
    return FileSelection(chosen, fmt, skipped)


def is_offline(environ: Mapping[str, str] | None = None) -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read now rather than at import time."""
    env = os.environ if environ is None else environ
    return any(env.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def remote_files(card: ModelCard, environ: Mapping[str, str] | None = None) -> tuple[list[RepoFile], bool]:
    """The repository's files with sizes (the Hub, or the cached snapshot when offline), and whether offline."""
    if is_offline(environ):
        folder = cached_snapshot(card)
        if folder is None:
            raise _offline_error(card)
        return _folder_files(folder), True
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(card.id, revision=card.revision, files_metadata=True)
    except Exception as error:
        raise translate_hub_error(card, error) from error
    return [RepoFile(s.rfilename, s.size) for s in info.siblings or []], False


def plan_download(
    card: ModelCard,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    environ: Mapping[str, str] | None = None,
) -> DownloadPlan:
    """The files `fetch` would get for this card, and which are cached already (needs the Hub unless offline)."""
    files, offline = remote_files(card, environ)
    selection = select_files(files, card.id, allow_pickle, trust_remote_code)
    folder = cached_snapshot(card)
    cached = tuple(n for n in selection.names if folder is not None and (folder / n).is_file())
    return DownloadPlan(card.id, card.revision, selection, cached, offline)


def fetch(
    card: ModelCard,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    environ: Mapping[str, str] | None = None,
    tqdm_class: Any = None,
) -> tuple[Path, FileSelection]:
    """Download the selected files into the Hugging Face cache (resuming partial files); the snapshot folder."""
    plan = plan_download(card, allow_pickle, trust_remote_code, environ)
    from huggingface_hub import snapshot_download

    patterns = [glob.escape(name) for name in plan.selection.names]
    try:
        folder = snapshot_download(
            card.id,
            revision=card.revision,
            endpoint=settings_from_env().endpoint,
            allow_patterns=patterns,
            cache_dir=hub_cache(),
            local_files_only=plan.offline,
            tqdm_class=tqdm_class if tqdm_class is not None else download_bar_class(),
        )
    except Exception as error:
        raise translate_hub_error(card, error) from error
    path = Path(folder)
    missing = [n for n in plan.selection.names if not (path / n).is_file()]
    if missing:
        raise DownloadError(
            card.id,
            f"the cached copy of {card.id} lacks {', '.join(missing[:3])}",
            hint="unset HF_HUB_OFFLINE and run again to complete the download" if plan.offline else "",
            offline=plan.offline,
        )
    return path, plan.selection


def fetch_gguf(
    card: ModelCard, file_name: str, environ: Mapping[str, str] | None = None, tqdm_class: Any = None
) -> Path:
    """Download one quant file of a GGUF repository (every part of a split one: NAME-00001-of-00003.gguf and
    its siblings) into the Hugging Face cache at the card's revision, resuming partial files; the path of its
    first part."""
    from huggingface_hub import hf_hub_download

    paths = []
    for name in part_names(file_name):
        try:
            paths.append(
                hf_hub_download(
                    card.id,
                    name,
                    revision=card.revision,
                    endpoint=settings_from_env().endpoint,
                    cache_dir=hub_cache(),
                    local_files_only=is_offline(environ),
                    tqdm_class=tqdm_class if tqdm_class is not None else download_bar_class(),
                )
            )
        except Exception as error:
            raise translate_hub_error(card, error) from error
    return Path(paths[0])


def hub_cache() -> Path:
    """The user's Hugging Face cache, resolved from the environment now (as the probe reports it)."""
    return hf_cache_dir(os.environ)


def cached_snapshot(card: ModelCard) -> Path | None:
    """The cached snapshot folder for the card's revision (default branch when unpinned), if any."""
    repo = hub_cache() / f"models--{card.id.replace('/', '--')}"
    revision = card.revision or "main"
    commit = revision
    ref = repo / "refs" / revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
    folder = repo / "snapshots" / commit
    return folder if folder.is_dir() else None


def _folder_files(folder: Path) -> list[RepoFile]:
    return [
        RepoFile(str(p.relative_to(folder)), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def _offline_error(card: ModelCard) -> DownloadError:
    return DownloadError(
        card.id,
        f"HF_HUB_OFFLINE is set and {card.id}"
        + (f" at revision {card.revision}" if card.revision else "")
        + " is not in the Hugging Face cache",
        hint="unset HF_HUB_OFFLINE to download it once, or launch a local folder or --gguf FILE",
        offline=True,
    )


def translate_hub_error(card: ModelCard, error: BaseException) -> Exception:
    """A huggingface_hub exception as Berth's error with the next step (returned, for `raise ... from`)."""
    if isinstance(error, (DownloadError, GatedModelError, UnsafeWeightsError)):
        return error
    refused = _access_error(card, error)
    return refused if refused is not None else _transfer_error(card, error)


def _access_error(card: ModelCard, error: BaseException) -> Exception | None:
    """The Hub refusing or not knowing the repository or revision; None for any other error."""
    from huggingface_hub import errors as hub

    if isinstance(error, hub.GatedRepoError):
        return GatedModelError(card.id, logged_in=_has_token())
    if isinstance(error, hub.RevisionNotFoundError):
        return DownloadError(
            card.id,
            f"revision {card.revision!r} of {card.id} does not exist on the Hub",
            hint="fix `revision` in your catalog overlay (`berth catalog validate`)",
        )
    if isinstance(error, hub.RepositoryNotFoundError):
        if card.gated or not _has_token():
            return GatedModelError(card.id, logged_in=_has_token())
        return DownloadError(
            card.id,
            f"{card.id} was not found on the Hub, or your token cannot see it",
            hint="check the id with `berth show`, or log in with an account that has access (`hf auth login`)",
        )
    return None


def _transfer_error(card: ModelCard, error: BaseException) -> Exception:
    """Offline, unreachable, an HTTP error, or the disk: what failed while fetching, with what to check."""
    from huggingface_hub import errors as hub

    if isinstance(error, (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled)) and is_offline():
        return _offline_error(card)
    if isinstance(error, hub.LocalEntryNotFoundError) or _is_network_error(error):
        return DownloadError(
            card.id,
            f"cannot reach the Hugging Face Hub to fetch {card.id}, and it is not in the cache",
            hint="check the network connection (or a proxy: HTTPS_PROXY), then run again; partial files resume",
        )
    if isinstance(error, hub.HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            return GatedModelError(card.id, logged_in=_has_token())
        return DownloadError(card.id, f"the Hub answered an error for {card.id}: {error}")
    if isinstance(error, OSError):
        return DownloadError(
            card.id,
            f"fetching {card.id} failed: {error}",
            hint="check free disk space in the Hugging Face cache and the network, then run again",
        )
    return DownloadError(card.id, f"fetching {card.id} failed: {type(error).__name__}: {error}")


def _is_network_error(error: BaseException) -> bool:
    """A connection, DNS or timeout failure from the HTTP client under huggingface_hub (httpx or requests)."""
    for kind in type(error).__mro__:
        module = kind.__module__.split(".")[0]
        if module.startswith(("httpx", "httpcore")) and kind.__name__ in (
            "TransportError",
            "TimeoutException",
        ):
            return True
        if module in ("requests", "urllib3") and kind.__name__ in (
            "ConnectionError",
            "Timeout",
            "NewConnectionError",
        ):
            return True
    return False


def _has_token() -> bool:
    try:
        from huggingface_hub import get_token

        return get_token() is not None
    except Exception:  # a broken token file is the same as none for this message
        return False


def download_bar_class() -> Any:
    """huggingface_hub's progress bar redrawn with bytes, speed and time left (built on first use)."""
    global _BAR_CLASS
    if _BAR_CLASS is None:
        from huggingface_hub.utils import tqdm as hub_tqdm

        class DownloadBar(hub_tqdm):
            """Bytes downloaded of the total, speed, and time left; on stderr like every Berth progress line."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                if kwargs.get("unit") == "B":
                    kwargs["bar_format"] = (
                        "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{rate_fmt}, {remaining} left]"
                    )
                    kwargs.setdefault("unit_divisor", 1024)
                kwargs.setdefault("file", sys.stderr)
                super().__init__(*args, **kwargs)

        _BAR_CLASS = DownloadBar
    return _BAR_CLASS


_BAR_CLASS: Any = None
