"""Hardware specs: text forms, YAML files, defaults, and errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hardware_fakes import hardware_catalog

from launcher.machine.errors import HardwareSpecError
from launcher.machine.hwspec import (
    DEFAULT_CPU_RAM_BYTES,
    DEFAULT_DISK_BYTES,
    MIN_GPU_NODE_RAM_BYTES,
    parse_hardware_spec,
    parse_size,
    resolve_host,
)
from registry.catalog import Catalog
from registry.errors import BerthError

GB = 10**9
H100_BYTES = 85_520_809_984


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return hardware_catalog(tmp_path_factory.mktemp("catalog"))


def spec_error(text: str, catalog: Catalog) -> HardwareSpecError:
    with pytest.raises(HardwareSpecError) as info:
        parse_hardware_spec(text, catalog)
    return info.value


def test_two_a100s_with_ram(cat: Catalog):
    host = parse_hardware_spec("2xA100-80GB,ram=512GB", cat)
    assert host.source == "spec" and host.label == "2xA100-80GB,ram=512GB"
    assert host.nodes == 1 and host.gpu_count == 2
    assert host.ram_total_bytes == 512 * GB
    assert host.ram_available_bytes == 512 * GB - 8 * 2**30  # the OS reserve of a spec (capped at 8 GiB)
    assert host.disk_free_bytes == DEFAULT_DISK_BYTES
    assert host.warnings == ()
    for gpu in host.gpus:
        assert gpu.accelerator_id == "a100-80gb"
        assert gpu.total_bytes == gpu.free_bytes == 80 * GB
        assert gpu.used_bytes == 0
        assert gpu.compute_capability == (8, 0)
        assert gpu.bandwidth_bytes_per_s == 2_039_000_000_000
        assert gpu.bf16_tflops == 312
    assert [g.nvlink_peers for g in host.gpus] == [(1,), (0,)]


def test_single_consumer_gpu(cat: Catalog):
    host = parse_hardware_spec("rtx-4090,ram=64GB", cat)
    (gpu,) = host.gpus
    assert gpu.index == 0 and gpu.name == "NVIDIA GeForce RTX 4090" and gpu.nvlink_peers == ()
    assert host.ram_total_bytes == 64 * GB


def test_disk_and_binary_units(cat: Catalog):
    host = parse_hardware_spec("rtx-4090, RAM=64GiB, disk=1.5TB", cat)
    assert host.ram_total_bytes == 64 * 2**30
    assert host.disk_free_bytes == 1_500 * GB


def test_cpu_only(cat: Catalog):
    host = parse_hardware_spec("cpu,ram=32GB", cat)
    assert host.gpus == () and host.ram_total_bytes == 32 * GB
    assert host.cpu.physical_cores == 8
    host = parse_hardware_spec("CPU,ram=32GB,cores=12", cat)
    assert host.cpu.physical_cores == host.cpu.logical_cores == 12
    assert not host.cpu.fast_bf16  # a spec says nothing about the CPU: assume no native bf16


def test_two_nodes_of_eight_h100s(cat: Catalog):
    host = parse_hardware_spec("8xH100+8xH100", cat)
    assert host.nodes == 2 and host.gpu_count == 16
    assert [g.index for g in host.gpus] == list(range(16))
    assert [len(host.node_gpus(n)) for n in (0, 1)] == [8, 8]
    assert host.gpus[0].nvlink_peers == tuple(range(1, 8))
    assert host.gpus[9].nvlink_peers == (8, *range(10, 16))
    assert all(g.accelerator_id == "h100-sxm" and g.total_bytes == H100_BYTES for g in host.gpus)
    assert host.ram_total_bytes == 2 * 8 * H100_BYTES  # default: twice the node's GPU memory


def test_nodes_differ_and_the_smallest_counts(cat: Catalog):
    host = parse_hardware_spec("8xH100,ram=2TB,disk=4TB + 2xa100-40gb,ram=256GB", cat)
    assert host.nodes == 2
    assert host.ram_total_bytes == 256 * GB
    assert host.disk_free_bytes == DEFAULT_DISK_BYTES
    assert [g.node for g in host.gpus] == [0] * 8 + [1] * 2
    assert host.gpus[8].nvlink_peers == (9,)


def test_mixed_gpus_on_one_node_link_only_their_own_kind(cat: Catalog):
    host = parse_hardware_spec("2xa100-80gb,2xrtx-4090", cat)
    assert [g.nvlink_peers for g in host.gpus] == [(1,), (0,), (), ()]


@pytest.mark.parametrize(
    "name", ["A100-80GB", "a100-80gb", "a100_80gb", "A100 80GB", "NVIDIA A100-SXM4-80GB"]
)
def test_gpu_names_ignore_case_and_punctuation(cat: Catalog, name: str):
    assert parse_hardware_spec(f"2x{name}", cat).gpus[0].accelerator_id == "a100-80gb"


def test_aliases_and_count_spellings(cat: Catalog):
    assert parse_hardware_spec("H100", cat).gpus[0].accelerator_id == "h100-sxm"
    for text in ("4xh100", "4 x h100", "4×H100", "4*h100"):
        assert parse_hardware_spec(text, cat).gpu_count == 4


def test_defaults(cat: Catalog):
    assert parse_hardware_spec("cpu", cat).ram_total_bytes == DEFAULT_CPU_RAM_BYTES
    assert parse_hardware_spec("t4", cat).ram_total_bytes == max(MIN_GPU_NODE_RAM_BYTES, 2 * 16 * GB)
    assert parse_hardware_spec("2xrtx-4090", cat).ram_total_bytes == 96 * GB
    apple = parse_hardware_spec("m2-max", cat)
    # Apple's "96GB" is 96 GiB (hw.memsize); the GPU may use three quarters of it (macOS working-set limit).
    assert apple.gpus[0].unified_memory and apple.ram_total_bytes == 96 * 2**30
    assert apple.gpus[0].total_bytes == 72 * 2**30


# --------------------------------------------------------------------------- YAML files


def test_yaml_file_with_two_nodes(cat: Catalog, tmp_path: Path):
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "nodes:\n"
        "  - gpus:\n"
        "      - {kind: H100, count: 8}\n"
        "    ram: 2TB\n"
        "    disk: 8TB\n"
        "    cores: 112\n"
        "  - gpus: [{kind: a100-80gb, count: 4}, {kind: rtx-4090}]\n"
        "    ram: 1TB\n"
    )
    host = parse_hardware_spec(str(path), cat)
    assert host.label == str(path) and host.source == "spec"
    assert host.nodes == 2 and host.gpu_count == 13
    assert host.ram_total_bytes == 10**12
    assert host.disk_free_bytes == DEFAULT_DISK_BYTES
    assert host.gpus[8].nvlink_peers == (9, 10, 11) and host.gpus[12].nvlink_peers == ()
    assert host.cpu.physical_cores == 40  # the smaller node: 8 per GPU by default


def test_yaml_cpu_node(cat: Catalog, tmp_path: Path):
    path = tmp_path / "laptop.yml"
    path.write_text("nodes:\n  - ram: 16GiB\n    cores: 4\n")
    host = parse_hardware_spec(str(path), cat)
    assert host.gpus == () and host.ram_total_bytes == 16 * 2**30 and host.cpu.physical_cores == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes:\n  - gpus: [{kind: h100, count: 0}]\n", "nodes.0.gpus.0.count"),
        ("nodes:\n  - gpus: [{kind: h100}]\n    memory: 1TB\n", "nodes.0.memory: unknown key"),
        ("nodes:\n  - gpus: [h100]\n", "{kind: h100, count: 8}"),
        ("nodes:\n  - gpus: [{kind: h100, cnt: 2}]\n", "keys here: kind, count"),
        ("nodes: []\n", "nodes"),
        ("nodes:\n  - ram: 64\n", "write a unit"),
        ("nodes:\n  - ram: 5PB\n", "at most 64 TB"),
        ("nodes:\n  - gpus: [{kind: h200}]\n", "unknown GPU 'h200'"),
        ("gpus: [h100]\n", "nodes"),
        ("nodes: [\n", "not valid YAML at line"),
        ("", "nodes"),
    ],
)
def test_bad_yaml_files(cat: Catalog, tmp_path: Path, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    error = spec_error(str(path), cat)
    assert expected in error.problem
    assert "2xA100-80GB,ram=512GB" in str(error)


def test_missing_yaml_file(cat: Catalog, tmp_path: Path):
    assert "file not found" in spec_error(str(tmp_path / "nope.yaml"), cat).problem


# --------------------------------------------------------------------------- bad specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0xA100-80GB", "no GPU at all"),
        ("-2xA100-80GB", "no GPU at all"),
        ("2000xH100", "at most 64 per node"),
        ("cpu,ram=-1", "ram=-1 is not a size"),
        ("cpu,ram=5PB", "at most 64 TB"),
        ("cpu,ram=1MB", "at least"),
        ("cpu,ram=64", "write a unit"),
        ("cpu,ram=lots", "not a size"),
        ("cpu,disk=2EB", "at most 1 PB"),
        ("cpu,cores=0", "at least 1"),
        ("cpu,cores=many", "not a whole number"),
        ("cpu,ram=1GB,ram=2GB", "given twice"),
        ("rtx-4090,", "entry is empty"),
        ("8xH100++8xH100", "node 2"),
        ("8xH100+", "node is empty"),
        ("rtx-4090,cpu", "without GPUs"),
        ("ram=64GB", "write cpu"),
    ],
)
def test_impossible_or_unreadable_specs(cat: Catalog, text: str, expected: str):
    error = spec_error(text, cat)
    assert expected in error.problem
    assert isinstance(error, BerthError) and isinstance(error, ValueError)
    assert "cpu,ram=32GB,cores=8" in str(error)  # examples always shown


def test_unknown_gpu_suggests_close_names(cat: Catalog):
    error = spec_error("2xA100-90GB,ram=512GB", cat)
    assert "unknown GPU 'A100-90GB'" in error.problem
    assert error.suggestions[0] == "a100-80gb"
    assert "known GPUs: a100-40gb, a100-80gb, h100-sxm" in error.problem
    assert "Did you mean a100-80gb" in str(error)


def test_count_after_the_name_suggests_count_first(cat: Catalog):
    error = spec_error("H100x8", cat)
    assert error.suggestions[0] == "8xH100 (count first)"


def test_unknown_setting_suggests_the_key(cat: Catalog):
    error = spec_error("cpu,rma=32GB", cat)
    assert "unknown setting 'rma'" in error.problem and error.suggestions == ["ram"]


def test_parse_size():
    assert parse_size("512GB", "ram") == 512 * GB
    assert parse_size("1.5 TB", "ram") == 1_500 * GB
    assert parse_size("64gib", "ram") == 64 * 2**30
    assert parse_size("100B", "disk") == 100


# --------------------------------------------------------------------------- resolve_host


def test_resolve_prefers_the_spec_then_the_environment_then_this_machine(cat: Catalog):
    env = {"BERTH_HARDWARE": "cpu,ram=8GB"}
    assert resolve_host("rtx-4090", cat, env).label == "rtx-4090"
    assert resolve_host(None, cat, env).label == "cpu,ram=8GB"
    assert resolve_host(None, cat, {"BERTH_HARDWARE": "  "}).source == "probe"
    assert resolve_host(None, cat, {}).source == "probe"


def test_bad_environment_spec_says_where_it_came_from(cat: Catalog):
    with pytest.raises(HardwareSpecError) as info:
        resolve_host(None, cat, {"BERTH_HARDWARE": "A100-90GB"})
    assert info.value.origin == "BERTH_HARDWARE"
    assert "BERTH_HARDWARE='A100-90GB'" in str(info.value)


def test_empty_command_line_spec_is_an_error_not_this_machine(cat: Catalog):
    with pytest.raises(HardwareSpecError):
        resolve_host("", cat, {})
