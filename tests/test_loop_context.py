"""The hand-written loops pause Python's cyclic collector and always restore its state."""

from __future__ import annotations

import gc

import pytest
import torch

from rnn_course.layers import GRU, LSTM
from rnn_course.loop_context import loop_context


@pytest.fixture
def gc_state():
    """Restore the collector's state whatever a test does to it."""
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("enabled", [True, False])
def test_state_is_restored(gc_state, enabled):
    (gc.enable if enabled else gc.disable)()
    with loop_context():
        assert not gc.isenabled()
        assert torch.is_inference_mode_enabled()
    assert gc.isenabled() is enabled


def test_state_is_restored_after_an_exception(gc_state):
    gc.enable()
    with pytest.raises(ValueError, match="inside"), loop_context():
        raise ValueError("inside")
    assert gc.isenabled()


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_a_layer_call_leaves_no_collectable_garbage_and_the_collector_on(gc_state, cls):
    """The loops' views form no cycles: nothing they made is left for the collector."""
    gc.enable()
    layer = cls(3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(6, 2, 3, requires_grad=True)
    gc.collect()
    out, _ = layer(x)
    out.sum().backward()
    del out
    assert gc.isenabled()
    assert gc.collect() == 0


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_a_layer_call_sets_off_no_collection(gc_state, cls):
    """A call makes thousands of per-step views (here T = 200, about 8 per step and pass),
    more than the collector's threshold of new objects; they are freed before it resumes,
    so the call does not set it off (without the pause it runs several times per call)."""
    gc.enable()
    layer = cls(8, 8)
    x = torch.randn(200, 2, 8, requires_grad=True)
    layer(x)[0].sum().backward()  # warm up
    gc.collect()
    before = sum(g["collections"] for g in gc.get_stats())
    out, _ = layer(x)
    out.sum().backward()
    assert sum(g["collections"] for g in gc.get_stats()) == before
