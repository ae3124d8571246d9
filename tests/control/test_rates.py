"""RateHistory: counter rates and gauge means over a bounded window."""
from __future__ import annotations

import dataclasses

from core.control.rates import RateHistory

from .fakes import FakeRouter


def snapshot(received=0, sent=0, tunnels=0, peers=0):
    return dataclasses.replace(FakeRouter().state, bytes_received=received, bytes_sent=sent,
                               participating_tunnels=tunnels, active_peers=peers)


def test_needs_two_samples():
    history = RateHistory()
    assert history.counter_rate("bytes_received", 60) is None
    assert history.gauge_mean("active_peers", 60) is None
    history.record(0, snapshot(received=100, peers=4))
    assert history.counter_rate("bytes_received", 60) is None
    assert history.gauge_mean("active_peers", 60) == 4


def test_rate_over_window_uses_the_sample_at_its_start():
    history = RateHistory()
    for t in range(0, 101):
        history.record(float(t), snapshot(received=t * (10 if t <= 50 else 30)))
    assert history.counter_rate("bytes_received", 20) == 30.0  # 80..100
    assert history.counter_rate("bytes_received", 1000) == (3000 - 0) / 100  # whole history


def test_clock_that_did_not_move_is_ignored_and_counter_reset_is_not_negative():
    history = RateHistory()
    history.record(5.0, snapshot(sent=1000))
    history.record(5.0, snapshot(sent=9999))
    assert len(history) == 1
    history.record(6.0, snapshot(sent=10))
    assert history.counter_rate("bytes_sent", 60) == 0.0
    assert history.counter_rate("no_such_counter", 60) is None


def test_history_is_bounded():
    history = RateHistory(capacity=10)
    for t in range(100):
        history.record(float(t), snapshot(tunnels=t))
    assert len(history) == 11
    assert history.gauge_mean("participating_tunnels", 10_000) == sum(range(89, 100)) / 11


def test_full_history_allocates_nothing_after_construction():
    # the soak's growth: an hour of samples held as objects grew a running router by ~0.5 MB
    import gc
    import tracemalloc
    base = snapshot(peers=7)
    tracemalloc.start()
    try:
        history = RateHistory(capacity=3600)
        before = tracemalloc.get_traced_memory()[0]
        for t in range(5000):
            history.record(float(t), dataclasses.replace(base, bytes_received=t * 1000, bytes_sent=t * 2000,
                                                         participating_tunnels=t % 50))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024, grown
    assert len(history) == 3601
    assert history.counter_rate("bytes_sent", 60) == 2000.0
    assert history.gauge_mean("active_peers", 3600) == 7
