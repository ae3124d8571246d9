"""Kademlia closeness for the netDb: daily routing keys and XOR distance (network-database.md "Kademlia Closeness Metric")."""
from __future__ import annotations

import time
from typing import Callable, Iterable, TypeVar

from core.crypto.hashes import sha256

HASH_SIZE = 32
T = TypeVar("T")


def date_string(now: float) -> bytes:
    """The UTC date of wall-clock `now` as the 8 ASCII bytes yyyyMMdd."""
    return time.strftime("%Y%m%d", time.gmtime(now)).encode("ascii")


def routing_key(key: bytes, now: float) -> bytes:
    """SHA256(key + yyyyMMdd): where `key` lives in the keyspace today; never sent on the wire."""
    return sha256(key + date_string(now))


def xor_distance(a: bytes, b: bytes) -> int:
    """Kademlia distance as an integer (smaller is closer)."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def sort_by_distance(target: bytes, items: Iterable[T], key: Callable[[T], bytes] = lambda x: x) -> list[T]:
    """`items` ordered closest-first to `target` (a routing key) by the XOR of their hashes."""
    t = int.from_bytes(target, "big")
    return sorted(items, key=lambda item: int.from_bytes(key(item), "big") ^ t)


def closest(target: bytes, items: Iterable[T], count: int, exclude: Iterable[bytes] = (),
            key: Callable[[T], bytes] = lambda x: x) -> list[T]:
    """The `count` items closest to `target`, skipping those whose hash is in `exclude`."""
    excluded = set(exclude)
    t = int.from_bytes(target, "big")
    scored = [(int.from_bytes(h, "big") ^ t, i, item) for i, item in enumerate(items)
              if (h := key(item)) not in excluded]
    if count <= 0:
        return []
    scored.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in scored[:count]]


class RoutingKeys:
    """Routing keys with a cache that resets when the UTC date changes (the keyspace rotates at midnight).

    Small: it spares the hash of keys looked up or flooded again and again; exploration's random keys never
    repeat, and a large cache of them grew a running router for an hour before its first reset."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._date = b""
        self._cache: dict[bytes, bytes] = {}

    def get(self, key: bytes, now: float) -> bytes:
        date = date_string(now)
        if date != self._date:
            self._date = date
            self._cache.clear()
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            cached = self._cache[key] = sha256(key + date)
        return cached
