"""The network edge of the Hub on demand: read a repository's model info, config.json, tokenizer config,
safetensors headers and GGUF header through huggingface_hub (never the weights), derive its entry
(registry.hub_card) and cache it (registry.hub_cache). huggingface_hub is imported only when a call needs it.

Settings are read from the environment at call time: HF_ENDPOINT (the Hub's address), HF_HUB_OFFLINE (use only
cached entries), BERTH_HUB_TIMEOUT (seconds to wait for each answer, default 10), HF_TOKEN (huggingface_hub's own).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import BerthError, short_text
from registry.gguf_header import HeaderTooShort, NotGgufError, parse_gguf_header
from registry.hub_cache import read_entry, write_entry
from registry.hub_card import (
    HubEntry,
    HubFile,
    HubRepo,
    RepoRef,
    entry_from_repo,
    needs_remote_code,
    parse_repo_ref,
)
from registry.hub_errors import (
    GatedRepoError,
    HubError,
    HubModelError,
    HubOfflineError,
    HubUnreachableError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from registry.hub_retry import retry_after_s, with_retries
from registry.importer import TensorInfo

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT_S = 10.0
#: Most bytes fetched to read one GGUF header (a 256k-token vocabulary takes a few MB).
MAX_GGUF_HEADER_BYTES = 64 << 20
#: Most safetensors shards whose headers are read for one repository.
MAX_SHARDS = 400
#: Safetensors headers read at once (a 163-shard repository is 163 range requests).
HEADER_THREADS = 8
#: Most bytes of config.json / tokenizer_config.json / an index read.
MAX_JSON_BYTES = 32 << 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HubSettings:
    """How to reach the Hub, read from the environment when a command runs."""

    endpoint: str = DEFAULT_ENDPOINT
    timeout_s: float = DEFAULT_TIMEOUT_S
    offline: bool = False
    hf_cache: Path | None = None
    """Where huggingface_hub keeps the small files it downloads (the user's usual Hugging Face cache)."""


def settings_from_env(environ: dict[str, str] | None = None) -> HubSettings:
    """HubSettings from HF_ENDPOINT, HF_HUB_OFFLINE, BERTH_HUB_TIMEOUT and the Hugging Face cache variables."""
    env = dict(os.environ if environ is None else environ)
    try:
        timeout = float(env.get("BERTH_HUB_TIMEOUT") or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    offline = (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }
    return HubSettings(
        endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
        timeout_s=timeout if timeout > 0 else DEFAULT_TIMEOUT_S,
        offline=offline,
        hf_cache=_hf_cache(env),
    )


def _hf_cache(env: dict[str, str]) -> Path:
    """The Hugging Face hub cache as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface" / "hub"


def hub_entry(
    text: str,
    settings: HubSettings | None = None,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
) -> HubEntry:
    """The entry for `owner/name[@revision]`: the cached one when it is for the revision the Hub names now (or
    when offline), else read from the Hub, derived, and cached. Nothing is cached when anything fails."""
    ref = parse_repo_ref(text)
    settings = settings or settings_from_env()
    say = progress or (lambda _message: None)
    cached = read_entry(ref)
    if settings.offline:
        if cached is None:
            raise HubOfflineError(
                ref.repo_id,
                f"{ref.text} is not in the catalog and HF_HUB_OFFLINE is set, and Berth has not read it from the "
                "Hub before",
                "Run the command once online (unset HF_HUB_OFFLINE) so Berth can read and cache its entry, or "
                "pick a catalog model (`berth list`)",
            )
        return cached
    say(f"Reading {ref.text} from {settings.endpoint} (config and safetensors headers, no weights)")
    known = cached.card.revision if cached and (trust_remote_code or not cached.card.remote_code) else None
    repo = read_repo(ref, settings, say, known_sha=known, trust_remote_code=trust_remote_code)
    if repo is None and cached is not None:
        return cached
    assert repo is not None
    entry = entry_from_repo(repo, ref.revision, trust_remote_code)
    write_entry(ref, entry)
    return entry


def read_repo(
    ref: RepoRef,
    settings: HubSettings,
    say: Progress,
    known_sha: str | None = None,
    trust_remote_code: bool = False,
) -> HubRepo | None:
    """Everything Berth needs from one revision of a repository; None when it resolves to `known_sha` (the
    cached entry is current)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=settings.endpoint)
    with hub_errors(ref, settings):
        info = with_retries(
            lambda: api.model_info(
                ref.repo_id, revision=ref.revision, files_metadata=True, timeout=settings.timeout_s
            ),
            settings.timeout_s,
        )
    sha = str(info.sha or ref.revision or "")
    if known_sha and sha == known_sha:
        return None
    files = tuple(HubFile(s.rfilename, s.size) for s in info.siblings or ())
    names = {f.name for f in files}
    pinned = RepoRef(ref.repo_id, sha or ref.revision)
    config = _json_file(api, pinned, "config.json", settings) if "config.json" in names else None
    tokenizer = (
        _json_file(api, pinned, "tokenizer_config.json", settings)
        if "tokenizer_config.json" in names
        else None
    )
    chat = bool(tokenizer and tokenizer.get("chat_template")) or "chat_template.jinja" in names
    tensors = _safetensors_tensors(api, pinned, names, settings, say) if config is not None else {}
    code_folder = None
    if config is not None and trust_remote_code and needs_remote_code(config):
        say(f"Downloading {ref.repo_id}'s Python files (--trust-remote-code)")
        code_folder = _code_folder(
            api, pinned, sorted(n for n in names if n.endswith(".py") and "/" not in n), settings
        )
    gguf_name = _first_gguf(files) if config is None else None
    gguf = _gguf_header(api, pinned, gguf_name, settings, say) if gguf_name else None
    card_data = info.card_data
    license_name = card_data.get("license") if card_data is not None else None
    return HubRepo(
        repo_id=ref.repo_id,
        sha=sha or "unknown",
        files=files,
        gated=bool(info.gated),
        license=str(license_name) if isinstance(license_name, str) else None,
        pipeline_tag=info.pipeline_tag,
        config=config,
        chat_template=chat,
        tensors=tensors,
        gguf=gguf,
        gguf_file=gguf_name,
        code_folder=code_folder,
    )


def _code_folder(api: Any, ref: RepoRef, code_files: list[str], settings: HubSettings) -> Path:
    """The snapshot folder holding config.json and the repository's Python files (for transformers)."""
    folder = None
    for filename in ["config.json", *code_files]:
        folder = _download(api, ref, filename, settings).parent
    assert folder is not None
    return folder


def _download(api: Any, ref: RepoRef, filename: str, settings: HubSettings) -> Path:
    """One file of the repository at its pinned revision, downloaded into the Hugging Face cache."""
    with hub_errors(ref, settings):
        return Path(
            api.hf_hub_download(
                ref.repo_id,
                filename,
                revision=ref.revision,
                cache_dir=settings.hf_cache,
                etag_timeout=settings.timeout_s,
            )
        )


def _json_file(api: Any, ref: RepoRef, filename: str, settings: HubSettings) -> dict[str, Any]:
    """A small JSON file of the repository (config.json, tokenizer_config.json, a safetensors index), read."""
    try:
        text = _small_file(api, ref, filename, settings)
        if text is None:
            raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
        data = json.loads(text)
    except ValueError as error:
        raise HubModelError(
            ref.repo_id,
            f"{ref.repo_id}'s {filename} is not readable JSON ({short_text(str(error), 120)})",
            "Nothing was cached. Check the file on the Hub",
        ) from None
    if not isinstance(data, dict):
        raise HubModelError(
            ref.repo_id, f"{ref.repo_id}'s {filename} is not a JSON object", "Nothing was cached"
        )
    return data


def _small_file(api: Any, ref: RepoRef, filename: str, settings: HubSettings) -> bytes | None:
    """A file of the repository at its pinned revision, or None past MAX_JSON_BYTES: one GET through
    huggingface_hub's session with Berth's timeout. Not hf_hub_download: when its first HEAD fails (a Hub that
    stops answering after the model info) and nothing is cached, it asks 5 more times, 60 s each, with pauses."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(ref.repo_id, filename, revision=ref.revision, endpoint=api.endpoint)

    def read() -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        with get_session().stream(
            "GET", url, headers=build_hf_headers(), timeout=settings.timeout_s
        ) as response:
            hf_raise_for_status(response)
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_JSON_BYTES:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    with hub_errors(ref, settings):
        return with_retries(read, settings.timeout_s)


def _safetensors_tensors(
    api: Any, ref: RepoRef, names: set[str], settings: HubSettings, say: Progress
) -> dict[str, TensorInfo]:
    """Every tensor's dtype and shape from the safetensors headers (HTTP range requests; no weights)."""
    if "model.safetensors" in names:
        shards = ["model.safetensors"]
    elif "model.safetensors.index.json" in names:
        index = _json_file(api, ref, "model.safetensors.index.json", settings)
        weight_map = index.get("weight_map")
        shards = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        if not shards or len(shards) > MAX_SHARDS or not all(isinstance(s, str) for s in shards):
            raise HubModelError(ref.repo_id, f"{ref.repo_id}'s safetensors index names no usable shards", "")
    else:
        return {}

    def header(shard: str) -> Any:
        with hub_errors(ref, settings):
            return with_retries(
                lambda: api.parse_safetensors_file_metadata(
                    ref.repo_id, shard, revision=ref.revision, timeout=settings.timeout_s
                ),
                settings.timeout_s,
            )

    tensors: dict[str, TensorInfo] = {}
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        for number, (shard, meta) in enumerate(zip(shards, pool.map(header, shards), strict=True), 1):
            if len(shards) > 1:
                say(f"Read safetensors header {number}/{len(shards)}: {shard}")
            for name, info in meta.tensors.items():
                tensors[name] = TensorInfo(str(info.dtype), tuple(int(n) for n in info.shape))
    return tensors


def _first_gguf(files: tuple[HubFile, ...]) -> str | None:
    """The GGUF file whose header describes the repository (all quantizations share the architecture)."""
    ggufs = sorted(f.name for f in files if f.name.endswith(".gguf") and "mmproj" not in f.name.lower())
    return ggufs[0] if ggufs else None


def _gguf_header(api: Any, ref: RepoRef, filename: str, settings: HubSettings, say: Progress) -> Any:
    """A GGUF file's header, read with growing range requests until it is complete."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    say(f"Reading the GGUF header of {filename}")
    url = hf_hub_url(ref.repo_id, filename, revision=ref.revision, endpoint=api.endpoint)
    size = 1 << 20
    while True:

        def ranged(wanted: int = size) -> Any:
            response = get_session().get(
                url,
                headers={**build_hf_headers(), "range": f"bytes=0-{wanted - 1}"},
                timeout=settings.timeout_s,
                follow_redirects=True,
            )
            hf_raise_for_status(response)
            return response

        with hub_errors(ref, settings):
            response = with_retries(ranged, settings.timeout_s)
        data = response.content
        try:
            return parse_gguf_header(data)
        except HeaderTooShort as short:
            if len(data) < size or size >= MAX_GGUF_HEADER_BYTES:
                raise HubModelError(
                    ref.repo_id,
                    f"{ref.repo_id}/{filename}: the GGUF header is cut short",
                    "Nothing was cached",
                ) from None
            size = min(max(size * 4, short.needed), MAX_GGUF_HEADER_BYTES)
        except NotGgufError as error:
            raise HubModelError(
                ref.repo_id, f"{ref.repo_id}/{filename} is not a GGUF file ({error})", ""
            ) from None


@contextmanager
def hub_errors(ref: RepoRef, settings: HubSettings) -> Iterator[None]:
    """huggingface_hub's and httpx's errors as Berth's one-paragraph Hub errors."""
    import httpx2 as httpx
    from huggingface_hub import errors as hf

    try:
        yield
    except BerthError:
        raise
    except hf.GatedRepoError:
        raise GatedRepoError(
            ref.repo_id,
            f"{ref.repo_id} is gated: its files can be read only after accepting its terms on the Hub",
            f"Accept them at https://huggingface.co/{ref.repo_id} while logged in, then log in here "
            "(`hf auth login`, or set HF_TOKEN) and run the command again",
        ) from None
    except hf.RevisionNotFoundError:
        raise RevisionNotFoundError(
            ref.repo_id,
            f"{ref.repo_id} has no revision '{short_text(ref.revision or 'main', 80)}'",
            f"Give a branch, tag or commit that exists (see https://huggingface.co/{ref.repo_id}/commits), or "
            f"leave out @REVISION for the default branch",
        ) from None
    except hf.RepositoryNotFoundError:
        raise RepoNotFoundError(
            ref.repo_id,
            f"the Hugging Face Hub has no repository {ref.repo_id} (or it is private and your token cannot see it)",
            "Check the spelling (search with `berth list --hub WORDS`); for a private repository log in with "
            "`hf auth login` or set HF_TOKEN",
        ) from None
    except hf.HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            raise GatedRepoError(
                ref.repo_id,
                f"the Hub refused access to {ref.repo_id} (HTTP {status})",
                "Log in with `hf auth login` or set HF_TOKEN to a token that can read it, then run the command again",
            ) from None
        if status == 429:
            asked = retry_after_s(error)
            later = f" and asks to wait {asked:g} s" if asked is not None else ""
            raise HubUnreachableError(
                ref.repo_id,
                f"the Hub is limiting requests from this machine (HTTP 429{later}) while reading {ref.repo_id}; "
                "Berth asked again and was refused each time",
                "Wait and run the command again; logged-in requests get higher limits (`hf auth login`, or set "
                "HF_TOKEN), and HF_HUB_OFFLINE=1 uses entries read before",
            ) from None
        raise HubUnreachableError(
            ref.repo_id,
            f"the Hub answered HTTP {status} for {ref.repo_id}",
            "Try again later; catalog models still work (`berth list`), and HF_HUB_OFFLINE=1 uses entries read before",
        ) from None
    except (
        hf.OfflineModeIsEnabled,
        httpx.TimeoutException,
        httpx.TransportError,
        ConnectionError,
        TimeoutError,
    ) as error:
        raise unreachable_error(
            ref, settings, error, timed_out=isinstance(error, httpx.TimeoutException)
        ) from None
    except OSError as error:
        raise HubError(
            ref.repo_id,
            f"cannot write {ref.repo_id}'s files into the Hugging Face cache at {settings.hf_cache} "
            f"({error.strerror or error})",
            "Free some space there, or point HF_HUB_CACHE at a folder you can write",
        ) from None


def unreachable_error(
    ref: RepoRef, settings: HubSettings, error: BaseException, timed_out: bool
) -> HubUnreachableError:
    """The paragraph for a Hub that did not answer in time (raise the wait) or could not be connected to at all
    (connection refused, a host name that does not resolve, no network: waiting longer would not help)."""
    where = f"the Hub at {settings.endpoint}"
    if timed_out or isinstance(error, TimeoutError):
        return HubUnreachableError(
            ref.repo_id,
            f"{where} did not answer within {settings.timeout_s:g} s while reading {ref.repo_id}",
            "Check your connection (or HF_ENDPOINT), raise the wait with BERTH_HUB_TIMEOUT=SECONDS, or work "
            "offline with HF_HUB_OFFLINE=1 from entries read before",
        )
    return HubUnreachableError(
        ref.repo_id,
        f"{where} could not be reached ({_why_unreachable(error)}) while reading {ref.repo_id}",
        "Check your connection and HF_ENDPOINT (unset it for https://huggingface.co), or work offline with "
        "HF_HUB_OFFLINE=1 from entries read before",
    )


#: How getaddrinfo's failures read on Linux, macOS and Windows (httpx keeps the OSError's text only).
_NAME_NOT_RESOLVED = ("name or service", "nodename", "name resolution", "getaddrinfo", "no address", "11001")


def _why_unreachable(error: BaseException) -> str:
    """A few words on why a connection failed, from the socket error's text (httpx keeps only its text)."""
    text = str(error)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if any(words in lowered for words in _NAME_NOT_RESOLVED):
        return "its host name does not resolve"
    if "unreachable" in lowered:
        return "network unreachable"
    if "offline" in lowered:
        return "offline mode is on"
    return short_text(text, 100) or type(error).__name__


@dataclass(frozen=True)
class HubHit:
    """One repository a Hub search found."""

    repo_id: str
    downloads: int
    gated: bool
    pipeline_tag: str | None


#: Most repositories one search lists (each one costs a few requests to plan).
MAX_SEARCH_RESULTS = 200


def search_hub(query: str, limit: int, settings: HubSettings | None = None) -> list[HubHit]:
    """Text-generation repositories matching `query`, most downloaded first, at most `limit` (one page)."""
    settings = settings or settings_from_env()
    ref = RepoRef(f"the search for '{short_text(query, 60)}'")  # how the errors below name what was asked
    if settings.offline:
        raise HubOfflineError(
            ref.repo_id,
            f"searching the Hub for '{short_text(query, 60)}' needs the Hub, and HF_HUB_OFFLINE is set",
            "Unset HF_HUB_OFFLINE to search, or list the catalog with `berth list --search TEXT`",
        )
    bounded = max(1, min(limit, MAX_SEARCH_RESULTS))
    with hub_errors(ref, settings):
        found = with_retries(lambda: _search_page(query, bounded, settings), settings.timeout_s)
    hits = [_hit(item) for item in found if isinstance(item, dict)]
    return [hit for hit in hits if hit is not None][:bounded]


def _search_page(query: str, limit: int, settings: HubSettings) -> Any:
    """The first page of the Hub's model search (`GET /api/models`, the request `HfApi.list_models` sends), asked
    once with Berth's timeout through huggingface_hub's own session (its headers, token, proxies and client
    factory). Not `list_models` itself: it sends no timeout (a Hub that accepts but never answers is waited for
    forever) and retries a failed connection 5 times with 1+2+4+8+8 s pauses, so an unreachable Hub took 24 s."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    params: dict[str, Any] = {"pipeline_tag": "text-generation", "sort": "downloads", "limit": limit}
    if query:
        params["search"] = query
    response = get_session().get(
        f"{settings.endpoint}/api/models",
        params=params,
        headers=build_hf_headers(),
        timeout=settings.timeout_s,
    )
    hf_raise_for_status(response)
    try:
        found = response.json()
    except ValueError:
        found = None
    if not isinstance(found, list):
        raise HubError(
            f"the search for '{short_text(query, 60)}'",
            f"{settings.endpoint}/api/models did not answer with a list of models; HF_ENDPOINT may not point at a "
            "Hugging Face Hub",
            "Check HF_ENDPOINT (unset it for https://huggingface.co)",
        )
    return found


def _hit(item: dict[str, Any]) -> HubHit | None:
    """One search result as a HubHit (None without a repository id)."""
    repo_id = item.get("id") or item.get("modelId")
    if not isinstance(repo_id, str) or not repo_id:
        return None
    downloads = item.get("downloads")
    tag = item.get("pipeline_tag")
    return HubHit(
        repo_id,
        downloads if isinstance(downloads, int) else 0,
        bool(item.get("gated")),
        tag if isinstance(tag, str) else None,
    )
