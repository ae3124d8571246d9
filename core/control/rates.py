"""A bounded history of router counters, sampled about once a second, for GetRate over a period."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .api import RouterSnapshot


@dataclass(frozen=True, slots=True)
class RateSample:
    at: float                  # monotonic seconds
    bytes_received: int
    bytes_sent: int
    participating_tunnels: int
    active_peers: int


COUNTERS = ("bytes_received", "bytes_sent")
GAUGES = ("participating_tunnels", "active_peers")


class RateHistory:
    def __init__(self, capacity: int = 3600):
        self.capacity = capacity
        self._samples: deque[RateSample] = deque(maxlen=capacity + 1)

    def __len__(self) -> int:
        return len(self._samples)

    def record(self, at: float, snapshot: RouterSnapshot) -> None:
        if self._samples and at <= self._samples[-1].at:
            return  # a clock that did not move adds nothing and would divide by zero
        self._samples.append(RateSample(at, snapshot.bytes_received, snapshot.bytes_sent,
                                        snapshot.participating_tunnels, snapshot.active_peers))

    def counter_rate(self, counter: str, period_s: float) -> float | None:
        """Per-second increase of a counter over the last `period_s` seconds; None without two samples."""
        if counter not in COUNTERS or len(self._samples) < 2:
            return None
        last = self._samples[-1]
        start = last.at - period_s
        base = self._samples[0]
        for sample in self._samples:  # newest sample at or before the window start, else the oldest
            if sample.at > start:
                break
            base = sample
        if base is last:
            return None
        return max(0, getattr(last, counter) - getattr(base, counter)) / (last.at - base.at)

    def gauge_mean(self, gauge: str, period_s: float) -> float | None:
        """Mean of a gauge's samples in the last `period_s` seconds; None without samples."""
        if gauge not in GAUGES or not self._samples:
            return None
        start = self._samples[-1].at - period_s
        values = [getattr(s, gauge) for s in self._samples if s.at >= start]
        return sum(values) / len(values)
