"""This machine's launches correct later estimates: bounded, per host and runtime, and the plan says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from launcher.machine.probe import probe_host
from launcher.plan.calibration import MAX_FACTOR, calibrated, calibration_for
from launcher.plan.measured import Measurement, machine_key
from launcher.plan.speed import SpeedEstimate
from launcher.run.store import Store, default_path, speed_measurements


def launch(
    strategy: str, measured: float | None, estimated: float | None, machine: str = "here"
) -> Measurement:
    return Measurement(
        model_id="org/other-model",
        precision="bf16",
        strategy=strategy,
        context=2048,
        tokens_used=100,
        machine_key=machine,
        host_label="this machine",
        peak_bytes=1,
        estimated_bytes=1,
        tokens_per_s=measured,
        estimated_tokens_per_s=estimated,
    )


def test_the_factor_is_the_geometric_median_of_the_same_runtime():
    launches = [launch("cpu", 20, 40), launch("cpu", 30, 40), launch("cpu", 10, 40), launch("gpu", 90, 30)]
    found = calibration_for("cpu", launches)
    assert found is not None and found.launches == 3
    assert found.factor == pytest.approx(0.5)
    gpus = calibration_for("sharded", launches)  # gpu and sharded share a runtime
    assert gpus is not None and gpus.factor == MAX_FACTOR  # 90 / 30 = 3, bounded
    assert calibration_for("offload", launches) is None
    assert calibration_for("cpu", [launch("cpu", None, 40), launch("cpu", 20, None)]) is None


def test_the_factor_is_bounded():
    slow, fast = (
        calibration_for("cpu", [launch("cpu", 1, 100)]),
        calibration_for("cpu", [launch("cpu", 100, 1)]),
    )
    assert slow is not None and slow.factor == 1 / MAX_FACTOR
    assert fast is not None and fast.factor == MAX_FACTOR


def test_a_calibrated_estimate_says_so():
    speed = SpeedEstimate(10.0, 0.5, 4.0, "CPU memory bandwidth")
    found = calibration_for("cpu", [launch("cpu", 15, 10)] * 3)
    out = calibrated(speed, found)
    assert out.decode_tokens_per_s == pytest.approx(15.0)
    assert "calibrated from 3 launches here" in out.basis
    assert calibrated(speed, None) == speed


def test_the_store_keeps_the_estimate_and_upgrades_an_old_file(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a version-1 store: no estimated_tokens_per_s column
        db.execute(
            "CREATE TABLE measurements (id INTEGER PRIMARY KEY, model_id TEXT NOT NULL, precision TEXT NOT NULL, "
            "strategy TEXT NOT NULL, context INTEGER NOT NULL, tokens_used INTEGER NOT NULL, machine_key TEXT NOT "
            "NULL, host_label TEXT NOT NULL, peak_bytes INTEGER NOT NULL, estimated_bytes INTEGER NOT NULL, "
            "devices TEXT NOT NULL DEFAULT '{}', load_seconds REAL, time_to_first_token_s REAL, tokens_per_s REAL, "
            "created_at TEXT NOT NULL)"
        )
    with Store(path) as store:
        store.record_measurement(launch("cpu", 12.0, 24.0))
        store.record_measurement(launch("cpu", 12.0, 24.0, machine="elsewhere"))
    found = speed_measurements("here", path)
    assert [(m.tokens_per_s, m.estimated_tokens_per_s) for m in found] == [(12.0, 24.0)]


def test_berth_plan_shows_the_calibration_from_this_machines_launches(berth, catalog):
    host = probe_host(catalog)
    with Store(default_path()) as store:
        for _ in range(2):
            store.record_measurement(launch("cpu", 10.0, 20.0, machine=machine_key(host)))
    result = berth("plan", "HuggingFaceTB/SmolLM2-135M-Instruct", "--cpu")
    assert result.exit_code == 0, result.output
    assert "calibrated from 2 launches here (x0.50)" in result.output
    named = berth("plan", "HuggingFaceTB/SmolLM2-135M-Instruct", "--hardware", "cpu,ram=16GB")
    assert "calibrated" not in named.output  # named hardware is not this machine
