"""A real HTTP server on 127.0.0.1 that answers the paths huggingface_hub calls (model info, file resolve with
HEAD and Range, model search), serving the fixtures in tests/data/hub: real config.json files, real safetensors
headers built here with each architecture's published tensor names, and a real GGUF file. Nothing in
huggingface_hub is replaced: tests point HF_ENDPOINT at this server."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

DATA = Path(__file__).parent / "data" / "hub"
_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}

Shapes = dict[str, tuple[int, ...]]


def safetensors_header(shapes: Shapes, dtype: str = "BF16") -> tuple[bytes, int]:
    """A safetensors file's header (8-byte little-endian length + JSON, as the format defines) for tensors of
    these shapes, and the size of the whole file it would start (header plus data)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = _DTYPE_BYTES[dtype]
        for n in shape:
            size *= n
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + offset


# --- Tensor tables with the names the published checkpoints use -------------------------------------------


def llama_like_tensors(config: dict[str, Any], qkv_bias: bool = False) -> Shapes:
    """model.embed_tokens, model.layers.N.{self_attn,mlp,norms}, model.norm, lm_head (Llama, Mistral, Qwen2)."""
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads, kv = (
        config["num_attention_heads"],
        config.get("num_key_value_heads") or config["num_attention_heads"],
    )
    d = config.get("head_dim") or h // heads
    out: Shapes = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[p + "self_attn.q_proj.weight"] = (heads * d, h)
        out[p + "self_attn.k_proj.weight"] = (kv * d, h)
        out[p + "self_attn.v_proj.weight"] = (kv * d, h)
        if qkv_bias:
            out[p + "self_attn.q_proj.bias"] = (heads * d,)
            out[p + "self_attn.k_proj.bias"] = (kv * d,)
            out[p + "self_attn.v_proj.bias"] = (kv * d,)
        out[p + "self_attn.o_proj.weight"] = (h, heads * d)
        out.update(_ffn_or_experts(config, p, i, inter))
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
    out["model.norm.weight"] = (h,)
    if not config.get("tie_word_embeddings", False):
        out["lm_head.weight"] = (vocab, h)
    return out


def _ffn_or_experts(config: dict[str, Any], p: str, _layer: int, inter: int) -> Shapes:
    h = config["hidden_size"]
    experts = config.get("num_local_experts")
    if not experts:
        return {
            p + "mlp.gate_proj.weight": (inter, h),
            p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        }
    out: Shapes = {p + "block_sparse_moe.gate.weight": (experts, h)}
    for j in range(experts):
        e = f"{p}block_sparse_moe.experts.{j}."
        out[e + "w1.weight"] = (inter, h)
        out[e + "w2.weight"] = (h, inter)
        out[e + "w3.weight"] = (inter, h)
    return out


def deepseek_v3_tensors(config: dict[str, Any]) -> Shapes:
    """DeepSeek-V3's checkpoint names: MLA projections, dense then MoE layers (routed + shared experts and the
    router's e_score_correction_bias), in bf16 and without the multi-token-prediction layer."""
    h, vocab, heads = config["hidden_size"], config["vocab_size"], config["num_attention_heads"]
    q_rank, kv_rank = config["q_lora_rank"], config["kv_lora_rank"]
    nope, rope, v = config["qk_nope_head_dim"], config["qk_rope_head_dim"], config["v_head_dim"]
    moe_inter, experts = config["moe_intermediate_size"], config["n_routed_experts"]
    out: Shapes = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[p + "self_attn.q_a_proj.weight"] = (q_rank, h)
        out[p + "self_attn.q_a_layernorm.weight"] = (q_rank,)
        out[p + "self_attn.q_b_proj.weight"] = (heads * (nope + rope), q_rank)
        out[p + "self_attn.kv_a_proj_with_mqa.weight"] = (kv_rank + rope, h)
        out[p + "self_attn.kv_a_layernorm.weight"] = (kv_rank,)
        out[p + "self_attn.kv_b_proj.weight"] = (heads * (nope + v), kv_rank)
        out[p + "self_attn.o_proj.weight"] = (h, heads * v)
        if i < config["first_k_dense_replace"]:
            inter = config["intermediate_size"]
            out.update(_mlp(p + "mlp.", h, inter))
        else:
            out[p + "mlp.gate.weight"] = (experts, h)
            out[p + "mlp.gate.e_score_correction_bias"] = (experts,)
            for j in range(experts):
                out.update(_mlp(f"{p}mlp.experts.{j}.", h, moe_inter))
            out.update(_mlp(p + "mlp.shared_experts.", h, moe_inter * config["n_shared_experts"]))
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
    out["model.norm.weight"] = (h,)
    out["lm_head.weight"] = (vocab, h)
    return out


def olmoe_tensors(config: dict[str, Any]) -> Shapes:
    """OLMoE's checkpoint names: Llama-style attention with q_norm/k_norm over the whole width, a router and
    64 unfused experts per layer."""
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    out: Shapes = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"{p}self_attn.{proj}.weight"] = (h, h)
        out[p + "self_attn.q_norm.weight"] = (h,)
        out[p + "self_attn.k_norm.weight"] = (h,)
        out[p + "mlp.gate.weight"] = (config["num_experts"], h)
        for j in range(config["num_experts"]):
            out.update(_mlp(f"{p}mlp.experts.{j}.", h, inter))
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
    out["model.norm.weight"] = (h,)
    out["lm_head.weight"] = (vocab, h)
    return out


def _mlp(p: str, h: int, inter: int) -> Shapes:
    return {
        p + "gate_proj.weight": (inter, h),
        p + "up_proj.weight": (inter, h),
        p + "down_proj.weight": (h, inter),
    }


def bert_tensors(config: dict[str, Any]) -> Shapes:
    """bert-base-uncased's checkpoint (BertForPreTraining): embeddings, encoder, pooler, MLM and NSP heads."""
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    out: Shapes = {
        "bert.embeddings.word_embeddings.weight": (vocab, h),
        "bert.embeddings.position_embeddings.weight": (config["max_position_embeddings"], h),
        "bert.embeddings.token_type_embeddings.weight": (config["type_vocab_size"], h),
        "bert.embeddings.LayerNorm.weight": (h,),
        "bert.embeddings.LayerNorm.bias": (h,),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        for name in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ):
            out[f"{p}{name}.weight"] = (h, h)
            out[f"{p}{name}.bias"] = (h,)
        out[p + "intermediate.dense.weight"] = (inter, h)
        out[p + "intermediate.dense.bias"] = (inter,)
        out[p + "output.dense.weight"] = (h, inter)
        out[p + "output.dense.bias"] = (h,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            out[f"{p}{norm}.weight"] = (h,)
            out[f"{p}{norm}.bias"] = (h,)
    out.update(
        {
            "bert.pooler.dense.weight": (h, h),
            "bert.pooler.dense.bias": (h,),
            "cls.predictions.bias": (vocab,),
            "cls.predictions.transform.dense.weight": (h, h),
            "cls.predictions.transform.dense.bias": (h,),
            "cls.predictions.transform.LayerNorm.weight": (h,),
            "cls.predictions.transform.LayerNorm.bias": (h,),
            "cls.seq_relationship.weight": (2, h),
            "cls.seq_relationship.bias": (2,),
        }
    )
    return out


# --- Repositories and the server ------------------------------------------------------------------------------


@dataclass
class FakeRepo:
    """One repository the server serves: small files verbatim, big files as (prefix bytes, full size)."""

    repo_id: str
    files: dict[str, bytes] = field(default_factory=dict)
    big: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    gated: bool = False
    license: str | None = "apache-2.0"
    pipeline_tag: str | None = "text-generation"
    downloads: int = 0
    delay_s: float = 0.0
    """Seconds the server waits before answering anything about this repository (a slow Hub)."""
    files_delay_s: float = 0.0
    """Seconds it waits before answering for a file only (the model info comes at once: a Hub that stops
    answering halfway through reading a repository)."""
    revisions: tuple[str, ...] = ("main",)
    busy: list[tuple[int, str | None]] = field(default_factory=list)
    """Answers given before any real one, one per request about this repository: (status, Retry-After)."""
    files_busy: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    """The same for requests for one file, by name (the model info and other files are answered)."""

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.repo_id.encode()).hexdigest()

    def size(self, name: str) -> int | None:
        if name in self.files:
            return len(self.files[name])
        if name in self.big:
            return self.big[name][1]
        return None

    def read(self, name: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of a file, zeros after a big file's prefix."""
        if name in self.files:
            return self.files[name][start : end + 1]
        prefix, size = self.big[name]
        end = min(end, size - 1)
        head = prefix[start : end + 1]
        return head + bytes(max(end + 1 - start - len(head), 0))


def safetensors_repo(repo_id: str, shapes_of: Any, shards: int = 1, **kwargs: Any) -> FakeRepo:
    """A repository of a fixture config.json with safetensors headers from `shapes_of(config)`."""
    folder = DATA / repo_id.replace("/", "--")
    config_bytes = (folder / "config.json").read_bytes()
    repo = FakeRepo(repo_id, files={"config.json": config_bytes}, **kwargs)
    shapes = shapes_of(json.loads(config_bytes))
    if shards == 1:
        repo.big["model.safetensors"] = safetensors_header(shapes)
        return repo
    names = list(shapes)
    per = -(-len(names) // shards)
    weight_map = {}
    for k in range(shards):
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: shapes[n] for n in names[k * per : (k + 1) * per]}
        repo.big[shard] = safetensors_header(part)
        weight_map.update(dict.fromkeys(part, shard))
    repo.files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {}, "weight_map": weight_map}
    ).encode()
    return repo


def qwen_copy(name: str, model_type: str | None = None, **kwargs: Any) -> FakeRepo:
    """Qwen2.5-0.5B-Instruct's published config and tensor names under another repository name; with a
    `model_type` Berth has no layout rules for (and an auto_map), a repository that needs its own code."""
    repo = safetensors_repo(
        "Qwen/Qwen2.5-0.5B-Instruct", lambda c: llama_like_tensors(c, qkv_bias=True), **kwargs
    )
    repo.repo_id = name
    if model_type is not None:
        config = json.loads(repo.files["config.json"])
        config |= {
            "model_type": model_type,
            "auto_map": {"AutoModelForCausalLM": "modeling_my.MyForCausalLM"},
        }
        repo.files["config.json"] = json.dumps(config).encode()
    return repo


def meta_model_tensors(config: dict[str, Any], legacy_names: bool = False) -> Shapes:
    """The parameters transformers builds for `config` on the meta device (names and shapes as
    save_pretrained writes them: one name per tied weight). `legacy_names`: the names multimodal checkpoints
    saved before transformers 4.52 use (language_model.model.…, vision_tower.…, language_model.lm_head)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(hf_config)
    shapes = {name: tuple(param.shape) for name, param in model.named_parameters()}
    if not legacy_names:
        return shapes
    renames = (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower."),
        ("model.vision_model.", "vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("lm_head.", "language_model.lm_head."),
    )
    out: Shapes = {}
    for name, shape in shapes.items():
        new = next((new + name[len(old) :] for old, new in renames if name.startswith(old)), name)
        out[new] = shape
    return out


def safetensors_library_file(shapes: Shapes) -> tuple[bytes, int]:
    """A safetensors file written by the safetensors library itself (zeros in float16), kept as its header
    bytes and its full size (only the header is ever read)."""
    import numpy as np
    from safetensors.numpy import save

    data = save({name: np.zeros(shape, dtype=np.float16) for name, shape in shapes.items()})
    (length,) = struct.unpack("<Q", data[:8])
    return data[: 8 + length], len(data)


def multimodal_repo(repo_id: str, legacy_names: bool = False, **kwargs: Any) -> FakeRepo:
    """A multimodal repository: its fixture config.json and a safetensors file of the parameters
    transformers' ...ForConditionalGeneration builds for it, written by the safetensors library."""
    folder = DATA / repo_id.replace("/", "--")
    config_bytes = (folder / "config.json").read_bytes()
    repo = FakeRepo(repo_id, files={"config.json": config_bytes}, **kwargs)
    shapes = meta_model_tensors(json.loads(config_bytes), legacy_names)
    repo.big["model.safetensors"] = safetensors_library_file(shapes)
    return repo


def use_hub(monkeypatch: Any, url: str, hf_cache: Path, timeout_s: str = "5") -> None:
    """Point Berth and huggingface_hub at the Hub at `url` for one test: online, no token, a Hugging Face cache
    of the test's own, and a short wait."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", timeout_s)


class HubServer:
    """The server, its repositories by id, and every request path it saw."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.search_busy: list[tuple[int, str | None]] = []
        """Answers given to searches before a real one: (status, Retry-After)."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_INFO = re.compile(r"^/api/models/([^/]+/[^/]+?)(?:/revision/(.+))?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class _Server(ThreadingHTTPServer):
    hub: HubServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up before the answer was written (the timeout tests do so on purpose) is expected:
        socketserver would print its BrokenPipeError to stderr, where a later in-process `berth` call's captured
        stderr picks it up. Anything else is reported as usual."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        hub = self.server.hub  # type: ignore[attr-defined]
        url = urlparse(self.path)
        path = unquote(url.path)
        hub.requests.append((self.command, self.path))
        if path == "/api/models":
            if hub.search_busy:
                return self._busy(*hub.search_busy.pop(0))
            return self._search(parse_qs(url.query))
        info, resolve = _INFO.match(path), _RESOLVE.match(path)
        found = info or resolve
        repo = hub.repos.get(found.group(1)) if found else None
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if repo.busy:
            return self._busy(*repo.busy.pop(0))
        if resolve and repo.files_busy.get(resolve.group(3)):
            return self._busy(*repo.files_busy[resolve.group(3)].pop(0))
        if repo.delay_s:
            time.sleep(repo.delay_s)
        if resolve and repo.files_delay_s:
            time.sleep(repo.files_delay_s)
        if info:
            return self._info(repo, info.group(2))
        assert resolve is not None
        return self._file(repo, resolve.group(2), resolve.group(3), head)

    def _revision_ok(self, repo: FakeRepo, revision: str | None) -> bool:
        if revision in (None, *repo.revisions, repo.sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    def _info(self, repo: FakeRepo, revision: str | None) -> None:
        if not self._revision_ok(repo, revision):
            return
        names = sorted({*repo.files, *repo.big})
        self._json(
            {
                "_id": repo.sha[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.sha,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "downloads": repo.downloads,
                "likes": 0,
                "pipeline_tag": repo.pipeline_tag,
                "library_name": "transformers",
                "tags": ["transformers", "safetensors"],
                "cardData": {"license": repo.license} if repo.license else {},
                "siblings": [{"rfilename": n, "size": repo.size(n)} for n in names],
            }
        )

    def _file(self, repo: FakeRepo, revision: str, name: str, head: bool) -> None:
        if not self._revision_ok(repo, revision):
            return
        if repo.gated:
            return self._error(401, "GatedRepo", "Access to model is restricted. You must be authenticated.")
        size = repo.size(name)
        if size is None:
            return self._error(404, "EntryNotFound", f"{name} does not exist")
        start, end, status = 0, size - 1, 200
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:
            start, status = int(ranged.group(1)), 206
            end = min(int(ranged.group(2)) if ranged.group(2) else size - 1, size - 1)
        body = b"" if head else repo.read(name, start, end)
        self.send_response(status)
        self.send_header("X-Repo-Commit", repo.sha)
        self.send_header("ETag", f'"{hashlib.sha1((repo.sha + name).encode()).hexdigest()}"')
        self.send_header("Content-Length", str(size if head else len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _search(self, query: dict[str, list[str]]) -> None:
        hub = self.server.hub  # type: ignore[attr-defined]
        text = (query.get("search") or [""])[0].lower()
        tag = (query.get("pipeline_tag") or [""])[0] or None
        limit = int((query.get("limit") or ["1000"])[0])
        found = [
            r
            for r in hub.repos.values()
            if text in r.repo_id.lower() and (tag is None or r.pipeline_tag == tag)
        ]
        found.sort(key=lambda r: -r.downloads)
        self._json(
            [
                {
                    "id": r.repo_id,
                    "modelId": r.repo_id,
                    "downloads": r.downloads,
                    "likes": 0,
                    "pipeline_tag": r.pipeline_tag,
                    "gated": "manual" if r.gated else False,
                    "private": False,
                }
                for r in found[:limit]
            ]
        )

    def _json(self, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _busy(self, status: int, retry_after: str | None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._json_error(status, {"error": "busy"}, headers)

    def _error(self, status: int, code: str, message: str) -> None:
        self._json_error(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _json_error(self, status: int, value: Any, headers: dict[str, str]) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        for name, text in headers.items():
            self.send_header(name, text)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
