"""The hand-written loops pause Python's cyclic collector, scoped and shared by all threads,
and always leave it as they found it; the pause can be turned off."""

from __future__ import annotations

import gc
import threading

import pytest
import torch

import rnn_course.loop_context as loop_context_module
from rnn_course.layers import GRU, LSTM
from rnn_course.loop_context import COLLECTOR_PAUSE, loop_context


@pytest.fixture
def gc_state():
    """Restore the collector's state whatever a test does to it."""
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def collections() -> int:
    return sum(g["collections"] for g in gc.get_stats())


@pytest.mark.parametrize("enabled", [True, False])
def test_state_is_restored(gc_state, enabled):
    (gc.enable if enabled else gc.disable)()
    with loop_context():
        assert not gc.isenabled()
        assert torch.is_inference_mode_enabled()
    assert gc.isenabled() is enabled
    assert COLLECTOR_PAUSE.holders == 0


def test_state_is_restored_after_an_exception(gc_state):
    gc.enable()
    with pytest.raises(ValueError, match="inside"), loop_context():
        raise ValueError("inside")
    assert gc.isenabled()
    assert COLLECTOR_PAUSE.holders == 0


def test_nested_pauses_resume_only_at_the_outermost_exit(gc_state):
    gc.enable()
    with loop_context():
        with loop_context():
            assert COLLECTOR_PAUSE.holders == 2
        assert not gc.isenabled()  # the inner exit leaves the outer pause in place
    assert gc.isenabled()


def test_the_last_thread_out_resumes_the_collector(gc_state):
    """Thread A pauses, thread B pauses and leaves first: the collector stays off until A,
    the last one out, leaves (a per-call save and restore would resume it at B's exit, or
    never, depending on the order)."""
    gc.enable()
    a_inside, b_done, a_may_leave = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def thread_a() -> None:
        with loop_context():
            a_inside.set()
            a_may_leave.wait(10)
            seen["a before leaving"] = gc.isenabled()

    def thread_b() -> None:
        a_inside.wait(10)
        with loop_context():
            seen["b inside"] = gc.isenabled()
        seen["b after leaving"] = gc.isenabled()
        b_done.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    b_done.wait(10)
    a_may_leave.set()
    for t in threads:
        t.join(10)
    assert seen == {"b inside": False, "b after leaving": False, "a before leaving": False}
    assert gc.isenabled()
    assert COLLECTOR_PAUSE.holders == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_layers_in_many_threads_leave_the_user_s_setting(gc_state, enabled):
    """Layers running forward and backward in four threads at once: the collector is off
    while each loop runs, and afterwards as the user left it (off stays off)."""
    (gc.enable if enabled else gc.disable)()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            torch.manual_seed(seed)
            layer = (LSTM if seed % 2 else GRU)(4, 8, bidirectional=True)
            x = torch.randn(30, 3, 4, requires_grad=True)
            for _ in range(5):
                out, _ = layer(x)
                out.square().sum().backward()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert gc.isenabled() is enabled
    assert COLLECTOR_PAUSE.holders == 0


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
    """A call makes thousands of per-step views (here T = 200, about 10 per step and pass),
    more than the collector's threshold of new objects; they are freed before it resumes,
    so the call does not set it off."""
    gc.enable()
    layer = cls(8, 8)
    x = torch.randn(200, 2, 8, requires_grad=True)
    layer(x)[0].sum().backward()  # warm up
    gc.collect()
    before = collections()
    out, _ = layer(x)
    out.sum().backward()
    assert collections() == before


def test_the_pause_can_be_turned_off_per_call(gc_state):
    gc.enable()
    with loop_context(pause_collector=False):
        assert gc.isenabled()
        assert torch.is_inference_mode_enabled()
    assert COLLECTOR_PAUSE.holders == 0


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_the_pause_can_be_turned_off_for_the_module(gc_state, monkeypatch, cls):
    """With the module setting off, the collector runs during a call as it would in any
    code that makes that many objects (the call of the test above sets it off)."""
    monkeypatch.setattr(loop_context_module, "PAUSE_COLLECTOR", False)
    gc.enable()
    with loop_context():
        assert gc.isenabled()
    layer = cls(8, 8)
    x = torch.randn(200, 2, 8, requires_grad=True)
    layer(x)[0].sum().backward()
    gc.collect()
    before = collections()
    out, _ = layer(x)
    out.sum().backward()
    assert collections() > before
    monkeypatch.setattr(loop_context_module, "PAUSE_COLLECTOR", True)
    torch.testing.assert_close(layer(x)[0], out)  # the same results either way
