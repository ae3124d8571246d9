"""Peer profiles: counters and decay, tiers, selection for tunnels, bounded persistence."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from core.netdb.profiles import (CONNECT_FAILURE_BAN_S, HALF_LIFE_S, PeerProfile, ProfileStore, Tier,
                                 profile_path)

from .factories import new_clock, seeded_rng


def peer(n):
    return n.to_bytes(32, "big")


def test_counters_decay_with_the_half_life():
    clock = new_clock()
    store = ProfileStore(None, clock)
    store.record_tunnel_accept(peer(1))
    clock.advance(HALF_LIFE_S)
    store.record_tunnel_accept(peer(1))
    assert store.get(peer(1)).tunnel_accepts == 1.5


def test_tiers_follow_capacity_and_speed_medians():
    clock = new_clock()
    store = ProfileStore(None, clock, seeded_rng(1))
    for n in range(1, 11):
        for _ in range(n):
            store.record_tunnel_accept(peer(n), latency_ms=1000 / n if n % 2 else 2000)
    store.record_connect_failure(peer(11))
    for _ in range(10):
        store.record_tunnel_drop(peer(12))
    tiers = store.tiers()
    assert tiers[peer(11)] == Tier.FAILING and tiers[peer(12)] == Tier.FAILING
    high = {p for p, t in tiers.items() if t in (Tier.HIGH_CAPACITY, Tier.FAST)}
    assert high == {peer(n) for n in range(6, 11)}           # capacity at or above the median
    fast = {p for p, t in tiers.items() if t == Tier.FAST}
    assert fast == {peer(7), peer(9)}                         # high capacity and fast (odd n: low latency)
    assert tiers[peer(1)] == Tier.STANDARD
    counts = store.counts()
    assert counts[Tier.FAST] == 2 and counts[Tier.FAILING] == 2


def test_connection_failure_ban_ends_or_is_lifted_by_success():
    clock = new_clock()
    store = ProfileStore(None, clock)
    store.record_connect_failure(peer(1))
    assert store.get(peer(1)).is_failing(clock.time())
    clock.advance(CONNECT_FAILURE_BAN_S + 1)
    assert not store.get(peer(1)).is_failing(clock.time())
    store.record_connect_failure(peer(2))
    clock.advance(1)
    store.record_connect_success(peer(2))
    assert not store.get(peer(2)).is_failing(clock.time())


def test_select_peers_prefers_the_tier_then_tops_up_and_never_picks_failing_or_excluded():
    clock = new_clock()
    store = ProfileStore(None, clock, seeded_rng(2))
    for n in range(1, 11):
        for _ in range(n):
            store.record_tunnel_accept(peer(n), latency_ms=100)
    store.record_connect_failure(peer(20))
    fast = store.select_peers(Tier.FAST, 3)
    assert len(fast) == 3 and all(store.tier(p) == Tier.FAST for p in fast)
    everyone = store.select_peers("fast", 50, exclude=[peer(10)], candidates=[peer(30), peer(20)])
    assert len(everyone) == 10 and peer(10) not in everyone and peer(20) not in everyone and peer(30) in everyone
    assert set(everyone[:4]) == {peer(n) for n in range(6, 10)}   # fast and high capacity come first
    assert store.select_peers(Tier.FAILING, 3) == []
    assert store.select_peers(Tier.STANDARD, 0) == []


def test_floodfill_goodness():
    clock = new_clock()
    store = ProfileStore(None, clock)
    store.record_lookup_timeout(peer(1))
    store.record_lookup_timeout(peer(1))
    store.record_lookup_reply(peer(2), 50)
    store.record_lookup_reply(peer(2), 150)
    assert store.get(peer(1)).is_bad_floodfill(clock.time())
    assert not store.get(peer(2)).is_bad_floodfill(clock.time())
    assert store.get(peer(2)).lookup_latency_ms == 75.0


def test_save_load_round_trip_is_atomic_and_bounded(tmp_path):
    clock = new_clock()
    store = ProfileStore(tmp_path, clock, max_profiles=3)
    for n in range(1, 5):
        clock.advance(1)
        store.record_lookup_reply(peer(n), 10 * n)
    assert len(store) == 3 and store.get(peer(1)) is None     # the least recently updated went first
    assert store.save() == 3
    assert store.save() == 0                                  # only changed profiles are written
    path = profile_path(tmp_path, peer(4))
    assert path.exists() and json.loads(path.read_text())["lookup_latency_ms"] == 40.0
    (tmp_path / "pA").mkdir(exist_ok=True)
    (tmp_path / "pA" / "profile-broken.json").write_text("{not json")
    fresh = ProfileStore(tmp_path, clock)
    assert fresh.load() == 3 and fresh.get(peer(4)) == store.get(peer(4))
    assert not (tmp_path / "pA" / "profile-broken.json").exists()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200) | st.builds(json.dumps, st.dictionaries(st.text(max_size=10),
                                                                     st.none() | st.integers() | st.text())))
def test_profile_parser_only_raises_protocol_errors(text):
    from core.data.errors import ProtocolError
    try:
        PeerProfile.from_json(text)
    except ProtocolError:
        pass
