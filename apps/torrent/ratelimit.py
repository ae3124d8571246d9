"""Token buckets for upload/download limits; a torrent's bucket and the global one are both asked."""
from __future__ import annotations

from typing import Callable


class TokenBucket:
    """`rate` bytes per second (0: unlimited), bursts of up to one second's worth (at least 64 KiB)."""

    def __init__(self, rate: int, now: Callable[[], float]):
        self.now = now
        self.set_rate(rate)

    def set_rate(self, rate: int) -> None:
        self.rate = max(0, int(rate))
        self.capacity = max(self.rate, 64 * 1024)
        self.tokens = float(self.capacity)
        self.updated = self.now()

    def delay(self, amount: int) -> float:
        """Take `amount` bytes; the seconds to wait before sending them (0 when there is room)."""
        if not self.rate:
            return 0.0
        now = self.now()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateMeter:
    """Bytes per second over a sliding window of `window` seconds, on an injected clock."""

    def __init__(self, now: Callable[[], float], window: float = 10.0):
        self.now = now
        self.window = window
        self.samples: list[tuple[float, int]] = []
        self.total = 0

    def add(self, amount: int) -> None:
        t = self.now()
        self.total += amount
        if self.samples and t - self.samples[-1][0] < 0.5:
            last = self.samples[-1]
            self.samples[-1] = (last[0], last[1] + amount)
        else:
            self.samples.append((t, amount))
        self._trim(t)

    def _trim(self, t: float) -> None:
        while self.samples and t - self.samples[0][0] > self.window:
            self.samples.pop(0)

    def rate(self) -> float:
        t = self.now()
        self._trim(t)
        return sum(a for _, a in self.samples) / self.window
