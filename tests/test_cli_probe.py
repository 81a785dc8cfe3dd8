"""`berth probe`: output, JSON, hardware specs, exit codes, messages, and no torch on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hardware_fakes import write_catalog

from launcher.cli.probe_cmd import _ranges

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    return write_catalog(tmp_path)


def assert_explained(result, code: int = 2) -> str:
    """Exited with `code`, a one-paragraph 'Error:' message, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ")
    return " ".join(result.output.split())  # unwrapped


def test_probe_this_machine(berth):
    result = berth("probe")
    assert result.exit_code == 0, result.output
    for part in ("This machine", "GPUs:", "RAM:", "Disk:", "CPU:", "memory bandwidth"):
        assert part in result.output
    assert "berth probe --measure" in result.output


def test_probe_json_has_every_reading_as_bytes(berth):
    result = berth("probe", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "probe" and data["label"] == "this machine"
    assert isinstance(data["ram_total_bytes"], int) and data["ram_total_bytes"] > 0
    assert isinstance(data["ram_available_bytes"], int)
    assert isinstance(data["swap_free_bytes"], int)
    assert isinstance(data["disk_free_bytes"], int)
    assert data["gpu_count"] == len(data["gpus"])
    assert isinstance(data["cpu"]["features"], list)
    assert data["cpu"]["bandwidth_measured"] is False
    assert isinstance(data["warnings"], list)


def test_probe_a_spec(berth, catalog_file: Path):
    result = berth("--catalog", str(catalog_file), "probe", "--hardware", "2xA100-80GB,ram=512GB", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "spec" and data["label"] == "2xA100-80GB,ram=512GB"
    assert data["ram_total_bytes"] == 512 * 10**9
    assert [g["accelerator_id"] for g in data["gpus"]] == ["a100-80gb", "a100-80gb"]
    assert data["gpus"][0]["free_bytes"] == data["gpus"][0]["usable_bytes"] == 80 * 10**9
    assert data["gpus"][0]["compute_capability"] == [8, 0]
    assert data["gpus"][0]["nvlink_peers"] == [1]
    assert data["gpus"][0]["supports_bf16"] is True


def test_probe_two_nodes_human(berth, catalog_file: Path):
    result = berth("--catalog", str(catalog_file), "probe", "--hardware", "8xH100+8xH100")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Hardware spec '8xH100+8xH100'" in out and "2 nodes" in out
    lines = [line for line in out.splitlines() if "NVIDIA H100 80GB HBM3" in line]
    assert len(lines) == 16
    assert lines[0].split()[:2] == ["0", "0"] and lines[-1].split()[:2] == ["1", "15"]
    assert lines[0].rstrip().endswith("1-7") and lines[8].rstrip().endswith("9-15")


def test_probe_spec_from_the_environment(berth, catalog_file: Path):
    result = berth(
        "--catalog", str(catalog_file), "probe", "--json", env={"BERTH_HARDWARE": "rtx-4090,ram=64GB"}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["label"] == "rtx-4090,ram=64GB"


def test_unknown_gpu_is_explained_with_suggestions(berth, catalog_file: Path):
    out = assert_explained(berth("--catalog", str(catalog_file), "probe", "--hardware", "2xA100-90GB"))
    assert "unknown GPU 'A100-90GB'" in out and "Did you mean a100-80gb" in out
    assert "2xA100-80GB,ram=512GB" in out
    assert "berth probe --hardware SPEC" in out


@pytest.mark.parametrize("spec", ["cpu,ram=-1", "cpu,ram=5PB", "0xH100", "8xH100++", ""])
def test_impossible_specs_exit_2(berth, catalog_file: Path, spec: str):
    assert "Cannot use hardware spec" in assert_explained(
        berth("--catalog", str(catalog_file), "probe", "--hardware", spec)
    )


def test_bad_environment_spec_names_the_variable(berth, catalog_file: Path):
    out = assert_explained(
        berth("--catalog", str(catalog_file), "probe", env={"BERTH_HARDWARE": "cpu,ram=64"})
    )
    assert "BERTH_HARDWARE='cpu,ram=64'" in out and "unset BERTH_HARDWARE" in out


def test_measure_with_a_spec_is_a_usage_error(berth):
    result = berth("probe", "--measure", "--hardware", "cpu")
    assert result.exit_code == 2
    assert "--measure measures this machine" in result.output


def test_measure_then_probe_uses_the_measurement(berth, berth_home: Path):
    result = berth("probe", "--measure")
    assert result.exit_code == 0, result.output
    assert "(measured)" in result.output
    assert (berth_home / "cpu_bandwidth.json").exists()
    data = json.loads(berth("probe", "--json").output)
    assert data["cpu"]["bandwidth_measured"] is True


def test_measure_that_cannot_be_saved_is_a_probe_error(
    berth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("BERTH_HOME", str(blocker))
    out = assert_explained(berth("probe", "--measure"))
    assert "Cannot describe this machine" in out and "cannot save it" in out


def test_list_and_probe_never_measure(berth, berth_home: Path):
    assert berth("probe").exit_code == 0
    assert berth("list").exit_code == 0
    assert not (berth_home / "cpu_bandwidth.json").exists()


def test_ranges():
    assert _ranges([]) == ""
    assert _ranges([3, 0, 1, 2, 5, 7, 8]) == "0-3,5,7-8"


@pytest.mark.parametrize("args", [["probe", "--json"], ["probe", "--hardware", "cpu,ram=8GB"]])
def test_probe_does_not_import_torch(args: list[str]):
    code = (
        "import sys\n"
        "from launcher.cli import cli\n"
        f"cli.main({args!r}, prog_name='berth', standalone_mode=False)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
