"""Pool logic: configuration, lengths, peer selection rules, build scheduling, retries, tests, expiry."""
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.tunnel.pool import (Candidate, PeerTiers, PoolConfig, TunnelPool, order_hops, select_peers)

from .helpers import seeded_rng

US = b"\x00" * 32


def _peer(n: int, ip: str | None = None) -> Candidate:
    return Candidate.from_hosts(bytes([n]) * 32, [ip or f"10.{n}.0.1"])


def test_config_from_i2cp_options_and_clamping():
    config = PoolConfig.from_i2cp({"inbound.length": "2", "inbound.lengthVariance": "1", "inbound.quantity": "5",
                                   "inbound.backupQuantity": "1", "inbound.IPRestriction": "0",
                                   "outbound.length": "9"}, inbound=True)
    assert (config.length, config.length_variance, config.quantity, config.backup_quantity,
            config.ip_restriction) == (2, 1, 5, 1, 0)
    outbound = PoolConfig.from_i2cp({"outbound.length": "9", "outbound.quantity": "x"}, inbound=False)
    assert outbound.length == 7 and outbound.quantity == 2 and not outbound.inbound
    with pytest.raises(ValueError):
        PoolConfig(inbound=True, length=8)
    with pytest.raises(ValueError):
        PoolConfig(inbound=True, quantity=0)


@pytest.mark.parametrize("length, variance, expected", [
    (3, 0, {3}), (2, 1, {2, 3}), (2, -1, {1, 2, 3}), (0, -2, {0, 1, 2}), (7, 2, {7}), (6, 3, {6, 7})])
def test_length_variance(length, variance, expected):
    config = PoolConfig(inbound=True, length=length, length_variance=variance)
    rng = seeded_rng(1)
    assert {config.pick_length(rng) for _ in range(300)} == expected


def test_selection_rules():
    rng = seeded_rng(2)
    tier = [_peer(1), _peer(2), Candidate(US, ()), _peer(3, "10.1.9.9"), _peer(4), _peer(5)]
    for _ in range(100):
        chosen = select_peers([tier], 3, our_hash=US, rng=rng, exclude=[bytes([5]) * 32])
        assert chosen is not None and len(set(chosen)) == 3
        assert US not in chosen and bytes([5]) * 32 not in chosen
        assert not {bytes([1]) * 32, bytes([3]) * 32} <= set(chosen)  # both in 10.1/16
    assert select_peers([tier], 5, our_hash=US, rng=rng) is None
    assert select_peers([tier], 5, our_hash=US, rng=rng, ip_restriction=0) is not None


def test_ipv6_networks_and_unknown_addresses():
    a = Candidate.from_hosts(b"\x01" * 32, ["2001:db8:1::1"])
    b = Candidate.from_hosts(b"\x02" * 32, ["2001:db8:2::1"])
    c = Candidate.from_hosts(b"\x03" * 32, ["example.com"])
    assert a.networks(2) == b.networks(2)  # same /32
    assert c.networks(2) == set()
    assert select_peers([[a, b]], 2, our_hash=US, rng=seeded_rng()) is None
    assert sorted(select_peers([[a, c]], 2, our_hash=US, rng=seeded_rng())) == [b"\x01" * 32, b"\x03" * 32]


def test_tiers_are_used_in_order():
    rng = seeded_rng(3)
    fast = [_peer(1), _peer(2)]
    standard = [_peer(10), _peer(11), _peer(12)]
    counts = Counter()
    for _ in range(50):
        counts.update(select_peers([fast, standard], 3, our_hash=US, rng=rng))
    assert counts[bytes([1]) * 32] == counts[bytes([2]) * 32] == 50


def test_avoided_peers_only_as_a_last_resort():
    rng = seeded_rng(4)
    tier = [_peer(1), _peer(2), _peer(3)]
    for _ in range(30):
        assert bytes([1]) * 32 not in select_peers([tier], 2, our_hash=US, rng=rng, avoid=[bytes([1]) * 32])
    assert len(select_peers([tier], 3, our_hash=US, rng=rng, avoid=[bytes([1]) * 32])) == 3


def test_hop_order_is_fixed_per_key():
    peers = [bytes([n]) * 32 for n in range(1, 8)]
    key = b"\x5a" * 32
    first = order_hops(peers, key)
    assert order_hops(list(reversed(peers)), key) == first
    assert order_hops(peers, b"\x01" * 32) != first


def test_client_and_exploratory_tier_order():
    tiers = PeerTiers(fast=(_peer(1),), high_capacity=(_peer(2),), standard=(_peer(3),))
    client = TunnelPool(PoolConfig(inbound=True), US, seeded_rng())
    assert client.tier_order(tiers)[0] == tiers.fast
    explore = TunnelPool(PoolConfig(inbound=True, exploratory=True), US, seeded_rng())
    assert explore.tier_order(tiers)[0] == tiers.standard
    for build_id in range(10):
        explore.build_started(build_id, (), 0.0)
        explore.build_failed(build_id, 0.0)
    assert explore.stats.success_ratio == 0.0
    assert explore.tier_order(tiers)[0] == tiers.high_capacity


def test_build_schedule_retries_and_replacement():
    config = PoolConfig(inbound=False, length=2, quantity=2, max_concurrent_builds=2, retry_delay=5.0)
    pool = TunnelPool(config, US, seeded_rng(5))
    tiers = PeerTiers(standard=tuple(_peer(n) for n in range(1, 6)), fast=tuple(_peer(n) for n in range(1, 6)))
    now = 0.0
    assert pool.builds_needed(now) == 2
    hops = pool.select_hops(tiers)
    assert len(hops) == 2
    pool.build_started(1, hops, now)
    pool.build_started(2, pool.select_hops(tiers), now)
    assert pool.builds_needed(now) == 0
    pool.build_failed(2, now)
    assert pool.builds_needed(now) == 0 and pool.builds_needed(now + 5) == 1  # back-off
    assert pool.build_succeeded(1, 1111, now).hops == hops
    pool.build_started(3, pool.select_hops(tiers), now + 5)
    timed_out, _ = pool.expire(now + 5 + config.build_timeout)
    assert timed_out == [3] and pool.stats.builds_timed_out == 1
    assert pool.builds_needed(now + 39) == 0 and pool.builds_needed(now + 40) == 1  # the success reset the back-off
    pool.build_started(4, hops, now + 40)
    pool.expire(now + 70)
    assert pool.builds_needed(now + 79) == 0 and pool.builds_needed(now + 80) == 1  # second failure in a row: 10 s
    pool.build_started(5, hops, now + 80)
    pool.build_succeeded(5, 2222, now + 80)
    assert pool.builds_needed(now + 100) == 0
    # the first tunnel enters its rebuild window 90 s before expiry at 600 s
    assert pool.builds_needed(600 - 91) == 0 and pool.builds_needed(600 - 89) == 1
    _, expired = pool.expire(600.0)
    assert expired == [1111] and [t.key for t in pool.tunnels] == [2222]
    assert pool.stats.success_ratio == pytest.approx(2 / 5)
    assert pool.build_succeeded(99, 1, now) is None


def test_zero_hop_fallback_and_zero_length():
    tiers = PeerTiers(standard=(_peer(1),))
    allowing = TunnelPool(PoolConfig(inbound=True, length=3), US, seeded_rng())
    assert allowing.select_hops(tiers) == ()
    strict = TunnelPool(PoolConfig(inbound=True, length=3, allow_zero_hop=False), US, seeded_rng())
    assert strict.select_hops(tiers) is None
    zero = TunnelPool(PoolConfig(inbound=True, length=0), US, seeded_rng())
    assert zero.select_hops(tiers) == ()
    tunnel = zero.add_zero_hop(5, 0.0)
    assert tunnel.hops == () and zero.tunnels_to_test(1000.0) == []


def test_testing_schedule_and_retirement():
    config = PoolConfig(inbound=True, test_interval=30.0, max_test_failures=2)
    pool = TunnelPool(config, US, seeded_rng())
    pool.build_started(1, (b"\x01" * 32,), 0.0)
    pool.build_succeeded(1, 10, 0.0)
    assert pool.tunnels_to_test(29.0) == []
    assert pool.tunnels_to_test(30.0) == [10]
    assert pool.tunnels_to_test(31.0) == []
    assert not pool.test_result(10, False, 31.0)
    assert not pool.test_result(10, True, 61.0)
    assert not pool.test_result(10, False, 91.0)
    assert pool.test_result(10, False, 121.0)
    assert pool.tunnel(10) is None and pool.stats.tests_failed == 3


def test_a_tunnel_that_failed_a_test_is_not_used_is_replaced_and_retested_soon():
    """A hop of a tunnel may have restarted and lost it: from its first failed test the tunnel carries nothing
    (nor is it published) while another passes, and the next test comes soon; the second failure retires it."""
    config = PoolConfig(inbound=True, quantity=2, test_interval=20.0, retest_delay=5.0, max_test_failures=2)
    pool = TunnelPool(config, US, seeded_rng(9))
    for key in (10, 11):
        pool.build_started(key, (bytes([key]) * 32,), 0.0)
        pool.build_succeeded(key, key, 0.0)
    assert pool.builds_needed(1.0) == 0
    assert sorted(pool.tunnels_to_test(20.0)) == [10, 11]
    assert not pool.test_result(10, False, 30.0)
    assert [t.key for t in pool.usable(30.0)] == [11]
    assert all(pool.pick(30.0).key == 11 for _ in range(20))
    assert pool.tunnels_to_test(34.0) == [] and pool.tunnels_to_test(35.0) == [10]   # not at 40
    assert not pool.test_result(10, True, 36.0)
    assert sorted(t.key for t in pool.usable(36.0)) == [10, 11]
    # when every tunnel failed its last test, they are still used: nothing else is left
    assert not pool.test_result(10, False, 60.0) and not pool.test_result(11, False, 60.0)
    assert sorted(t.key for t in pool.usable(60.0)) == [10, 11]
    assert pool.test_result(10, False, 70.0) and pool.builds_needed(70.0) == 1


def test_a_small_pool_spreads_its_tunnels_over_different_peers():
    """Tunnels of a pool of two share no hop while there are peers enough, even when one tier alone could
    fill both: one router restarting must not break every tunnel of the pool at once."""
    for seed in range(10):
        pool = TunnelPool(PoolConfig(inbound=True, length=2, quantity=2, ip_restriction=0), US, seeded_rng(seed))
        tiers = PeerTiers(fast=(_peer(1), _peer(2)), high_capacity=(_peer(1), _peer(2), _peer(3)),
                          standard=(_peer(4), _peer(5)))
        first = pool.select_hops(tiers)
        pool.build_started(1, first, 0.0)
        second = pool.select_hops(tiers)   # while the first is still being built
        assert not set(first) & set(second)
        pool.build_succeeded(1, 100, 1.0)
        pool.build_started(2, second, 1.0)
        pool.build_succeeded(2, 200, 2.0)
        assert len(pool.select_hops(PeerTiers(fast=(_peer(1), _peer(2))))) == 2   # reuse when nothing else


def test_overused_peers_are_avoided():
    pool = TunnelPool(PoolConfig(inbound=True, length=1, ip_restriction=0), US, seeded_rng(6))
    busy = b"\x01" * 32
    for key in range(3):
        pool.build_started(key, (busy,), 0.0)
        pool.build_succeeded(key, key, 0.0)
    tiers = PeerTiers(fast=(Candidate(busy), Candidate(b"\x02" * 32)))
    assert all(pool.select_hops(tiers) == (b"\x02" * 32,) for _ in range(20))


def test_pick_and_next_wakeup():
    pool = TunnelPool(PoolConfig(inbound=True), US, seeded_rng(7))
    assert pool.pick(0.0) is None
    pool.build_started(1, (b"\x01" * 32,), 0.0)
    assert pool.next_wakeup(0.0) == 30.0  # build deadline
    pool.build_succeeded(1, 10, 0.0)
    pool.build_started(2, (b"\x02" * 32,), 500.0)
    pool.build_succeeded(2, 11, 500.0)
    assert pool.pick(520.0).key == 11  # the older one is about to expire
    assert pool.next_wakeup(520.0) == 530.0  # tunnel 11's first test (tunnel 10's, due at 30, is overdue)
    assert pool.tunnels_to_test(520.0) == [10]
    assert pool.next_wakeup(520.0) == 530.0


@given(st.lists(st.tuples(st.integers(1, 250), st.integers(0, 255)), max_size=40), st.integers(1, 7),
       st.integers(0, 4), st.integers(0, 1000))
def test_selection_properties(peers, count, restriction, seed):
    unique = dict(peers)
    candidates = [Candidate(bytes([n]) * 32, (bytes([10, ip, 0, 1]),)) for n, ip in unique.items()]
    chosen = select_peers([candidates], count, our_hash=US, rng=seeded_rng(seed), ip_restriction=restriction)
    if chosen is None:
        return
    assert len(chosen) == count == len(set(chosen))
    if restriction:
        networks = [next(c for c in candidates if c.router_hash == h).networks(restriction) for h in chosen]
        assert sum(len(n) for n in networks) == len(set().union(*networks))



def test_zero_hop_fallback_is_not_used_once_a_real_tunnel_exists():
    pool = TunnelPool(PoolConfig(inbound=True, length=2), US, seeded_rng())
    now = 100.0
    pool.add_zero_hop(1, now)
    assert [t.key for t in pool.usable(now)] == [1]          # nothing better yet: the fallback serves
    pool.build_started(7, (b"\x01" * 32, b"\x02" * 32), now)
    pool.build_succeeded(7, 2, now + 1)
    assert [t.key for t in pool.usable(now + 1)] == [2]      # never in a LeaseSet or picked beside real ones
    assert pool.pick(now + 1).key == 2
    zero_length = TunnelPool(PoolConfig(inbound=True, length=0), US, seeded_rng())
    zero_length.add_zero_hop(3, now)
    assert [t.key for t in zero_length.usable(now)] == [3]
