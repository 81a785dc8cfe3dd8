"""The paragraph a user reads for each kind of error, pinned word for word, with its exit code.

Errors a command can reach offline run through the real CLI against the fixed test catalog (so the texts do not
move when catalog.yaml grows); load errors, which need the Hub or a GPU to happen, go through the same table the
CLI uses (`launcher.cli.errors.explain`).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import launcher.fleet.errors
import launcher.machine.errors
import launcher.plan.errors
import launcher.run.errors
import registry.errors
from launcher.cli import cli
from launcher.cli.errors import explain
from launcher.fleet.sizing import ShapeDoesNotFitError
from launcher.machine.errors import ProbeError
from launcher.plan.errors import DoesNotFitError
from launcher.run.errors import (
    DownloadError,
    GatedModelError,
    OutOfMemoryError,
    RemoteCodeRefusedError,
    SessionInputError,
    UnsafeWeightsError,
)
from registry.errors import EXIT_FAILURE, EXIT_USAGE, BerthError, UnknownAcceleratorError

TESTS = Path(__file__).parent
FIXED_CATALOG = TESTS / "data" / "fleet_catalog.yaml"
BROKEN = TESTS / "broken_catalogs"


def berth(*args: str, catalog: Path | None = FIXED_CATALOG) -> Result:
    """`berth ARGS` as a user runs it (against the fixed test catalog unless catalog is None)."""
    chosen = ["--catalog", str(catalog), "--no-overlay"] if catalog is not None else []
    return CliRunner().invoke(cli, [*chosen, *args], catch_exceptions=False)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from tmp_path, so file names in messages are short and fixed."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- through the CLI


def test_unknown_model_with_close_names():
    result = berth("show", "llama-3.1-70b-instrct")
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr == (
        "Error: Unknown model 'llama-3.1-70b-instrct'. Did you mean meta-llama/Llama-3.1-70B-Instruct,\n"
        "meta-llama/Llama-3.1-8B-Instruct, mistralai/Mixtral-8x7B-Instruct-v0.1? See every model with\n"
        "`berth list`, search with `berth list --search TEXT`, or pass a local model folder or --gguf FILE.\n"
    )


def test_unknown_model_with_nothing_close():
    result = berth("plan", "zzzzqqqq", "--hardware", "cpu,ram=16GB")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Unknown model 'zzzzqqqq'. No catalog entry looks close. See every model with `berth list`,\n"
        "search with `berth list --search TEXT`, or pass a local model folder or --gguf FILE.\n"
    )


def test_unknown_accelerator_in_a_hardware_spec():
    result = berth("plan", "falcon-7b", "--hardware", "2xH900")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Cannot use hardware spec '2xH900': unknown GPU 'H900' (known GPUs: a100-80gb, h100-sxm, l4,\n"
        "l40s, v100-32gb; or write cpu). Did you mean h100-sxm? Valid specs look like\n"
        "'2xA100-80GB,ram=512GB', 'rtx-4090,ram=64GB,disk=1TB', 'cpu,ram=32GB,cores=8', '8xH100+8xH100',\n"
        "'path/to/hardware.yaml'. Check a spec with `berth probe --hardware SPEC`; leave --hardware out for\n"
        "this machine.\n"
    )


def test_bad_hardware_spec():
    result = berth("probe", "--hardware", "cpu,ram=16")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Cannot use hardware spec 'cpu,ram=16': ram=16 is not a size (write a unit: 64GB, 64GiB,\n"
        "68719476736B). Valid specs look like '2xA100-80GB,ram=512GB', 'rtx-4090,ram=64GB,disk=1TB',\n"
        "'cpu,ram=32GB,cores=8', '8xH100+8xH100', 'path/to/hardware.yaml'. Check a spec with\n"
        "`berth probe --hardware SPEC`; leave --hardware out for this machine.\n"
    )


def test_bad_hardware_spec_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BERTH_HARDWARE", "cpu,ram=16")
    result = berth("plan", "falcon-7b")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Cannot use hardware spec BERTH_HARDWARE='cpu,ram=16': ram=16 is not a size (write a unit:\n"
        "64GB, 64GiB, 68719476736B). Valid specs look like '2xA100-80GB,ram=512GB',\n"
        "'rtx-4090,ram=64GB,disk=1TB', 'cpu,ram=32GB,cores=8', '8xH100+8xH100', 'path/to/hardware.yaml'. Fix\n"
        "or unset BERTH_HARDWARE, or pass --hardware SPEC.\n"
    )


def test_broken_catalog_file(in_tmp: Path):
    (in_tmp / "typo.yaml").write_text((BROKEN / "unknown_key.yaml").read_text())
    result = berth("list", catalog=Path("typo.yaml"))
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Catalog problem: typo.yaml:14: architecture.num_key_value_head: unknown key\n"
        "'num_key_value_head' [in org/typo] (did you mean 'num_key_value_heads'?). Fix the entry (each field\n"
        "is described in registry/schema.py), then check the file with `berth catalog validate typo.yaml`.\n"
    )


def test_broken_overlay(in_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BERTH_HOME", "home")
    (in_tmp / "home").mkdir()
    (in_tmp / "home" / "catalog.yaml").write_text("models:\n  - id: x\n")
    result = CliRunner().invoke(cli, ["list"], catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Catalog problem: home/catalog.yaml:2: id: String should have at least 3 characters (got 'x');\n"
        "8 more problems in this entry [in x]. Fix the entry (each field is described in registry/schema.py),\n"
        "then check the file with `berth catalog validate home/catalog.yaml`.\n"
    )


def test_unsupported_architecture(in_tmp: Path):
    (in_tmp / "wizard").mkdir()
    (in_tmp / "wizard" / "config.json").write_text('{"model_type": "wizardnet"}')
    result = berth("catalog", "add", "wizard")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Berth cannot size model_type 'wizardnet' yet. Supported: bert, deepseek_v3, falcon, gemma,\n"
        "gemma2, gemma3_text, glm4_moe, gpt2, gpt_neox, gpt_oss, gptj, granite, llama, llama4_text, mistral,\n"
        "mixtral, mpt, olmo2, phi, phi3, qwen2, qwen3, qwen3_moe, qwen3_next, smollm3, stablelm, starcoder2.\n"
    )


def test_model_that_cannot_be_imported(in_tmp: Path):
    result = berth("catalog", "add", "nowhere")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "Error: Cannot use that model: nowhere: no such folder or file\n"


def test_does_not_fit_prints_the_verdict_and_exits_1():
    result = berth("plan", "falcon-180b", "--hardware", "cpu,ram=16GB")
    assert result.exit_code == EXIT_FAILURE
    assert result.stderr == ""
    assert result.stdout == (
        # transformers caches Falcon-180B's keys and values for all 232 query heads: 9.7 GB at 2,048 tokens,
        # which no longer leaves room in 16 GB of RAM even with the weights on disk.
        "tiiuae/falcon-180B does not fit on cpu,ram=16GB: it needs at least 348.5 GiB, 10.5 GiB is usable.\n"
        "  tried: fp32 on CPU RAM needs 697.0 GiB, 8.7 GiB usable; bf16 on CPU RAM needs 348.5 GiB, 10.5 GiB "
        "usable\n"
        "Ways out:\n"
        "  - it fits on 4xv100-32gb (nf4 on GPUs 0–3; see `berth plan tiiuae/falcon-180B --hardware "
        "4xv100-32gb`)\n"
        "  - without quantization it fits on 8xa100-80gb (bf16 on GPUs 0–7)\n"
    )


def test_contradictory_plan_request():
    result = berth("plan", "falcon-7b", "--hardware", "cpu,ram=16GB", "--cpu", "--gpus", "0")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Cannot plan that: --cpu contradicts --quant/--gpus. Try: bitsandbytes and GPU choices need a\n"
        "GPU.\n"
    )


def test_context_above_the_model_maximum():
    result = berth("plan", "falcon-7b", "--hardware", "cpu,ram=16GB", "--context", "99999")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: Cannot plan that: tiiuae/falcon-7b supports at most 2,048 tokens of context; 99,999 was\n"
        "asked. Try: use --context 2048 or less.\n"
    )


FLEET_NODES = """\
schema_version: 1
nodes:
  - name: small
    accelerator: {accelerator}
    gpus_per_node: 1
    count: 1
    ram: 64GB
    cpus: 8
models:
  - model: {model}
    context: 8192
    concurrency: 4
    tokens_per_s_per_user: 5
"""


def test_fleet_file_error(in_tmp: Path):
    text = FLEET_NODES.format(accelerator="h900", model="llama-3.1-70b-instrct")
    (in_tmp / "fleet.yaml").write_text(text)
    result = berth("fleet", "plan", "fleet.yaml")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "Error: 2 problems in fleet.yaml:\n"
        "\n"
        "fleet.yaml:4: nodes[0].accelerator: unknown accelerator 'h900' (the catalog knows h100-sxm, "
        "a100-80gb, l40s, l4, v100-32gb; add others to your catalog overlay) (did you mean 'h100-sxm'?)\n"
        "fleet.yaml:10: models[0].model: unknown model 'llama-3.1-70b-instrct' (see `berth list`) "
        "(did you mean 'meta-llama/Llama-3.1-70B-Instruct'?)\n"
        "\n"
        "Each field is described in launcher/fleet/schema.py; examples/fleet.yaml is a complete example.\n"
    )


def test_fleet_too_small_to_export(in_tmp: Path):
    (in_tmp / "fleet.yaml").write_text(FLEET_NODES.format(accelerator="l4", model="llama-3.1-70b-instruct"))
    result = berth("fleet", "export", "fleet.yaml", "--format", "vllm")
    assert result.exit_code == EXIT_FAILURE
    assert result.stdout == ""
    assert result.stderr == (
        "Error: Cannot export: meta-llama/Llama-3.1-70B-Instruct cannot run on any node group of the fleet.\n"
        "See what to add with `berth fleet plan FLEET.yaml`, or export what fits with --allow-partial.\n"
    )


def test_unknown_chat():
    result = berth("history", "show", "7")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "Error: there is no chat 7. See the chats with `berth history list`.\n"


def test_debug_shows_the_traceback_instead(berth_home: Path):
    env = os.environ | {"BERTH_DEBUG": "1", "PYTHONPATH": str(TESTS.parent)}
    code = "from launcher.cli import main; main()"
    args = ["--catalog", str(FIXED_CATALOG), "--no-overlay", "show", "llama-3.1-70b-instrct"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1] == (
        "registry.errors.UnknownModelError: unknown model 'llama-3.1-70b-instrct'; did you mean "
        "meta-llama/Llama-3.1-70B-Instruct, meta-llama/Llama-3.1-8B-Instruct, "
        "mistralai/Mixtral-8x7B-Instruct-v0.1?"
    )
    assert "Error: Unknown model" not in done.stderr


# --------------------------------------------------------------------------- through the table


@pytest.mark.parametrize(
    ("error", "text", "code"),
    [
        (
            GatedModelError("meta-llama/Llama-3.1-8B-Instruct", logged_in=False),
            "meta-llama/Llama-3.1-8B-Instruct is gated on the Hugging Face Hub and you are not logged in. Next: "
            "accept the terms at https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct, then log in with "
            "`hf auth login` (or set HF_TOKEN) and run again.",
            EXIT_FAILURE,
        ),
        (
            GatedModelError("meta-llama/Llama-3.1-8B-Instruct", logged_in=True),
            "meta-llama/Llama-3.1-8B-Instruct is gated and your Hugging Face token has no access to it yet. "
            "Next: accept the terms at https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct with the account "
            "of your token, then run again.",
            EXIT_FAILURE,
        ),
        (
            UnsafeWeightsError("org/old", ["a.bin", "b.bin", "c.bin", "d.bin"]),
            "org/old publishes its weights only as pickle files (a.bin, b.bin, c.bin and 1 more); unpickling "
            "can run arbitrary code, so Berth does not load them by default. Next: if you trust the publisher, "
            "run again with --allow-pickle.",
            EXIT_USAGE,
        ),
        (
            RemoteCodeRefusedError("org/custom"),
            "org/custom needs code from its own repository to load (trust_remote_code); Berth never runs that "
            "code unless asked for this launch. Next: read the repository's .py files, then run again with "
            "--trust-remote-code.",
            EXIT_USAGE,
        ),
        (
            DownloadError(
                "org/m", "org/m is not in the cache and HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE"
            ),
            "org/m is not in the cache and HF_HUB_OFFLINE is set. Next: unset HF_HUB_OFFLINE.",
            EXIT_FAILURE,
        ),
        (
            DownloadError("org/m", "the connection failed"),
            "the connection failed.",
            EXIT_FAILURE,
        ),
        (
            OutOfMemoryError(
                "org/m", ["bf16 on GPU 0: CUDA out of memory", "int8 on GPU 0: CUDA out of memory"]
            ),
            "org/m ran out of memory while loading: bf16 on GPU 0: CUDA out of memory; int8 on GPU 0: CUDA out "
            "of memory. Next: free memory (close other programs or GPU jobs), try a shorter --context, or "
            "--quant nf4 on a GPU.",
            EXIT_FAILURE,
        ),
        (
            SessionInputError("put [MASK] where the missing word goes"),
            "put [MASK] where the missing word goes.",
            EXIT_USAGE,
        ),
        (
            ProbeError("cannot read this machine's RAM (permission denied)", reading="ram"),
            "Cannot describe this machine: cannot read this machine's RAM (permission denied). See what can be "
            "read with `berth probe`, or name the hardware instead with --hardware SPEC (for example "
            "'cpu,ram=32GB').",
            EXIT_USAGE,
        ),
        (
            UnknownAcceleratorError("h900", ["h200", "h100-sxm"]),
            "Unknown accelerator 'h900'. Did you mean h200, h100-sxm? Known GPUs are the catalog's accelerators: "
            "`berth probe --hardware NAME` checks a name and lists them. Add others to your catalog overlay.",
            EXIT_USAGE,
        ),
        (
            DoesNotFitError("org/big", 10**12, 10**10, ["nf4 fits on 2xh100-sxm", "add RAM"]),
            "org/big does not fit. Ways out: nf4 fits on 2xh100-sxm; add RAM.",
            EXIT_FAILURE,
        ),
        (
            DoesNotFitError("org/big", 10**12, 10**10),
            "org/big does not fit. Ways out: no smaller option is known.",
            EXIT_FAILURE,
        ),
        (
            ShapeDoesNotFitError("TP2: the weights exceed the 71.3 GiB a GPU holds"),
            "TP2: the weights exceed the 71.3 GiB a GPU holds.",
            EXIT_FAILURE,
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_table_text_and_exit_code(error: BerthError, text: str, code: int):
    assert explain(error) == (text, code)


def test_table_leaves_bugs_alone():
    assert explain(ValueError("x")) is None
    assert explain(KeyError("x")) is None


ERROR_MODULES = [registry.errors, launcher.machine.errors, launcher.plan.errors, launcher.run.errors]


def test_every_error_class_derives_from_the_root():
    internal = {
        launcher.run.errors.MemoryBudgetExceeded
    }  # a MemoryError on purpose: loading treats it as OOM
    modules = [*ERROR_MODULES, launcher.fleet.errors]
    classes = {
        cls
        for module in modules
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    assert len(classes) > 15
    assert {cls for cls in classes if not issubclass(cls, BerthError)} == internal
    assert issubclass(ShapeDoesNotFitError, BerthError)
