"""Piece picking (rarest first, partial pieces first, endgame) and choking (best rates + optimistic unchoke)."""
from __future__ import annotations

import random

from apps.torrent.choker import OPTIMISTIC_INTERVAL, Choker, PeerRates
from apps.torrent.picker import BLOCK, PiecePicker
from apps.torrent.ratelimit import RateMeter, TokenBucket
from core.clock import FakeClock


def picker(count=8, size=2 * BLOCK, last=None):
    return PiecePicker(count, lambda i: (last if last and i == count - 1 else size), rng=random.Random(1))


def test_rarest_first():
    p = picker()
    everyone = [True] * 8
    p.peer_bitfield(everyone)
    p.peer_bitfield(everyone)
    p.peer_bitfield([i == 5 for i in range(8)])      # piece 5 is the most common
    p.peer_has(3)
    p.peer_has(3)
    picks = p.pick("a", everyone, 2 * 6)
    assert {i for i, _, _ in picks} == {0, 1, 2, 4, 6, 7}        # 5 (3 peers) and 3 (4 peers) come last
    assert p.pick("a", everyone, 4) == [(5, 0, BLOCK), (5, BLOCK, BLOCK), (3, 0, BLOCK), (3, BLOCK, BLOCK)]


def test_partial_pieces_first_and_only_what_the_peer_has():
    p = picker()
    p.peer_bitfield([True] * 8)
    [first] = p.pick("a", [True] * 8, 1)
    only = [i == 6 for i in range(8)]
    assert p.pick("b", only, 5) == [(6, 0, BLOCK), (6, BLOCK, BLOCK)]
    # a, which has everything, finishes its started piece before starting another
    assert p.pick("a", [True] * 8, 1) == [(first[0], BLOCK, BLOCK)]


def test_last_piece_short_and_completion():
    p2 = picker(count=2, size=2 * BLOCK, last=100)
    picks = p2.pick("a", [True, True], 10)
    assert sorted(picks) == [(0, 0, BLOCK), (0, BLOCK, BLOCK), (1, 0, 100)]
    assert p2.received(1, 0, "a") == (True, set())
    assert p2.piece_ready(1)
    assert p2.received(1, 0, "a") == (False, set())              # a duplicate is not needed
    p2.mark_have(1)
    assert p2.missing_bytes() == 2 * BLOCK and not p2.complete
    p2.piece_failed(0)
    assert sorted(p2.pick("b", [True, True], 10)) == [(0, 0, BLOCK), (0, BLOCK, BLOCK)]


def test_endgame_duplicates_and_cancels():
    p = picker(count=1)
    assert len(p.pick("a", [True], 10)) == 2
    assert p.in_endgame()
    dup = p.pick("b", [True], 10)
    assert dup == [(0, 0, BLOCK), (0, BLOCK, BLOCK)]
    assert p.pick("c", [True], 10) == []                          # two peers per block at most
    assert p.received(0, 0, "b") == (True, {"a"})                 # a gets a cancel
    p.release("a")
    assert p.received(0, BLOCK, "a") == (True, {"b"})


def test_peer_lost_releases_blocks():
    p = picker(count=1)
    p.peer_bitfield([True])
    p.pick("a", [True], 10)
    p.peer_lost([True], "a")
    assert p.availability == [0]
    assert len(p.pick("b", [True], 10)) == 2


def test_choker_best_rates_and_optimistic_rotation():
    rng = random.Random(3)
    choker = Choker(slots=3, rng=rng)
    peers = [PeerRates(k, True, rate) for k, rate in [("a", 100), ("b", 50), ("c", 10), ("d", 5), ("e", 1)]]
    peers.append(PeerRates("z", False, 1000))                      # not interested: never unchoked
    first = choker.rechoke(peers, now=0)
    assert {"a", "b"} <= first and len(first) == 3 and "z" not in first
    optimistic = choker.optimistic
    assert optimistic in {"c", "d", "e"}
    assert choker.rechoke(peers, now=10) == first                  # kept until its 30 s are up
    seen = {optimistic}
    for step in range(1, 20):
        choker.rechoke(peers, now=step * OPTIMISTIC_INTERVAL)
        seen.add(choker.optimistic)
    assert seen == {"c", "d", "e"}


def test_choker_few_peers_all_unchoked():
    assert Choker(4).rechoke([PeerRates("a", True, 0), PeerRates("b", True, 0)], now=0) == {"a", "b"}


def test_token_bucket_and_rate_meter_on_a_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket(100_000, clock.monotonic)
    assert bucket.delay(100_000) == 0.0
    assert bucket.delay(50_000) == 0.5
    clock.mono += 1.5
    assert bucket.delay(50_000) == 0.0
    assert TokenBucket(0, clock.monotonic).delay(10 ** 9) == 0.0
    meter = RateMeter(clock.monotonic, window=10)
    for _ in range(10):
        meter.add(1000)
        clock.mono += 1
    assert meter.rate() == 1000.0 and meter.total == 10_000
    clock.mono += 20
    assert meter.rate() == 0.0
