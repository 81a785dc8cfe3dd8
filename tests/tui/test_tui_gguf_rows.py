"""Browse rows of GGUF entries agree with the Plan screen: an entry added with `berth catalog add FILE.gguf` shows
the llama.cpp plan (the file's quantization, its memory and speed), like `berth list` and a launch."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable

from launcher import display
from launcher.plan.request import Plan
from launcher.tui.app import build_app
from launcher.tui.fake import FakeSessionFactory, MemoryChatStore, TickClock
from registry.catalog import Catalog, load_catalog

from .tui_helpers import TEST_HOST, FakeResolver, browse_ready, wait_until

SIZE = (120, 36)
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _cells(table: DataTable, model_id: str) -> dict[str, str]:
    values = table.get_row(model_id)
    return {
        str(column.key.value): str(value).strip()
        for column, value in zip(table.ordered_columns, values, strict=True)
    }


@pytest.mark.slow  # reads the real SmolLM2 GGUF and drives the app
async def test_a_catalog_added_gguf_row_shows_the_plan_screens_llamacpp_plan(berth, smollm2_gguf):
    result = berth("catalog", "add", str(smollm2_gguf), "--json")
    assert result.exit_code == 0, result.output
    model_id = json.loads(result.output)["model"]["id"]
    merged = load_catalog()
    catalog = Catalog((merged.get(model_id), merged.get(SMOLLM2)), merged.accelerators)
    listed = berth("list", "--hardware", "rtx-4090,ram=64GB", "--json")  # `berth list` for the same entry
    assert listed.exit_code == 0, listed.output
    app = build_app(
        catalog,
        TEST_HOST,
        session_factory=FakeSessionFactory(clock=TickClock()),
        store=MemoryChatStore(),
        hardware_resolver=FakeResolver(),
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        table = screen.query_one("#models", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        gguf_row = _cells(table, model_id)
        hub_row = _cells(table, SMOLLM2)
        details = app.plan_details(catalog.get(model_id))  # what the Plan screen shows
        plan = details.result
        assert isinstance(plan, Plan) and plan.runtime == "llama.cpp"
        row = next(r for r in screen.rows if r.card.id == model_id)
        assert row.result == plan  # the very plan, not only its figures
        assert gguf_row["precision"] == f"{plan.precision.label} llama.cpp" == "Q4_1 llama.cpp"
        assert gguf_row["memory"].startswith(display.gib(plan.required_bytes) + " / ")
        assert gguf_row["speed"] == f"~{display.rate(plan.speed.decode_tokens_per_s)}"
        assert gguf_row["fit"] == "GPU"  # all 30 layers and the head offloaded to the 4090 (n_gpu_layers=31)
        assert plan.llama_cpp is not None and plan.llama_cpp.n_gpu_layers == 31
        # The safetensors entry of the same model stays with transformers.
        assert "llama.cpp" not in hub_row["precision"]
        # `berth list` on the same kind of machine plans the entry the same way.
        listed_row = next(r for r in json.loads(listed.output)["models"] if r["id"] == model_id)
        assert listed_row["runtime"] == "llama.cpp" and listed_row["precision"] == "Q4_1"
