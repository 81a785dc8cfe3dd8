"""The Browse table's plain logic: filters, sorts, cells, alternatives, presets; bars, rates, transcripts."""

from __future__ import annotations

import json

import pytest

from launcher.plan.errors import DoesNotFitError
from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import plan_all
from launcher.run.session import GenerationSettings, Turn
from launcher.tui.backend import ChatRecord, chat_title
from launcher.tui.fake import FakeSession, TickClock, canned_reply, decode_rate, pieces
from launcher.tui.rows import (
    COLUMNS,
    COLUMNS_NARROW,
    BrowseFilter,
    alternatives,
    badge,
    card_warnings,
    cells,
    columns_for,
    hardware_presets,
    sort_by,
)
from launcher.tui.transcript import record_from_dict, record_to_dict, to_markdown
from launcher.tui.widgets.device_bar import bar_cells
from launcher.tui.widgets.progress_line import RateMeter, transfer_text

from .tui_helpers import TEST_HOST, finished_reply


@pytest.fixture(scope="module")
def rows(catalog):
    return plan_all(catalog, TEST_HOST, PlanRequest())


def no_measurements(model_id: str) -> float | None:
    return None


def test_every_verdict_has_a_badge(rows):
    labels = {badge(r.result)[0] for r in rows}
    assert "GPU" in labels and "no fit" in labels
    assert labels <= {"GPU", "sharded", "quantized", "offload", "CPU", "disk", "no fit"}


def test_filters_combine(rows):
    chat_fits = BrowseFilter(fits_only=True, task="chat")
    kept = [r for r in rows if chat_fits.keep(r)]
    assert kept and all(r.fits and r.card.task == "chat" for r in kept)
    by_family = [r for r in rows if BrowseFilter(family="smollm2").keep(r)]
    assert {r.card.family for r in by_family} == {"smollm2"}
    by_licence = [r for r in rows if BrowseFilter(license="mit").keep(r)]
    assert by_licence and all(r.card.license == "mit" for r in by_licence)
    searched = [r for r in rows if BrowseFilter(search="  SmolLM2 ").keep(r)]
    assert searched and all("smollm2" in r.card.id.lower() for r in searched)
    assert not BrowseFilter().active and BrowseFilter(search="x").active


@pytest.mark.parametrize("column", [c.key for c in COLUMNS])
def test_sort_by_every_column_and_reverse(rows, column):
    ordered = sort_by(rows, column, False, no_measurements)
    assert sorted(r.card.id for r in ordered) == sorted(r.card.id for r in rows)
    assert sort_by(rows, column, True, no_measurements) == ordered[::-1]


def test_sort_by_fit_puts_gpu_first_and_no_fit_last(rows):
    ordered = sort_by(rows, "fit", False, no_measurements)
    assert badge(ordered[0].result)[0] == "GPU"
    assert badge(ordered[-1].result)[0] == "no fit"


def test_measured_speed_replaces_the_estimate(rows):
    row = next(r for r in rows if r.card.id == "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert cells(row, no_measurements)["speed"].startswith("~")
    assert cells(row, lambda _id: 12.5)["speed"] == "12.5"
    fastest = sort_by(rows, "speed", False, lambda i: 1e9 if i == row.card.id else None)[0]
    assert fastest.card.id == row.card.id


def test_narrow_cells_drop_the_organisation_and_free_memory(rows):
    row = next(r for r in rows if r.card.id == "HuggingFaceTB/SmolLM2-135M-Instruct")
    wide, narrow = cells(row, no_measurements), cells(row, no_measurements, narrow=True)
    assert wide["model"] == row.card.id and narrow["model"] == "SmolLM2-135M-Instruct"
    assert " / " in wide["memory"] and " / " not in narrow["memory"]
    assert columns_for(80) == COLUMNS_NARROW and columns_for(200) == COLUMNS


def test_alternatives_cover_each_precision_and_explain_impossible_ones(catalog):
    card = catalog.get("h2oai/h2o-danube3-4b-chat")
    alts = {a.label: a for a in alternatives(card, TEST_HOST, PlanRequest(), make_plan)}
    assert list(alts) == ["bf16", "fp16", "fp32", "int8", "nf4"]
    assert isinstance(alts["nf4"].result, Plan) and alts["nf4"].result.precision.quant == "nf4"
    assert alts["fp32"].result is not None and alts["fp32"].result.precision.dtype == "float32"
    from .tui_helpers import SMALL_HOST

    on_cpu = {a.label: a for a in alternatives(card, SMALL_HOST, PlanRequest(), make_plan)}
    assert on_cpu["int8"].result is None and "NVIDIA" in on_cpu["int8"].problem


def test_card_warnings(catalog):
    gated = next(c for c in catalog.models if c.gated)
    assert any("gated" in w for w in card_warnings(gated))
    plain = catalog.get("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert card_warnings(plain) == []


def test_hardware_presets_start_with_this_machine(catalog):
    presets = hardware_presets(a.id for a in catalog.accelerators)
    assert presets[0].spec == "" and presets[0].label == "this machine"
    assert any(p.spec == "rtx-4090" for p in presets)
    assert any(p.spec == "8xh100-sxm" for p in presets)


def test_device_bar_cells_fill_the_width_and_keep_every_part_visible(catalog):
    plan = make_plan(catalog.get("h2oai/h2o-danube3-4b-chat"), TEST_HOST)
    assert isinstance(plan, Plan)
    placement = plan.placements[0]
    for width in (10, 40, 117):
        parts = bar_cells(placement, width)
        assert sum(count for count, _ in parts) == width
        assert all(count >= 1 for count, _ in parts[:3])
    big = make_plan(catalog.get("deepseek-ai/DeepSeek-V3"), TEST_HOST, explain=False)
    assert isinstance(big, DoesNotFitError)


def test_rate_meter_and_transfer_text():
    meter = RateMeter(window_s=5)
    assert meter.rate is None
    meter.add(0.0, 0)
    meter.add(2.0, 200 * 2**20)
    assert meter.rate == pytest.approx(100 * 2**20)
    assert meter.eta(300 * 2**20) == pytest.approx(3.0)
    text = transfer_text(200 * 2**20, 2**30, meter.rate, meter.eta(2**30 - 200 * 2**20))
    assert text.startswith("200 MiB / 1.0 GiB") and "100 MiB/s" in text and "left" in text
    assert transfer_text(2**30, 2**30, None, None).endswith("done")


def test_fake_pieces_join_back_exactly():
    text = canned_reply([Turn("user", "hi  there\n")])
    assert "".join(pieces(text)) == text
    assert "".join(pieces("  a b\n\n")) == "  a b\n\n"


def test_fake_session_streams_and_stops():
    session = FakeSession("m", clock=TickClock(0.1))
    got: list[str] = []

    def on_piece(piece: str) -> None:
        got.append(piece)
        if len(got) == 3:
            session.stop()

    stats = session.chat([Turn("user", "q")], GenerationSettings(), "", on_piece)
    assert len(got) == 3 and stats.new_tokens == 3 and stats.stopped and stats.text == "".join(got)
    assert stats.time_to_first_token_s == pytest.approx(0.1)
    assert stats.tokens_per_s is not None and stats.tokens_per_s > 0


def test_fake_decode_rate():
    assert decode_rate(0, 1.0, None) is None
    assert decode_rate(11, 1.5, 0.5) == pytest.approx(10.0)
    assert decode_rate(1, 0.5, 0.5) == pytest.approx(2.0)


def test_transcript_round_trip_and_markdown():
    record = ChatRecord(
        model_id="org/model",
        messages=(
            Turn("user", "Hello?"),
            Turn("assistant", "**Hi.**", finished_reply("**Hi.**", 5, 0.5, 0.1, rate=10.0)),
        ),
        settings=GenerationSettings(temperature=0.2),
        system_prompt="Be brief.",
        title="Hello?",
        id="abc",
        created="2025-01-01T00:00:00+00:00",
        host_label="test box",
    )
    again = record_from_dict(json.loads(json.dumps(record_to_dict(record))))
    assert again == record
    markdown = to_markdown(record)
    assert markdown.startswith("# Hello?\n")
    assert "## System\n\nBe brief." in markdown and "## Assistant\n\n**Hi.**" in markdown
    assert "5 tokens" in markdown
    assert chat_title([Turn("user", " a\nb ")]) == "a b"
    assert chat_title([]) == "(empty chat)"


# --------------------------------------------------------------------------- the Hub source's table


def test_hub_download_counts_read_as_people_write_them():
    from launcher.tui.hub_table import count_text

    assert [count_text(n) for n in (0, 950, 9_500, 812_000, 4_150_000, 12_000_000)] == [
        "0",
        "950",
        "9.5k",
        "812k",
        "4.2M",
        "12M",
    ]


def test_hub_pages_grow_the_list_and_stop_at_the_hub_search_bound():
    from launcher.tui.hub_table import HUB_PAGE, first_page
    from registry.hub_fetch import MAX_SEARCH_RESULTS

    page = first_page("  qwen coder ")
    assert (page.query, page.wanted, page.already) == ("qwen coder", HUB_PAGE, 0)
    following = page.following()
    assert (following.wanted, following.already) == (2 * HUB_PAGE, HUB_PAGE)
    while following.can_grow:
        following = following.following()
    assert following.wanted == MAX_SEARCH_RESULTS and not following.can_grow


def test_hub_cells_of_a_hit_that_could_not_be_read_and_of_a_derived_entry(catalog):
    from launcher.plan.hub_rows import HubRow, plan_card
    from launcher.tui.hub_table import FROM_HUB, hub_cells
    from registry.hub_fetch import HubHit

    hit = HubHit("some-org/A-Very-Long-Repository-Name-Instruct-2507", 1234, True, "text-generation")
    unread = hub_cells(HubRow(hit, None, "needs remote code", "…"), narrow=True)
    assert unread["fit"] == "unread" and unread["params"] == "-" and unread["note"] == "needs remote code"
    assert unread["model"] == "A-Very-Long-Repositor…" and len(unread["model"]) == 22
    card = catalog.get("Qwen/Qwen2.5-0.5B-Instruct")
    planned = HubRow(hit, plan_card(card, TEST_HOST, PlanRequest(), catalog))
    wide = hub_cells(planned)
    assert wide["fit"] == "GPU" and wide["note"] == FROM_HUB and wide["downloads"] == "1.2k"
    assert (
        wide["model"] == hit.repo_id[:43] + "…" and wide["params"] == "494M" and wide["speed"].startswith("~")
    )
