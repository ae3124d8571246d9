"""Rates from running byte counters, sampled once a second (I2PControl's 1 s and 15 s bandwidth), and a
process's resident memory and CPU times (for benchmarks and memory-bound tests)."""
from __future__ import annotations

import os
from collections import deque


class RateMeter:
    """Keeps (time, total) samples for `window_s` seconds; rate(s) is bytes per second over the last s seconds."""

    __slots__ = ("window_s", "_samples")

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def rate(self, seconds: float) -> float:
        if len(self._samples) < 2:
            return 0.0
        now, total = self._samples[-1]
        for then, earlier in self._samples:
            if now - then <= seconds + 1e-9:
                break
        elapsed = now - then
        return (total - earlier) / elapsed if elapsed > 0 else 0.0


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB, from /proc (0.0 where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_times(pid: int | str = "self") -> tuple[float, float]:
    """User and system CPU seconds of a process, from /proc/PID/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks
