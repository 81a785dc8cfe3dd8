"""GGUF files planned for llama.cpp: the header reader against the gguf package, the weights' split by layer, the
llama.cpp rungs (whole GPU, partial offload, CPU; f16 → q8_0 → q4_0 KV cache), the runtime choice and its
reasons, and the pick of a Hub repository's largest quant file that fits. Pure planning: no llama_cpp here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import GB, cpu_host

from launcher.machine.host import GpuInfo, HostSnapshot
from launcher.plan.emit import python_snippet
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.gguf import (
    pick_quant_file,
    quant_files,
    quantization_in_name,
    weights_from_header,
    weights_from_size,
)
from launcher.plan.ladder import make_plan
from launcher.plan.llamacpp import (
    LLAMACPP_LIBRARY_BYTES,
    PYTHON_PROCESS_BYTES,
    compute_bytes,
    context_bytes,
    kv_layer_bytes,
    padded_context,
)
from launcher.plan.report import plan_to_dict, render_plan
from launcher.plan.request import Plan, PlanRequest
from registry.errors import ImportModelError
from registry.gguf_file import read_gguf_header
from registry.importer import card_from_gguf
from registry.memory import runtime_bytes

MiB = 2**20
GiB = 2**30
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf):
    """(card, weights) of the real SmolLM2-135M-Instruct Q4_1 file."""
    return card_from_gguf(smollm2_gguf), weights_from_header(
        read_gguf_header(smollm2_gguf), smollm2_gguf.name
    )


def gpu_host(gpu_bytes: int, ram_bytes: int = 16 * GB) -> HostSnapshot:
    gpu = GpuInfo(
        index=0,
        name="NVIDIA Test GPU",
        total_bytes=gpu_bytes,
        free_bytes=gpu_bytes,
        compute_capability=(8, 9),
        bandwidth_bytes_per_s=1000 * 10**9,
        bf16_tflops=100.0,
    )
    return HostSnapshot("gpu box", (gpu,), ram_bytes, ram_bytes, cpu=cpu_host().cpu, disk_free_bytes=100 * GB)


# --------------------------------------------------------------------------- the header


def _write_gguf(path: Path, with_file_type: bool = True) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(256)
    if with_file_type:
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_token_list([f"t{i}".encode() for i in range(300)])  # an array the reader skips
    writer.add_tensor("token_embd.weight", np.zeros((300, 64), dtype=np.float16))
    q8 = np.zeros((64, 64 // 32 * 34), dtype=np.uint8)  # 64 rows of two Q8_0 blocks
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_header_matches_the_gguf_package(tmp_path):
    import gguf

    path = _write_gguf(tmp_path / "tiny.gguf")
    header = read_gguf_header(path)
    theirs = gguf.GGUFReader(str(path))
    assert [(t.name, t.type_name, t.n_bytes) for t in header.tensors] == [
        (t.name, t.tensor_type.name, int(t.n_bytes)) for t in theirs.tensors
    ]
    assert header.quantization == "Q8_0"
    assert header.metadata["llama.block_count"] == 1
    assert header.metadata["tokenizer.ggml.tokens"].length == 300
    assert header.data_offset + header.tensor_bytes <= header.file_bytes


def test_quantization_falls_back_to_the_commonest_matrix_type(tmp_path):
    header = read_gguf_header(_write_gguf(tmp_path / "tiny.gguf", with_file_type=False))
    assert header.quantization == "F16"  # token_embd (300×64 f16) outweighs the Q8_0 matrix


def test_real_file_header_is_fast_and_complete(smollm2_gguf):
    header = read_gguf_header(smollm2_gguf)
    assert header.quantization == "Q4_1"
    assert len(header.tensors) == 272
    assert (
        header.data_offset + header.tensor_bytes == header.file_bytes
    )  # every byte after the header counted
    assert header.string("tokenizer.chat_template") and "im_start" in header.string("tokenizer.chat_template")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not a GGUF file"),
        (b"GGML" + b"\0" * 40, "does not start with 'GGUF'"),
        (b"GGUF" + (7).to_bytes(4, "little") + b"\0" * 16, "version 7"),
        (
            b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (1).to_bytes(8, "little"),
            "cut short",
        ),
    ],
)
def test_bad_files_are_refused_in_words(tmp_path, content, words):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ImportModelError, match=words):
        read_gguf_header(path)


def test_a_huge_string_length_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "bad.gguf"
    head = b"GGUF" + (3).to_bytes(4, "little") + (0).to_bytes(8, "little") + (1).to_bytes(8, "little")
    path.write_bytes(head + (2**60).to_bytes(8, "little") + b"key")
    with pytest.raises(ImportModelError, match="cut short"):
        read_gguf_header(path)


# --------------------------------------------------------------------------- the weights


def test_weights_split_by_layer_input_and_head(smollm2, smollm2_gguf):
    _, weights = smollm2
    header = read_gguf_header(smollm2_gguf)
    assert weights.n_layers == 30
    assert weights.tensor_bytes == header.tensor_bytes
    assert weights.tied_output  # SmolLM2 has no output.weight: the head is token_embd
    embd = next(t.n_bytes for t in header.tensors if t.name == "token_embd.weight")
    assert weights.embedding_bytes == embd and weights.head_bytes == embd + weights.output_bytes
    layer0 = sum(t.n_bytes for t in header.tensors if t.name.startswith("blk.0."))
    assert weights.layer_bytes[0] == layer0 and len(set(weights.layer_bytes)) == 1


def test_weights_from_a_size_add_up(smollm2):
    card, weights = smollm2
    estimate = weights_from_size(card, "SmolLM2-135M-Instruct-Q4_K_M.gguf", weights.file_bytes)
    assert estimate.quantization == "Q4_K_M" and estimate.estimated
    assert abs(estimate.tensor_bytes - weights.file_bytes) <= estimate.n_layers  # rounding per layer only
    assert estimate.n_layers == 30


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.q8_0.gguf", "Q8_0"),
        ("Qwen2.5-7B-Instruct-IQ3_XS.gguf", "IQ3_XS"),
        ("gemma-2-2b-it-f16.gguf", "F16"),
        ("phi-3-mini-BF16-00001-of-00002.gguf", "BF16"),
        ("my-model.gguf", None),
    ],
)
def test_quantization_in_file_names(name, quant):
    assert quantization_in_name(name) == quant


REPO = [
    ("README.md", 5_000),
    ("model-Q2_K.gguf", 3 * GB),
    ("model-Q4_K_M.gguf", 5 * GB),
    ("model-Q8_0.gguf", 8 * GB),
    ("model-F16-00001-of-00002.gguf", 8 * GB),
    ("model-F16-00002-of-00002.gguf", 7 * GB),
    ("mmproj-model-f16.gguf", 1 * GB),
]


def test_quant_files_join_split_parts_and_skip_projectors():
    files = quant_files(REPO)
    assert [(f.quantization, f.size_bytes, f.parts) for f in files] == [
        ("F16", 15 * GB, 2),
        ("Q8_0", 8 * GB, 1),
        ("Q4_K_M", 5 * GB, 1),
        ("Q2_K", 3 * GB, 1),
    ]
    assert files[0].file_name == "model-F16-00001-of-00002.gguf"


@pytest.mark.parametrize(
    ("budget", "overhead", "chosen"),
    [
        (20 * GB, 0, "F16"),
        (9 * GB, 0, "Q8_0"),
        (9 * GB, 2 * GB, "Q4_K_M"),
        (6 * GB, 2 * GB, "Q2_K"),
        (4 * GB, 2 * GB, None),
    ],
)
def test_pick_the_largest_quant_that_fits(budget, overhead, chosen):
    picked = pick_quant_file(REPO, budget, overhead)
    assert (picked.quantization if picked else None) == chosen


# --------------------------------------------------------------------------- the llama.cpp rungs


def _expected_kv(card, context: int, width_num: int, width_den: int) -> int:
    arch = card.architecture
    values = 2 * arch.num_key_value_heads * (arch.hidden_size // arch.num_attention_heads)
    return arch.num_layers * padded_context(context) * values * width_num // width_den


def test_gguf_runs_quantized_on_the_cpu_with_llamacpp(smollm2):
    card, weights = smollm2
    plan = make_plan(card, cpu_host(), PlanRequest(context=1000, gguf=weights))
    assert isinstance(plan, Plan)
    assert plan.runtime == "llama.cpp" and plan.strategy == "cpu" and plan.precision.label == "Q4_1"
    settings = plan.llama_cpp
    assert settings is not None
    assert (settings.n_gpu_layers, settings.kv_cache_type, settings.n_threads) == (0, "f16", 2)
    assert settings.file_name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    (cpu,) = plan.placements
    assert cpu.weights_bytes == weights.tensor_bytes
    assert cpu.kv_cache_bytes == _expected_kv(card, 1000, 2, 1)  # 1024 tokens (padded), f16
    assert cpu.overhead_bytes == (
        PYTHON_PROCESS_BYTES + LLAMACPP_LIBRARY_BYTES + context_bytes(card) + compute_bytes(card, 1000, True)
    )
    assert "llama.cpp runs them quantized" in plan.reasons[0] and "fp32" in plan.reasons[0]
    assert "n_gpu_layers=0" in plan.reasons[-1]
    text = render_plan(plan)
    assert "runtime: llama.cpp" in text and "KV cache f16" in text
    data = plan_to_dict(plan)
    assert data["runtime"] == "llama.cpp" and data["llama_cpp"]["n_gpu_layers"] == 0


def test_the_same_file_through_transformers_when_asked(smollm2):
    card, weights = smollm2
    plan = make_plan(card, cpu_host(), PlanRequest(context=1024, gguf=weights, runtime="transformers"))
    assert isinstance(plan, Plan)
    assert plan.runtime == "transformers" and plan.llama_cpp is None
    assert plan.precision.label in ("fp32", "bf16")
    assert plan.placements[0].weights_bytes > 2.5 * weights.tensor_bytes  # dequantized to 16 or 32 bits


def test_llamacpp_without_a_gguf_file_is_refused(smollm2):
    card, _ = smollm2
    with pytest.raises(PlanRequestError, match="GGUF"):
        make_plan(card, cpu_host(), PlanRequest(runtime="llama.cpp"))


def _ram_for(plan: Plan) -> int:
    return plan.placements[-1].used_bytes


def test_kv_cache_steps_down_to_q8_0_then_q4_0_when_ram_is_short(smollm2):
    card, weights = smollm2
    request = PlanRequest(context=8192, gguf=weights)
    f16 = make_plan(card, cpu_host(), request)
    q8 = make_plan(card, cpu_host(), PlanRequest(context=8192, gguf=weights, kv_cache="q8_0"))
    q4 = make_plan(card, cpu_host(), PlanRequest(context=8192, gguf=weights, kv_cache="q4_0"))
    assert isinstance(f16, Plan) and isinstance(q8, Plan) and isinstance(q4, Plan)
    assert q8.placements[0].kv_cache_bytes == _expected_kv(card, 8192, 17, 16)  # 34 bytes per 32 values
    assert q4.placements[0].kv_cache_bytes == _expected_kv(card, 8192, 9, 16)  # 18 bytes per 32 values

    def capped(total: int) -> HostSnapshot:
        return cpu_host(ram_bytes=total + GiB)  # 1 GiB is left to the system

    between = (_ram_for(f16) + _ram_for(q8)) // 2
    plan = make_plan(card, capped(between), request)
    assert isinstance(plan, Plan) and plan.llama_cpp and plan.llama_cpp.kv_cache_type == "q8_0"
    assert any("KV cache f16" in r and "→ no" in r for r in plan.reasons)
    plan = make_plan(card, capped((_ram_for(q8) + _ram_for(q4)) // 2), request)
    assert isinstance(plan, Plan) and plan.llama_cpp and plan.llama_cpp.kv_cache_type == "q4_0"
    assert plan.llama_cpp.flash_attn  # a quantized V cache needs flash attention
    result = make_plan(card, capped(_ram_for(q4) - MiB), request)
    assert isinstance(result, DoesNotFitError)
    assert result.required_bytes == _ram_for(q4)


def test_whole_model_on_a_gpu_moves_the_head_too(smollm2):
    card, weights = smollm2
    plan = make_plan(card, gpu_host(8 * GB), PlanRequest(context=2048, gguf=weights))
    assert isinstance(plan, Plan) and plan.llama_cpp is not None
    assert plan.strategy == "gpu" and plan.llama_cpp.n_gpu_layers == weights.n_layers + 1
    gpu, cpu = plan.placements
    assert gpu.device == "cuda:0" and gpu.layers == (0, 29) and "output" in gpu.blocks
    # the tied head is a copy of token_embd on the GPU; token_embd itself stays in RAM
    assert gpu.weights_bytes == sum(weights.layer_bytes) + weights.head_bytes
    assert cpu.weights_bytes == weights.input_bytes and cpu.blocks == ("token_embd",)
    # 96 MiB over 30 layers: llama.cpp's per-layer floor on a GPU (19 µs a layer), not the bandwidth, bounds it
    assert plan.speed.bottleneck.startswith("per-layer overhead")


def test_a_small_gpu_takes_the_last_layers_that_fit(smollm2):
    card, weights = smollm2
    whole = make_plan(card, gpu_host(8 * GB), PlanRequest(context=2048, gguf=weights))
    assert isinstance(whole, Plan)
    gpu_whole = whole.placements[0]
    # with the head in RAM the GPU's compute buffer holds no logits
    overhead = runtime_bytes("cuda") + compute_bytes(card, 2048, True, holds_head=False)
    per_layer = weights.layer_bytes[0] + gpu_whole.kv_cache_bytes // 30
    room = overhead + 12 * per_layer + per_layer // 2  # room for 12 layers and a half
    total = int(room / 0.98) + 1  # the planner keeps 2% of a GPU free
    plan = make_plan(card, gpu_host(total), PlanRequest(context=2048, gguf=weights))
    assert isinstance(plan, Plan) and plan.llama_cpp is not None
    assert plan.strategy == "offload" and plan.llama_cpp.n_gpu_layers == 12
    gpu, cpu = plan.placements
    assert gpu.layers == (18, 29) and cpu.layers == (0, 17) and "output" in cpu.blocks
    assert gpu.used_bytes <= total
    assert "12 of 30 layers" in plan.reasons[-1]
    slower = whole.speed.decode_tokens_per_s
    assert plan.speed.decode_tokens_per_s < slower
    no_offload = make_plan(
        card, gpu_host(total), PlanRequest(context=2048, gguf=weights, allow_offload=False)
    )
    assert isinstance(no_offload, Plan) and no_offload.strategy == "cpu"  # no split: the CPU alone


def test_gpu_only_request_that_does_not_fit_says_so(smollm2):
    card, weights = smollm2
    result = make_plan(card, gpu_host(256 * MiB), PlanRequest(context=2048, gguf=weights, device="gpu"))
    assert isinstance(result, DoesNotFitError)


def test_compute_buffer_matches_llama_cpp_log(smollm2):
    card, _ = smollm2
    # llama.cpp 0.3.36 logs "CPU compute buffer size = 98.25 MiB" for this file at any context (flash attention)
    assert compute_bytes(card, 512, True) == compute_bytes(card, 8192, True) == int(98.25 * MiB)
    assert compute_bytes(card, 4096, True, holds_head=False) < 3 * MiB  # the head computed on a GPU
    assert compute_bytes(card, 8192, False) > compute_bytes(card, 8192, True)  # the score matrix


def test_kv_cache_rounds_the_context_up_to_256(smollm2):
    card, _ = smollm2
    assert padded_context(1) == 256 and padded_context(256) == 256 and padded_context(257) == 512
    assert sum(kv_layer_bytes(card, 300, "f16")) == sum(kv_layer_bytes(card, 512, "f16"))


def test_emitted_python_is_the_llama_cpp_call(smollm2, smollm2_gguf):
    card, weights = smollm2
    plan = make_plan(card, cpu_host(), PlanRequest(context=2048, gguf=weights, kv_cache="q8_0"))
    assert isinstance(plan, Plan)
    code = python_snippet(card, plan)
    assert "llama_cpp.Llama(" in code and f'model_path="{smollm2_gguf}"' in code
    assert "n_ctx=2048" in code and "type_k=llama_cpp.GGML_TYPE_Q8_0" in code and "n_gpu_layers=0" in code
    compile(code, "snippet", "exec")


def test_berth_plan_of_a_gguf_file_imports_no_runtime(smollm2_gguf, berth_home):
    code = (
        "import sys\n"
        "from launcher.entry import main\n"
        f"sys.argv = ['berth', 'plan', {str(smollm2_gguf)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'llama_cpp') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "runtime: llama.cpp" in out.stdout, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout


def test_hub_repository_quant_choice_prefers_the_largest_that_stays_on_the_gpu(smollm2):
    from launcher.plan.gguf_choice import choose_quant_file

    card, weights = smollm2
    size = weights.file_bytes
    files = [
        ("smol-Q4_1.gguf", size),
        ("smol-Q8_0.gguf", 2 * size),
        ("smol-F16.gguf", 4 * size),
        ("README.md", 10),
    ]
    picked = choose_quant_file(card, files, cpu_host(), PlanRequest(context=2048))
    assert not isinstance(picked, DoesNotFitError)
    assert picked[0].quantization == "F16" and picked[1].strategy == "cpu"  # plenty of RAM: the largest
    assert picked[1].reasons[0].startswith("quant file: smol-F16.gguf")
    # a GPU that holds Q8_0 whole but not F16: Q8_0 on the GPU beats F16 split or in RAM
    whole_q8 = make_plan(
        card, gpu_host(8 * GB), PlanRequest(context=2048, gguf=weights_from_size(card, "q8", 2 * size))
    )
    assert isinstance(whole_q8, Plan)
    gpu_bytes = int(whole_q8.placements[0].used_bytes / 0.98) + 2**20
    picked = choose_quant_file(card, files, gpu_host(gpu_bytes), PlanRequest(context=2048))
    assert not isinstance(picked, DoesNotFitError)
    assert picked[0].quantization == "Q8_0" and picked[1].strategy == "gpu"
    assert "larger ones do not: F16" in picked[1].reasons[0]
    nothing = choose_quant_file(card, files, cpu_host(ram_bytes=GiB + 64 * MiB), PlanRequest(context=2048))
    assert isinstance(nothing, DoesNotFitError)
