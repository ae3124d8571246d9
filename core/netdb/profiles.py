"""Peer profiles: what we observed of each peer, and the tiers tunnel and netDb code pick peers from (peer-selection.md).

Counters decay with a half-life, so recent behaviour counts more and old data fades within about two days.
"""
from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Iterable

from core.clock import Clock, Rng
from core.data.encoding import b64decode, b64encode
from core.data.errors import ProtocolError
from core.fsutil import atomic_write_text

log = logging.getLogger(__name__)

HALF_LIFE_S = 12 * 3600                 # statistics up to 48 hours old still count a little ("Capacity")
RECALCULATE_S = 45.0                    # "Recalculation and Stability"
FAST_LIMIT = 30                         # "Group size limits"
HIGH_CAPACITY_LIMIT = 75
CONNECT_FAILURE_BAN_S = 600             # "Peers for which a recent connection attempt failed are not used"
LATENCY_WEIGHT = 0.25                   # exponential moving average of latencies
MAX_PROFILE_FILE_BYTES = 4096

_COUNTERS = ("lookup_successes", "lookup_failures", "connect_failures", "tunnel_accepts", "tunnel_rejects",
             "tunnel_drops", "stores_verified", "store_failures")


class Tier(str, Enum):
    FAST = "fast"
    HIGH_CAPACITY = "high_capacity"
    STANDARD = "standard"
    FAILING = "failing"


@dataclass(slots=True)
class PeerProfile:
    """Observations of one peer; times are wall-clock seconds, counters decay (see decay())."""

    peer: bytes
    first_seen: float
    updated: float                      # when the counters were last decayed
    last_success: float = 0.0
    last_connect_failure: float = 0.0
    lookup_successes: float = 0.0       # lookups answered (store or search reply)
    lookup_failures: float = 0.0        # lookups that timed out
    lookup_latency_ms: float = 0.0      # moving average; 0 is unknown
    connect_failures: float = 0.0
    tunnel_accepts: float = 0.0
    tunnel_rejects: float = 0.0
    tunnel_drops: float = 0.0           # build requests never answered, failed tunnel tests
    tunnel_latency_ms: float = 0.0
    stores_verified: float = 0.0
    store_failures: float = 0.0

    def decay(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed <= 0:
            return
        factor = 0.5 ** (elapsed / HALF_LIFE_S)
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) * factor)
        self.updated = now

    @property
    def capacity(self) -> float:
        """Roughly the tunnels it would accept: drops weigh more than rejections ("Capacity")."""
        return (self.tunnel_accepts - 0.5 * self.tunnel_rejects - 2.0 * self.tunnel_drops
                + 0.25 * self.lookup_successes - 0.5 * self.lookup_failures + 0.25 * self.stores_verified)

    @property
    def speed(self) -> float:
        """Higher is faster: inverse of the observed round-trip latency; 0 when never measured."""
        latency = self.tunnel_latency_ms or self.lookup_latency_ms
        return 1000.0 / latency if latency > 0 else 0.0

    def is_failing(self, now: float) -> bool:
        if self.last_connect_failure > self.last_success and now - self.last_connect_failure < CONNECT_FAILURE_BAN_S:
            return True
        tunnel_failures = self.tunnel_rejects + self.tunnel_drops
        if tunnel_failures >= 8 and self.tunnel_accepts < 0.1 * tunnel_failures:
            return True
        return self.lookup_failures >= 4 and self.lookup_successes < 0.25 * self.lookup_failures

    def is_bad_floodfill(self, now: float) -> bool:
        """A floodfill to ask last: it does not answer, or we cannot reach it."""
        if self.last_connect_failure > self.last_success and now - self.last_connect_failure < CONNECT_FAILURE_BAN_S:
            return True
        return self.lookup_failures >= 2 and self.lookup_successes < self.lookup_failures

    def to_json(self) -> str:
        data = asdict(self)
        data["peer"] = b64encode(self.peer)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PeerProfile:
        """ParseError for anything but a profile we wrote."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            peer = b64decode(data.pop("peer"))
            if len(peer) != 32:
                raise ValueError("peer is not a 32-byte hash")
            known = {f.name for f in fields(cls)} - {"peer"}
            values = {}
            for name, value in data.items():
                if name in known:
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                        raise ValueError(f"{name} is not a number")
                    values[name] = float(value)
            return cls(peer, **{"first_seen": 0.0, "updated": 0.0, **values})
        except (ValueError, KeyError, TypeError, AttributeError, ProtocolError) as exc:
            raise ProtocolError(f"bad profile: {exc}", structure="PeerProfile") from None


def profile_path(root: Path, peer: bytes) -> Path:
    name = b64encode(peer)
    return root / f"p{name[0]}" / f"profile-{name}.json"


class ProfileStore:
    """Profiles by peer hash, bounded (least recently updated go first), saved under DATADIR/peerProfiles."""

    def __init__(self, root: Path | None, clock: Clock, rng: Rng = os.urandom, max_profiles: int = 2000):
        self.root = root
        self.clock = clock
        self.rng = rng
        self.max_profiles = max_profiles
        self.profiles: dict[bytes, PeerProfile] = {}
        self._dirty: set[bytes] = set()
        self._tiers: dict[bytes, Tier] = {}
        self._tiers_at = -1e18

    def __len__(self) -> int:
        return len(self.profiles)

    def get(self, peer: bytes) -> PeerProfile | None:
        return self.profiles.get(peer)

    def _profile(self, peer: bytes) -> PeerProfile:
        now = self.clock.time()
        profile = self.profiles.get(peer)
        if profile is None:
            if len(self.profiles) >= self.max_profiles:
                self._evict()
            profile = self.profiles[peer] = PeerProfile(peer, first_seen=now, updated=now)
        profile.decay(now)
        self._dirty.add(peer)
        return profile

    def _evict(self) -> None:
        oldest = min(self.profiles.values(), key=lambda p: max(p.updated, p.last_success))
        del self.profiles[oldest.peer]
        self._dirty.discard(oldest.peer)
        if self.root is not None:
            profile_path(self.root, oldest.peer).unlink(missing_ok=True)

    @staticmethod
    def _average(old: float, sample: float) -> float:
        return sample if old <= 0 else old + LATENCY_WEIGHT * (sample - old)

    # --- what the netDb, transports and tunnel builder report

    def record_lookup_reply(self, peer: bytes, latency_ms: float) -> None:
        p = self._profile(peer)
        p.lookup_successes += 1
        p.lookup_latency_ms = self._average(p.lookup_latency_ms, max(latency_ms, 1.0))
        p.last_success = self.clock.time()

    def record_lookup_timeout(self, peer: bytes) -> None:
        self._profile(peer).lookup_failures += 1

    def record_store_verified(self, peer: bytes) -> None:
        p = self._profile(peer)
        p.stores_verified += 1
        p.last_success = self.clock.time()

    def record_store_failed(self, peer: bytes) -> None:
        self._profile(peer).store_failures += 1

    def record_connect_success(self, peer: bytes) -> None:
        self._profile(peer).last_success = self.clock.time()

    def record_connect_failure(self, peer: bytes) -> None:
        p = self._profile(peer)
        p.connect_failures += 1
        p.last_connect_failure = self.clock.time()

    def record_tunnel_accept(self, peer: bytes, latency_ms: float | None = None) -> None:
        p = self._profile(peer)
        p.tunnel_accepts += 1
        if latency_ms is not None:
            p.tunnel_latency_ms = self._average(p.tunnel_latency_ms, max(latency_ms, 1.0))
        p.last_success = self.clock.time()

    def record_tunnel_reject(self, peer: bytes) -> None:
        self._profile(peer).tunnel_rejects += 1

    def record_tunnel_drop(self, peer: bytes) -> None:
        self._profile(peer).tunnel_drops += 1

    # --- tiers ("Peer organization")

    def tiers(self) -> dict[bytes, Tier]:
        """Tier of every profiled peer, recomputed at most every 45 s."""
        now = self.clock.monotonic()
        if now - self._tiers_at >= RECALCULATE_S:
            self._tiers = self._organize()
            self._tiers_at = now
        return self._tiers

    def invalidate_tiers(self) -> None:
        self._tiers_at = -1e18

    def tier(self, peer: bytes) -> Tier:
        """Unprofiled peers are standard."""
        return self.tiers().get(peer, Tier.STANDARD)

    def _organize(self) -> dict[bytes, Tier]:
        now = self.clock.time()
        tiers: dict[bytes, Tier] = {}
        healthy = []
        for peer, profile in self.profiles.items():
            profile.decay(now)
            if profile.is_failing(now):
                tiers[peer] = Tier.FAILING
            else:
                tiers[peer] = Tier.STANDARD
                healthy.append(profile)
        if not healthy:
            return tiers
        capacity_median = _median([p.capacity for p in healthy])
        high = [p for p in healthy if p.capacity > 0 and p.capacity >= capacity_median]
        high.sort(key=lambda p: p.capacity, reverse=True)
        high = high[:HIGH_CAPACITY_LIMIT]
        speed_median = _median([p.speed for p in healthy])
        fast = [p for p in high if p.speed > 0 and p.speed >= speed_median]
        fast.sort(key=lambda p: p.speed, reverse=True)
        for p in high:
            tiers[p.peer] = Tier.HIGH_CAPACITY
        for p in fast[:FAST_LIMIT]:
            tiers[p.peer] = Tier.FAST
        return tiers

    def counts(self) -> dict[Tier, int]:
        counts = {tier: 0 for tier in Tier}
        for tier in self.tiers().values():
            counts[tier] += 1
        return counts

    def select_peers(self, tier: Tier | str, count: int, exclude: Iterable[bytes] = (),
                     candidates: Iterable[bytes] | None = None) -> list[bytes]:
        """Up to `count` random peers of `tier`, topped up from lower tiers (fast, high capacity, standard).

        Failing peers are never returned. `candidates` (e.g. every router in the netDb) adds unprofiled
        peers to the standard tier.
        """
        tier = Tier(tier)
        if tier == Tier.FAILING or count <= 0:
            return []
        tiers = self.tiers()
        excluded = set(exclude)
        pool: dict[Tier, list[bytes]] = {t: [] for t in Tier}
        for peer, t in tiers.items():
            if peer not in excluded:
                pool[t].append(peer)
        if candidates is not None:
            pool[Tier.STANDARD].extend(p for p in candidates if p not in excluded and p not in tiers)
        order = [Tier.FAST, Tier.HIGH_CAPACITY, Tier.STANDARD]
        chosen: list[bytes] = []
        shuffler = random.Random(int.from_bytes(self.rng(8), "big"))
        for t in order[order.index(tier):]:
            group = sorted(set(pool[t]) - set(chosen))
            shuffler.shuffle(group)
            chosen.extend(group[:count - len(chosen)])
            if len(chosen) >= count:
                break
        return chosen

    # --- persistence

    def save(self) -> int:
        """Write changed profiles (atomically), on this thread; returns how many."""
        return self.write_files(self.take_unsaved())

    def take_unsaved(self) -> list[tuple[Path, str]]:
        """Changed profiles as (path, JSON), serialized now (on the event loop, where they change)."""
        dirty, self._dirty = self._dirty, set()
        if self.root is None:
            return []
        return [(profile_path(self.root, peer), profile.to_json())
                for peer in dirty if (profile := self.profiles.get(peer)) is not None]

    @staticmethod
    def write_files(changes: list[tuple[Path, str]]) -> int:
        """Write take_unsaved()'s profiles anywhere (a thread); returns how many were written."""
        written = 0
        for path, text in changes:
            try:
                atomic_write_text(path, text)
                written += 1
            except OSError as exc:
                log.warning("profiles: cannot save %s: %s", path.name, exc.strerror or exc)
        return written

    def load(self) -> int:
        if self.root is None or not self.root.is_dir():
            return 0
        loaded = 0
        for path in sorted(self.root.glob("p?/profile-*.json")):
            if len(self.profiles) >= self.max_profiles:
                break
            try:
                if path.stat().st_size > MAX_PROFILE_FILE_BYTES:
                    raise ProtocolError("profile file too large", structure="PeerProfile")
                profile = PeerProfile.from_json(path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ProtocolError) as exc:
                log.debug("profiles: dropping %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            self.profiles[profile.peer] = profile
            loaded += 1
        self.invalidate_tiers()
        return loaded


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
