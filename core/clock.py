"""Injected time: protocol code asks a Clock, never the system, so tests can run a simulated one."""
from __future__ import annotations

import time
from typing import Callable, Protocol

Rng = Callable[[int], bytes]
"""Injected randomness: rng(n) returns n random bytes (os.urandom in production)."""


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch (I2P Dates, published times, skew)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (timeouts, expiry)."""


class SystemClock:
    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand."""

    __slots__ = ("now", "mono")

    def __init__(self, now: float = 1_750_000_000.0):
        self.now = now
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds
