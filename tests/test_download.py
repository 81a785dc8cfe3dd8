"""Which files a launch fetches from the Hub, offline behaviour, and Hub errors turned into next steps."""

from __future__ import annotations

import pytest

from launcher.run.download import (
    RepoFile,
    cached_snapshot,
    fetch,
    is_offline,
    plan_download,
    select_files,
    translate_hub_error,
)
from launcher.run.errors import DownloadError, GatedModelError, UnsafeWeightsError

TOKENIZER = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def files(*names: str) -> list[RepoFile]:
    return [RepoFile(n, 1000) for n in names]


def test_safetensors_only_never_both_copies():
    repo = files(
        "config.json",
        "generation_config.json",
        *TOKENIZER,
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "README.md",
        "onnx/model.onnx",
        ".gitattributes",
    )
    chosen = select_files(repo, "org/m")
    assert chosen.weight_format == "safetensors"
    assert set(chosen.names) == {"config.json", "generation_config.json", *TOKENIZER, "model.safetensors"}
    assert {"pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"} <= set(chosen.skipped)
    assert chosen.total_bytes == 1000 * len(chosen.names)


def test_shards_with_index_and_mistral_consolidated_left_out():
    repo = files(
        "config.json",
        "tokenizer.model",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "consolidated.safetensors",
        "params.json",
        "original/consolidated.00.pth",
    )
    chosen = select_files(repo, "mistralai/m")
    assert set(chosen.names) == {
        "config.json",
        "tokenizer.model",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    }
    assert "consolidated.safetensors" in chosen.skipped


def test_pickle_only_needs_permission():
    repo = files("config.json", "vocab.json", "merges.txt", "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError) as caught:
        select_files(repo, "old/model")
    assert caught.value.files == ["pytorch_model.bin"]
    assert "--allow-pickle" in caught.value.hint
    chosen = select_files(repo, "old/model", allow_pickle=True)
    assert chosen.weight_format == "pickle" and "pytorch_model.bin" in chosen.names


def test_remote_code_files_only_when_trusted():
    repo = files("config.json", "model.safetensors", "modeling_custom.py", "configuration_custom.py")
    assert not any(n.endswith(".py") for n in select_files(repo).names)
    assert {"modeling_custom.py", "configuration_custom.py"} <= set(
        select_files(repo, trust_remote_code=True).names
    )


def test_no_loadable_weights():
    with pytest.raises(DownloadError, match="no weights"):
        select_files(files("config.json", "model.gguf"), "org/m")


def _fake_cache(root, repo_id, names, commit="0123456789abcdef0123456789abcdef01234567"):
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in names:
        (snapshot / name).write_text("{}")
    return snapshot


def test_offline_uses_the_cache_and_says_when_it_is_missing(catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert is_offline()
    card = catalog.get("openai-community/gpt2")
    with pytest.raises(DownloadError) as caught:
        plan_download(card)
    assert caught.value.offline and "HF_HUB_OFFLINE" in caught.value.message
    snapshot = _fake_cache(
        tmp_path, card.id, ["config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin"]
    )
    assert cached_snapshot(card) == snapshot
    planned = plan_download(card)
    assert planned.offline and set(planned.cached) == {"config.json", "tokenizer.json", "model.safetensors"}
    assert planned.bytes_to_download == 0
    folder, selection = fetch(card)
    assert folder == snapshot and "pytorch_model.bin" not in selection.names


def test_gated_and_missing_repositories_say_how_to_log_in(catalog, monkeypatch, tmp_path):
    import httpx2
    from huggingface_hub import errors as hub

    def response(status: int) -> httpx2.Response:
        return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))

    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    card = catalog.get("openai-community/gpt2")
    gated = translate_hub_error(card, hub.GatedRepoError("403 gated", response=response(403)))
    assert isinstance(gated, GatedModelError) and not gated.logged_in
    assert "hf auth login" in gated.hint and f"https://huggingface.co/{card.id}" in gated.hint
    missing = translate_hub_error(card, hub.RepositoryNotFoundError("404", response=response(404)))
    assert isinstance(missing, GatedModelError)  # without a token a private/gated repo looks missing
    revision = translate_hub_error(card, hub.RevisionNotFoundError("404", response=response(404)))
    assert isinstance(revision, DownloadError) and "revision" in revision.message
    network = translate_hub_error(card, OSError("No space left on device"))
    assert isinstance(network, DownloadError) and "disk space" in network.hint


def test_no_network_says_to_check_the_connection(catalog):
    from launcher.run.download import translate_hub_error

    # huggingface_hub raises its HTTP client's transport errors as they are (httpx, or httpx2 in hub 2.x).
    transport = type("TransportError", (Exception,), {"__module__": "httpx2"})
    connect = type("ConnectError", (transport,), {"__module__": "httpx2"})
    card = catalog.get("h2oai/h2o-danube-1.8b-chat")
    error = translate_hub_error(card, connect("[Errno -2] Name or service not known"))
    assert "cannot reach the Hugging Face Hub" in str(error.message)
    assert "network" in error.hint
