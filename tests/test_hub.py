"""Hub on demand against a real HTTP server on 127.0.0.1 (tests/hub_server.py): huggingface_hub talks real HTTP
to it through HF_ENDPOINT; nothing in huggingface_hub is replaced. The fixtures are published config.json files,
safetensors headers with the published checkpoints' tensor names, and the real SmolLM2 GGUF file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hub_server import (
    DATA,
    FakeRepo,
    HubServer,
    bert_tensors,
    deepseek_v3_tensors,
    llama_like_tensors,
    olmoe_tensors,
    safetensors_repo,
    use_hub,
)

from bench._common import smollm2_gguf_path
from registry.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
CPU = "cpu,ram=64GB,disk=2000GB"
GGUF_REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"

#: Repositories whose published totals the shipped catalog records (the Hub's safetensors totals).
PUBLISHED = [
    "Qwen/Qwen2.5-0.5B-Instruct",  # dense
    "mistralai/Mistral-7B-v0.1",  # sliding window
    "mistralai/Mixtral-8x7B-Instruct-v0.1",  # MoE
    "google-bert/bert-base-uncased",  # encoder
]


def _qwen(config_edit: dict | None = None, name: str = "Qwen/Qwen2.5-0.5B-Instruct", **kwargs) -> FakeRepo:
    repo = safetensors_repo(
        "Qwen/Qwen2.5-0.5B-Instruct", lambda c: llama_like_tensors(c, qkv_bias=True), **kwargs
    )
    repo.repo_id = name
    if config_edit is not None:
        config = json.loads(repo.files["config.json"]) | config_edit
        repo.files["config.json"] = json.dumps(config).encode()
    return repo


@pytest.fixture(scope="session")
def hub() -> Iterator[HubServer]:
    server = HubServer()
    server.add(_qwen(downloads=900, revisions=("main", "v1.0")))
    server.add(safetensors_repo("mistralai/Mistral-7B-v0.1", llama_like_tensors, shards=2, downloads=800))
    server.add(
        safetensors_repo("mistralai/Mixtral-8x7B-Instruct-v0.1", llama_like_tensors, shards=3, downloads=700)
    )
    server.add(safetensors_repo("unsloth/DeepSeek-V3-bf16", deepseek_v3_tensors, shards=4, downloads=600))
    server.add(safetensors_repo("google-bert/bert-base-uncased", bert_tensors, pipeline_tag="fill-mask"))
    server.add(safetensors_repo("allenai/OLMoE-1B-7B-0924", olmoe_tensors, shards=2, downloads=400))
    gguf = smollm2_gguf_path()
    if gguf is not None:
        server.add(
            FakeRepo(GGUF_REPO, files={gguf.name: gguf.read_bytes(), "README.md": b"# GGUF"}, downloads=500)
        )
    # Bad repositories: gated, slow, lying configs, repository code, a pre-quantized checkpoint
    server.add(_qwen(name="meta-llama/Gated-Model", gated=True))
    server.add(_qwen(name="slow/model", delay_s=3.0))
    server.add(_qwen({"num_attention_heads": 13}, name="liar/uneven-heads"))
    server.add(_qwen({"num_hidden_layers": 0}, name="liar/zero-layers"))
    server.add(_qwen({"num_hidden_layers": 48}, name="liar/more-layers-than-weights"))
    server.add(
        _qwen(
            {"model_type": "my_arch", "auto_map": {"AutoModelForCausalLM": "modeling_my.MyForCausalLM"}},
            name="custom/remote-code",
        )
    )
    deepseek_fp8 = safetensors_repo("unsloth/DeepSeek-V3-bf16", deepseek_v3_tensors, shards=4)
    config = json.loads(deepseek_fp8.files["config.json"])
    config["quantization_config"] = {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    }
    deepseek_fp8.files["config.json"] = json.dumps(config).encode()
    deepseek_fp8.repo_id = "deepseek-ai/DeepSeek-V3-fp8-copy"
    server.add(deepseek_fp8)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    """The shipped catalog's accelerators with one model, so every fixture repository is 'not in the catalog'."""
    raw = yaml.safe_load((ROOT / "catalog.yaml").read_text(encoding="utf-8"))
    raw["models"] = [m for m in raw["models"] if m["id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"]
    path = tmp_path / "small-catalog.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def online(hub: HubServer, small_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    use_hub(monkeypatch, hub.url, tmp_path / "hf-cache")
    monkeypatch.setenv("BERTH_CATALOG", str(small_catalog))
    return hub


def _cached(berth_home: Path) -> list[Path]:
    return sorted((berth_home / "cache" / "hub").rglob("*.json"))


def _one_paragraph(stderr: str) -> str:
    """The error paragraph (after any progress lines), checked to be one paragraph without a traceback."""
    assert "Error:" in stderr and "Traceback" not in stderr, stderr
    text = stderr[stderr.index("Error:") :].strip()
    assert "\n\n" not in text, stderr
    return " ".join(text.split())


@pytest.mark.parametrize("repo_id", PUBLISHED)
def test_published_totals_and_fields_match_the_verified_catalog(berth, online, catalog, repo_id):
    result = berth("show", repo_id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    model, verified = data["model"], catalog.get(repo_id)
    assert model["params"] == verified.params
    assert model.get("stored_extra_params", 0) == verified.stored_extra_params
    for field in ("num_layers", "hidden_size", "num_attention_heads", "vocab_size", "tie_word_embeddings"):
        assert model["architecture"][field] == getattr(verified.architecture, field), field
    assert verified.architecture.kv_heads == (
        model["architecture"].get("num_key_value_heads") or model["architecture"]["num_attention_heads"]
    )
    assert data["hub"]["revision"] == online.repos[repo_id].sha and data["hub"]["verified"] is False
    assert model["revision"] == online.repos[repo_id].sha


def test_moe_mla_and_sliding_window_fields(berth, online):
    mixtral = json.loads(berth("show", "mistralai/Mixtral-8x7B-Instruct-v0.1", "--json").stdout)["model"]
    assert (mixtral["architecture"]["num_experts"], mixtral["architecture"]["experts_per_token"]) == (8, 2)
    assert mixtral["active_params"] < mixtral["params"] // 3
    mistral = json.loads(berth("show", "mistralai/Mistral-7B-v0.1", "--json").stdout)["model"]
    assert mistral["architecture"]["sliding_window"] == 4096
    deepseek = json.loads(berth("show", "unsloth/DeepSeek-V3-bf16", "--json").stdout)
    arch = deepseek["model"]["architecture"]
    assert (arch["kv_lora_rank"], arch["qk_rope_head_dim"], arch["num_experts"]) == (512, 64, 256)
    # MLA caches the latent (512) plus the rope key (64) per layer: 576 values x 61 layers x 2 bytes
    assert deepseek["kv_cache_per_token_bytes"] == 576 * 61 * 2
    # the routers' e_score_correction_bias (58 MoE layers x 256) is stored but transformers builds it as a buffer
    assert deepseek["model"]["stored_extra_params"] == 58 * 256


def test_gguf_only_repository(berth, online, smollm2_gguf):
    result = berth("show", GGUF_REPO)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "134,515,008" in text and "gguf" in text
    assert smollm2_gguf.name in text and "not verified by hand" in text
    data = json.loads(berth("show", GGUF_REPO, "--json").stdout)
    assert data["hub"]["gguf_files"] == [
        {"name": smollm2_gguf.name, "size_bytes": smollm2_gguf.stat().st_size}
    ]
    # only the header was read, not the 98 MB of weights
    assert all("SmolLM2" not in path or method == "GET" for method, path in online.requests)


def test_plan_says_where_the_entry_came_from_and_caches_it(berth, online, berth_home):
    result = berth("plan", "Qwen/Qwen2.5-0.5B-Instruct", "--hardware", CPU)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Hugging Face Hub" in text and "not verified by hand" in text
    assert online.repos["Qwen/Qwen2.5-0.5B-Instruct"].sha in text
    assert "Reading Qwen/Qwen2.5-0.5B-Instruct" in result.stderr
    [cached] = _cached(berth_home)
    assert (
        json.loads(cached.read_text())["card"]["revision"] == online.repos["Qwen/Qwen2.5-0.5B-Instruct"].sha
    )


def test_offline_uses_the_cached_entry_without_asking_the_hub(berth, online, berth_home, monkeypatch):
    first = berth("plan", "mistralai/Mistral-7B-v0.1", "--hardware", CPU, "--json")
    assert first.exit_code == 0
    asked = len(online.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    again = berth("plan", "mistralai/Mistral-7B-v0.1", "--hardware", CPU, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["required_bytes"] == json.loads(first.stdout)["required_bytes"]
    assert len(online.requests) == asked


def test_a_current_cached_entry_costs_one_request(berth, online):
    assert berth("show", "google-bert/bert-base-uncased", "--json").exit_code == 0
    asked = len(online.requests)
    assert berth("show", "google-bert/bert-base-uncased", "--json").exit_code == 0
    assert online.requests[asked:] == [("GET", "/api/models/google-bert/bert-base-uncased?blobs=true")]


def test_offline_without_a_cached_entry(berth, online, berth_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = berth("plan", "mistralai/Mixtral-8x7B-Instruct-v0.1", "--hardware", CPU)
    assert result.exit_code == 1
    text = _one_paragraph(result.stderr)
    assert "HF_HUB_OFFLINE" in text and "online" in text
    assert _cached(berth_home) == []


def test_gated_repository(berth, online, berth_home):
    result = berth("show", "meta-llama/Gated-Model")
    assert result.exit_code == 1
    text = _one_paragraph(result.stderr)
    assert "gated" in text and "hf auth login" in text and "HF_TOKEN" in text
    assert _cached(berth_home) == []


def test_missing_repository(berth, online, berth_home):
    result = berth("plan", "nobody/no-such-model", "--hardware", CPU)
    assert result.exit_code == 2
    text = _one_paragraph(result.stderr)
    assert "no repository nobody/no-such-model" in text and "berth list --hub" in text
    assert _cached(berth_home) == []


def test_missing_repository_close_to_a_catalog_entry_suggests_it(berth, online):
    result = berth("show", "HuggingFaceTB/SmolLM2-135M-Instruc")
    assert result.exit_code == 2
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in _one_paragraph(result.stderr)


def test_slow_hub_times_out_quickly(berth, online, berth_home, monkeypatch):
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "0.3")
    result = berth("show", "slow/model")
    assert result.exit_code == 1
    text = _one_paragraph(result.stderr)
    assert "did not answer within 0.3 s" in text and "BERTH_HUB_TIMEOUT" in text
    assert _cached(berth_home) == []


def test_unreachable_hub(berth, online, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    result = berth("show", "someone/anything")
    assert result.exit_code == 1
    assert "could not be reached" in _one_paragraph(result.stderr)


@pytest.mark.parametrize(
    "bad",
    ["org//name", "a/b/c", "org/na me", "org/.hidden", "org/name--x", "org/" + "x" * 97, "org/name@"],
)
def test_malformed_repository_ids(berth, online, berth_home, bad):
    asked = len(online.requests)
    result = berth("plan", bad, "--hardware", CPU)
    assert result.exit_code == 2, result.output
    text = _one_paragraph(result.stderr)
    assert "repository id" in text or "Unknown model" in text
    assert len(online.requests) == asked and _cached(berth_home) == []


def test_revision_that_does_not_exist(berth, online, berth_home):
    result = berth("show", "Qwen/Qwen2.5-0.5B-Instruct@no-such-branch")
    assert result.exit_code == 2
    assert "has no revision 'no-such-branch'" in _one_paragraph(result.stderr)
    assert _cached(berth_home) == []


def test_revision_that_exists_is_pinned_to_its_commit(berth, online, berth_home):
    data = json.loads(berth("show", "Qwen/Qwen2.5-0.5B-Instruct@v1.0", "--json").stdout)
    assert data["hub"]["requested_revision"] == "v1.0"
    assert data["hub"]["revision"] == online.repos["Qwen/Qwen2.5-0.5B-Instruct"].sha
    assert [p.name for p in _cached(berth_home)] == ["v1.0.json"]


@pytest.mark.parametrize(
    ("repo", "says"),
    [
        ("liar/uneven-heads", "does not divide hidden_size"),
        ("liar/zero-layers", "num_layers"),
        ("liar/more-layers-than-weights", "does not describe these weights"),
        ("deepseek-ai/DeepSeek-V3-fp8-copy", "pre-quantized"),
    ],
)
def test_configs_that_lie_are_refused_and_not_cached(berth, online, berth_home, repo, says):
    result = berth("plan", repo, "--hardware", CPU)
    assert result.exit_code == 2, result.output
    text = _one_paragraph(result.stderr)
    assert says in text and "Nothing was cached" in text
    assert _cached(berth_home) == []


def test_repository_code_is_refused_without_trust(berth, online, berth_home):
    result = berth("show", "custom/remote-code")
    assert result.exit_code == 2
    text = _one_paragraph(result.stderr)
    assert "--trust-remote-code" in text and "my_arch" in text
    assert _cached(berth_home) == []


def test_hub_plan_never_imports_torch(online, berth_home):
    code = (
        "import sys\n"
        "from launcher.cli import cli\n"
        "try:\n"
        "    cli(['plan', 'mistralai/Mistral-7B-v0.1', '--hardware', 'cpu,ram=64GB'], prog_name='berth',"
        " standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    import os

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert "not verified by hand" in out.stdout, out.stderr[-2000:]
    assert out.stdout.rstrip().endswith("HEAVY="), out.stdout[-500:]


def test_fixture_configs_are_the_catalogs_sources(catalog):
    """Each fixture config.json matches the verified catalog entry it was copied from."""
    for repo in PUBLISHED:
        config = json.loads((DATA / repo.replace("/", "--") / "config.json").read_text())
        card = catalog.get(repo)
        assert config["vocab_size"] == card.architecture.vocab_size
        assert config.get("num_hidden_layers") == card.architecture.num_layers
    deepseek = json.loads((DATA / "unsloth--DeepSeek-V3-bf16" / "config.json").read_text())
    assert deepseek["num_hidden_layers"] == catalog.get("deepseek-ai/DeepSeek-V3").architecture.num_layers
    assert (
        load_catalog(overlay=False).get("deepseek-ai/DeepSeek-V3").architecture.kv_lora_rank
        == deepseek["kv_lora_rank"]
    )


def test_list_hub_plans_each_repository_as_it_arrives(berth, online, smollm2_gguf):
    result = berth("list", "--hub", "", "--hardware", CPU, "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    body = [line for line in lines[2:] if line.strip() and not line.startswith((*"0123456789", "These"))]
    # text generation only (bert is fill-mask), most downloaded first, bounded by --limit
    assert [line.split()[0] for line in body] == [
        "Qwen/Qwen2.5-0.5B-Instruct",
        "mistralai/Mistral-7B-v0.1",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "unsloth/DeepSeek-V3-bf16",
        GGUF_REPO,
    ]  # OLMoE (400 downloads) is the sixth: --limit 5 stops before it
    assert "[1/5] Qwen/Qwen2.5-0.5B-Instruct" in result.stderr and "[5/5]" in result.stderr
    assert "see more with --limit 10" in result.stdout
    assert "not verified by hand" in result.stdout


def test_list_hub_json_reports_each_repository(berth, online):
    result = berth("list", "--hub", "Qwen", "--hardware", CPU, "--json")
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert [m["id"] for m in models] == ["Qwen/Qwen2.5-0.5B-Instruct"]
    [qwen] = models
    assert qwen["fits"] and qwen["params"] == 494032768 and qwen["verified"] is False
    assert qwen["revision"] == online.repos["Qwen/Qwen2.5-0.5B-Instruct"].sha


def test_list_hub_keeps_going_past_repositories_it_cannot_plan(berth, online, berth_home, monkeypatch):
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "1")
    result = berth("list", "--hub", "", "--hardware", CPU, "--json", "--limit", "50")
    assert result.exit_code == 0, result.output
    by_id = {m["id"]: m for m in json.loads(result.stdout)["models"]}
    assert by_id["meta-llama/Gated-Model"]["problem"] == "gated: log in"
    assert by_id["custom/remote-code"]["problem"] == "needs remote code"
    assert by_id["slow/model"]["problem"] == "Hub did not answer"
    assert by_id["mistralai/Mistral-7B-v0.1"]["fits"]
    cached = {p.parent.name for p in _cached(berth_home)}
    assert "meta-llama--Gated-Model" not in cached and "mistralai--Mistral-7B-v0.1" in cached


def test_list_hub_offline(berth, online, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = berth("list", "--hub", "qwen")
    assert result.exit_code == 1
    assert "berth list --search" in _one_paragraph(result.stderr)


def test_unknown_architecture_is_counted_on_the_meta_device(berth, online):
    """olmoe has no layout rules in Berth: transformers builds it on the meta device and the block tree it
    builds becomes the entry's layout; the count equals the published checkpoint's (6.92B)."""
    result = berth("show", "allenai/OLMoE-1B-7B-0924", "--json")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    assert model["params"] == 6_919_161_856 and model.get("stored_extra_params", 0) == 0
    # a token uses 8 of 64 experts: 16 layers x 64 experts x 3 x 1024 x 2048 weights, 7/8 of them idle
    assert (
        model["active_params"] == 6_919_161_856 - 16 * 64 * 3 * 1024 * 2048 * 7 // 8
    )  # 1.28B ("1.3B active")
    layout = model["measured_layout"]
    layers = [b for b in layout["blocks"] if b["role"] == "layer"]
    assert len(layers) == 16 and layout["no_split_class"] == "OlmoeDecoderLayer"
    assert "meta device" in layout["source"]
    plan = berth("plan", "allenai/OLMoE-1B-7B-0924", "--hardware", "1xh100", "--json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["devices"][0]["layers"] is not None


def test_trusted_repository_code_that_cannot_be_built_is_one_paragraph(berth, online, berth_home):
    result = berth("show", "custom/remote-code", "--trust-remote-code")
    assert result.exit_code == 2
    text = _one_paragraph(result.stderr)
    assert "my_arch" in text and "Nothing was cached" in text
    assert _cached(berth_home) == []


def test_launch_dry_run_of_a_hub_repository(berth, online):
    result = berth("launch", "Qwen/Qwen2.5-0.5B-Instruct", "--dry-run", "--hardware", CPU)
    assert result.exit_code == 0, result.output
    assert "not verified by hand" in result.stderr
    assert online.repos["Qwen/Qwen2.5-0.5B-Instruct"].sha in result.output


def test_catalog_add_reads_an_uncached_repository_from_the_hub(berth, online, berth_home):
    result = berth("catalog", "add", "mistralai/Mistral-7B-v0.1", "--alias", "m7")
    assert result.exit_code == 0, result.output
    overlay = yaml.safe_load((berth_home / "catalog.yaml").read_text())
    [entry] = overlay["models"]
    assert entry["revision"] == online.repos["mistralai/Mistral-7B-v0.1"].sha and entry["aliases"] == ["m7"]
    shown = berth("show", "m7", "--json")
    assert shown.exit_code == 0 and "hub" not in json.loads(shown.stdout)  # now a catalog (overlay) entry
    refused = berth("catalog", "add", "allenai/OLMoE-1B-7B-0924")
    assert refused.exit_code == 2 and "berth plan allenai/OLMoE-1B-7B-0924" in _one_paragraph(refused.stderr)


def test_a_damaged_cache_file_is_ignored(berth, online, berth_home, monkeypatch):
    assert berth("show", "mistralai/Mistral-7B-v0.1", "--json").exit_code == 0
    [cached] = _cached(berth_home)
    cached.write_text("{not json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = berth("show", "mistralai/Mistral-7B-v0.1")
    assert offline.exit_code == 1 and "HF_HUB_OFFLINE" in _one_paragraph(offline.stderr)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert berth("show", "mistralai/Mistral-7B-v0.1", "--json").exit_code == 0
    assert json.loads(cached.read_text())["card"]["id"] == "mistralai/Mistral-7B-v0.1"


def test_an_unwritable_hugging_face_cache_is_one_paragraph(berth, online, tmp_path, monkeypatch, berth_home):
    """Reading a repository writes nothing there (its JSON files are read with one request each); a trusted
    repository's own code is downloaded into it for transformers, and that is where it can fail."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HF_HUB_CACHE", str(blocker / "hub"))
    assert berth("show", "mistralai/Mistral-7B-v0.1").exit_code == 0
    result = berth("show", "custom/remote-code", "--trust-remote-code")
    assert result.exit_code == 1
    text = _one_paragraph(result.stderr)
    assert "Hugging Face cache" in text and "HF_HUB_CACHE" in text
    assert [p.parent.name for p in _cached(berth_home)] == ["mistralai--Mistral-7B-v0.1"]
