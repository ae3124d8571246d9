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


class BufferedRng:
    """An Rng drawing from `source` a block at a time: one system call for many IVs, paddings and message ids.
    For values sent in the clear or short-lived; keys take their bytes from the source directly."""

    __slots__ = ("_source", "_block", "_buf", "_pos")

    def __init__(self, source: Rng, block: int = 4096):
        self._source = source
        self._block = block
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            if n > self._block:
                return self._source(n)
            self._buf = self._source(self._block)
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]
