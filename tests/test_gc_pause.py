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
