"""Bounded helpers that keep hostile input cheap: replay filter, token buckets (one or per key)."""
from __future__ import annotations

from collections import OrderedDict


class ReplayFilter:
    """Keys seen within `window` seconds, at most `capacity` of them (oldest forgotten first)."""

    __slots__ = ("window", "capacity", "_seen")

    def __init__(self, window: float, capacity: int):
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, key: bytes, now: float) -> bool:
        at = self._seen.get(key)
        return at is not None and now - at <= self.window

    def add(self, key: bytes, now: float) -> None:
        self._seen[key] = now
        self._seen.move_to_end(key)
        self.expire(now)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at <= self.window:
                break
            del self._seen[key]


class TokenBucket:
    """`rate` operations per second on average, `burst` at once; driven by the injected monotonic clock."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def take(self, now: float) -> bool:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """A TokenBucket per key (an IP address), at most `capacity` keys (least recently used forgotten first)."""

    __slots__ = ("rate", "burst", "capacity", "_buckets")

    def __init__(self, rate: float, burst: float, capacity: int):
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key, now: float) -> bool:
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket
        while len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return bucket.take(now)
