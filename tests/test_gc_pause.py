"""registry.gc_pause: no cyclic collection inside the block, the collector's state restored after it."""

from __future__ import annotations

import gc

import pytest

from registry.gc_pause import collector_paused


def test_the_collector_is_paused_and_restored():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block restores the state it found
    assert gc.isenabled()


def test_restored_after_an_error_and_left_off_when_it_was_off():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_command_process_freezes_what_an_outermost_block_built(monkeypatch: pytest.MonkeyPatch):
    """After freeze_bulk_work (launcher.entry.main), the objects a block leaves are in the permanent generation;
    without it (a test runner, a library caller) nothing is frozen."""
    from registry import gc_pause

    gc.unfreeze()
    with collector_paused():
        kept = [[i] for i in range(1000)]
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(gc_pause, "_freeze", False)
    gc_pause.freeze_bulk_work()
    try:
        gc.disable()
        with collector_paused():  # not outermost: the collector was already off
            more = [[i] for i in range(1000)]
        gc.enable()
        assert gc.get_freeze_count() == 0
        with collector_paused():
            more = [[i] for i in range(1000)]
        assert gc.get_freeze_count() >= len(kept) + len(more)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
