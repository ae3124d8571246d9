"""Routing keys rotate at UTC midnight; XOR ordering and closest-N selection."""
import calendar

from hypothesis import given
from hypothesis import strategies as st

from core.crypto.hashes import sha256
from core.netdb.kademlia import RoutingKeys, closest, date_string, routing_key, sort_by_distance, xor_distance

KEY = bytes(range(32))
MIDNIGHT = calendar.timegm((2026, 11, 3, 0, 0, 0))   # 2026-11-03 00:00:00 UTC

hashes = st.binary(min_size=32, max_size=32)


def test_routing_key_is_sha256_of_key_and_utc_date():
    assert date_string(MIDNIGHT) == b"20261103"
    assert routing_key(KEY, MIDNIGHT + 5) == sha256(KEY + b"20261103")


def test_routing_key_changes_exactly_at_utc_midnight():
    before, after = MIDNIGHT - 0.001, MIDNIGHT
    assert date_string(before) == b"20261102" and date_string(after) == b"20261103"
    assert routing_key(KEY, before) == sha256(KEY + b"20261102")
    assert routing_key(KEY, before) != routing_key(KEY, after)
    assert routing_key(KEY, MIDNIGHT + 86399.9) == routing_key(KEY, after)


def test_routing_key_cache_follows_the_date():
    keys = RoutingKeys(max_entries=2)
    assert keys.get(KEY, MIDNIGHT - 1) == sha256(KEY + b"20261102")
    assert keys.get(KEY, MIDNIGHT) == sha256(KEY + b"20261103")
    for i in range(5):   # bounded: the cache resets rather than grows
        keys.get(bytes([i]) * 32, MIDNIGHT)
    assert len(keys._cache) <= 2
    assert keys.get(KEY, MIDNIGHT) == sha256(KEY + b"20261103")


def test_routing_key_cache_default_stays_small():
    keys = RoutingKeys()
    for i in range(5000):   # an hour of explorations: random keys that never come back
        keys.get(i.to_bytes(32, "big"), MIDNIGHT)
    assert len(keys._cache) <= 256


def test_xor_distance_examples():
    assert xor_distance(bytes(32), bytes(32)) == 0
    assert xor_distance(b"\x80" + bytes(31), bytes(32)) == 1 << 255
    assert xor_distance(bytes(31) + b"\x03", bytes(31) + b"\x01") == 2


@given(st.lists(hashes, min_size=0, max_size=30, unique=True), hashes, st.integers(0, 40),
       st.lists(hashes, max_size=5))
def test_closest_matches_brute_force(items, target, count, exclude):
    exclude = exclude + items[:2]
    expected = sorted((h for h in items if h not in exclude), key=lambda h: xor_distance(h, target))[:count]
    assert closest(target, items, count, exclude) == expected
    ordered = sort_by_distance(target, items)
    assert [xor_distance(h, target) for h in ordered] == sorted(xor_distance(h, target) for h in items)


def test_closest_with_key_function():
    items = [("a", b"\x01" * 32), ("b", b"\x00" * 32), ("c", b"\xff" * 32)]
    assert closest(bytes(32), items, 2, key=lambda item: item[1]) == [items[1], items[0]]
    assert closest(bytes(32), items, 2, exclude=[b"\x00" * 32], key=lambda item: item[1]) == [items[0], items[2]]
