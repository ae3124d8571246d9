"""Who we upload to: the best few interested peers by rate, plus one optimistic unchoke (BEP 3 "choking")."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Hashable

RECHOKE_INTERVAL = 10.0
OPTIMISTIC_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class PeerRates:
    key: Hashable
    interested: bool
    rate: float                   # what they give us (leeching) or take from us (seeding), bytes/s


class Choker:
    def __init__(self, slots: int = 4, *, rng: random.Random | None = None):
        self.slots = max(1, slots)
        self.rng = rng or random.Random()
        self.optimistic: Hashable | None = None
        self.optimistic_since = float("-inf")

    def rechoke(self, peers: list[PeerRates], now: float) -> set[Hashable]:
        """The peers to have unchoked from now on."""
        interested = [p for p in peers if p.interested]
        keys = {p.key for p in interested}
        best = sorted(interested, key=lambda p: (-p.rate, str(p.key)))[:self.slots - 1]
        unchoked = {p.key for p in best}
        if self.optimistic not in keys or now - self.optimistic_since >= OPTIMISTIC_INTERVAL:
            others = [p.key for p in interested if p.key not in unchoked]
            self.optimistic = self.rng.choice(others) if others else None
            self.optimistic_since = now
        if self.optimistic is not None and self.optimistic not in unchoked:
            unchoked.add(self.optimistic)
        # fill free slots (few peers: unchoke everyone interested)
        for p in sorted(interested, key=lambda p: -p.rate):
            if len(unchoked) >= self.slots:
                break
            unchoked.add(p.key)
        return unchoked
