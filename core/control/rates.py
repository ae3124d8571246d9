"""A bounded history of router counters, sampled about once a second, for GetRate over a period."""
from __future__ import annotations

from array import array
from typing import Iterator

from .api import RouterSnapshot

COUNTERS = ("bytes_received", "bytes_sent")
GAUGES = ("participating_tunnels", "active_peers")


class RateHistory:
    """The last `capacity` + 1 samples in a ring of arrays allocated up front: an hour of one-second samples
    is about 140 KB whether the router ran one minute or a week, so the history never grows a running router."""

    __slots__ = ("capacity", "_at", "_values", "_start", "_count")

    def __init__(self, capacity: int = 3600):
        self.capacity = capacity
        size = capacity + 1
        self._at = array("d", bytes(8 * size))                       # monotonic seconds
        self._values = {name: array("q", bytes(8 * size)) for name in COUNTERS + GAUGES}
        self._start = self._count = 0

    def __len__(self) -> int:
        return self._count

    def _slots(self) -> Iterator[int]:
        """Ring indexes, oldest first."""
        size = len(self._at)
        return ((self._start + i) % size for i in range(self._count))

    def _last(self) -> int:
        return (self._start + self._count - 1) % len(self._at)

    def record(self, at: float, snapshot: RouterSnapshot) -> None:
        if self._count and at <= self._at[self._last()]:
            return  # a clock that did not move adds nothing and would divide by zero
        size = len(self._at)
        if self._count == size:
            self._start = (self._start + 1) % size
        else:
            self._count += 1
        slot = self._last()
        self._at[slot] = at
        for name, values in self._values.items():
            values[slot] = getattr(snapshot, name)

    def counter_rate(self, counter: str, period_s: float) -> float | None:
        """Per-second increase of a counter over the last `period_s` seconds; None without two samples."""
        if counter not in COUNTERS or self._count < 2:
            return None
        at, values, last = self._at, self._values[counter], self._last()
        start = at[last] - period_s
        base = self._start
        for slot in self._slots():  # newest sample at or before the window start, else the oldest
            if at[slot] > start:
                break
            base = slot
        if base == last:
            return None
        return max(0, values[last] - values[base]) / (at[last] - at[base])

    def gauge_mean(self, gauge: str, period_s: float) -> float | None:
        """Mean of a gauge's samples in the last `period_s` seconds; None without samples."""
        if gauge not in GAUGES or not self._count:
            return None
        at, values = self._at, self._values[gauge]
        start = at[self._last()] - period_s
        window = [values[slot] for slot in self._slots() if at[slot] >= start]
        return sum(window) / len(window)
