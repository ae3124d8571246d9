"""Tunnel pools (sans-I/O): how many tunnels to keep, when to build and test, which peers to use.

The router asks `builds_needed(now)`, picks peers with `select_hops()`, reports outcomes with
`build_started/succeeded/failed`, calls `expire(now)` and runs `tunnels_to_test(now)`; `next_wakeup(now)`
says when to come back. Times are Clock.monotonic() seconds.
"""
from __future__ import annotations

import hashlib
import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from core.clock import Rng

from .build import MAX_HOPS, randbelow

TUNNEL_LIFETIME = 600.0  # tunnel-implementation.md: 10 minutes
MAX_QUANTITY = 16  # i2cp-overview.md: inbound.quantity 1 to 16


def _int_option(options: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key)
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """One pool's settings; the I2CP tunnel options (i2cp-overview.md "Options") plus timing."""

    inbound: bool
    length: int = 3
    length_variance: int = 0  # +x: add 0..x; -x: add -x..x
    quantity: int = 2
    backup_quantity: int = 0
    ip_restriction: int = 2  # IP bytes two hops may not share (2 = same /16); 0 turns the rule off
    exploratory: bool = False
    allow_zero_hop: bool = True  # fall back to a zero-hop tunnel when no peers can be had
    build_timeout: float = 30.0
    rebuild_before_expiry: float = 90.0  # start a replacement this long before a tunnel expires
    test_interval: float = 30.0
    retest_delay: float = 5.0  # a tunnel that failed a test is tested again this soon
    max_test_failures: int = 2  # consecutive failed tests that retire a tunnel
    max_concurrent_builds: int = 3
    retry_delay: float = 5.0  # after a failed build, doubling per consecutive failure ...
    max_retry_delay: float = 60.0  # ... up to this

    def __post_init__(self) -> None:
        if not 0 <= self.length <= MAX_HOPS:
            raise ValueError(f"tunnel length {self.length}, valid 0-{MAX_HOPS}")
        if not -MAX_HOPS <= self.length_variance <= MAX_HOPS:
            raise ValueError(f"length variance {self.length_variance}, valid -7 to 7")
        if not 1 <= self.quantity <= MAX_QUANTITY or not 0 <= self.backup_quantity <= MAX_QUANTITY:
            raise ValueError("quantity is 1-16 and backup quantity 0-16")
        if not 0 <= self.ip_restriction <= 4:
            raise ValueError("IP restriction counts 0-4 bytes")

    @classmethod
    def from_i2cp(cls, options: Mapping[str, str], inbound: bool, **overrides) -> "PoolConfig":
        """inbound.* or outbound.* options; out-of-range values are clamped, unparsable ones ignored."""
        prefix = "inbound." if inbound else "outbound."
        return cls(inbound=inbound,
                   length=_int_option(options, prefix + "length", 3, 0, MAX_HOPS),
                   length_variance=_int_option(options, prefix + "lengthVariance", 0, -MAX_HOPS, MAX_HOPS),
                   quantity=_int_option(options, prefix + "quantity", 2, 1, MAX_QUANTITY),
                   backup_quantity=_int_option(options, prefix + "backupQuantity", 0, 0, MAX_QUANTITY),
                   ip_restriction=_int_option(options, prefix + "IPRestriction", 2, 0, 4), **overrides)

    def pick_length(self, rng: Rng) -> int:
        variance = self.length_variance
        if variance > 0:
            offset = randbelow(rng, variance + 1)
        elif variance < 0:
            offset = randbelow(rng, -2 * variance + 1) + variance
        else:
            offset = 0
        return min(max(self.length + offset, 0), MAX_HOPS)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A peer the router offers for selection, with the packed IP addresses of its RouterInfo."""

    router_hash: bytes
    addresses: tuple[bytes, ...] = ()

    @classmethod
    def from_hosts(cls, router_hash: bytes, hosts: Iterable[str]) -> "Candidate":
        packed = []
        for host in hosts:
            try:
                packed.append(ipaddress.ip_address(host).packed)
            except ValueError:
                continue  # a hostname or junk: no IP to compare
        return cls(router_hash, tuple(packed))

    def networks(self, restriction: int) -> set[bytes]:
        """Address prefixes two hops may not share: `restriction` bytes of IPv4, twice that of IPv6."""
        if restriction == 0:
            return set()
        return {address[:restriction if len(address) == 4 else 2 * restriction] for address in self.addresses}


@dataclass(frozen=True, slots=True)
class PeerTiers:
    """peer-selection.md groups: fast within high capacity within all; standard = not high capacity."""

    fast: tuple[Candidate, ...] = ()
    high_capacity: tuple[Candidate, ...] = ()
    standard: tuple[Candidate, ...] = ()


def order_hops(router_hashes: Sequence[bytes], key: bytes) -> list[bytes]:
    """Strict peer order per pool: by XOR(SHA256(peer + key), key) (tunnel-implementation.md "Peer Ordering")."""
    key_int = int.from_bytes(key, "big")

    def distance(peer: bytes) -> int:
        return int.from_bytes(hashlib.sha256(peer + key).digest(), "big") ^ key_int

    return sorted(router_hashes, key=distance)


def select_peers(tiers: Sequence[Sequence[Candidate]], count: int, *, our_hash: bytes, rng: Rng,
                 ip_restriction: int = 2, exclude: Iterable[bytes] = (),
                 avoid: Iterable[bytes] = ()) -> list[bytes] | None:
    """`count` distinct peers, tier by tier at random: never us, never twice, never two from one network.

    Peers in `avoid` (over-used ones) are taken only when nothing else fits. None when `count` cannot be met.
    """
    excluded = set(exclude) | {our_hash}
    avoided = set(avoid)
    chosen: list[bytes] = []
    used_networks: set[bytes] = set()
    for only_preferred in (True, False):
        for tier in tiers:
            pool = [c for c in tier if c.router_hash not in excluded and (not only_preferred
                                                                          or c.router_hash not in avoided)]
            while pool and len(chosen) < count:
                candidate = pool.pop(randbelow(rng, len(pool)))
                if candidate.router_hash in excluded:
                    continue
                networks = candidate.networks(ip_restriction)
                if networks & used_networks:
                    continue
                chosen.append(candidate.router_hash)
                excluded.add(candidate.router_hash)
                used_networks |= networks
            if len(chosen) == count:
                return chosen
    return None


@dataclass(slots=True)
class PoolTunnel:
    """A tunnel in the pool: `key` is our id for it (inbound: receive id; outbound: first hop's tunnel id)."""

    key: int
    hops: tuple[bytes, ...]
    created_at: float
    expires_at: float
    last_tested: float
    test_failures: int = 0
    replaced: bool = False  # a replacement build was started for it


@dataclass(slots=True)
class _PendingBuild:
    hops: tuple[bytes, ...]
    started_at: float
    deadline: float


@dataclass
class PoolStats:
    builds_started: int = 0
    builds_succeeded: int = 0
    builds_failed: int = 0
    builds_timed_out: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=50))  # True/False per finished build

    @property
    def success_ratio(self) -> float | None:
        """Share of the last 50 finished builds that succeeded; None before any finished."""
        return sum(self.recent) / len(self.recent) if self.recent else None


class TunnelPool:
    """One pool (exploratory or client, inbound or outbound): its tunnels, pending builds and schedule."""

    LOW_SUCCESS_RATIO = 0.4  # peer-selection.md: exploratory builds move to high capacity peers below this

    def __init__(self, config: PoolConfig, our_hash: bytes, rng: Rng, *, order_key: bytes | None = None):
        self.config = config
        self.our_hash = our_hash
        self._rng = rng
        self.order_key = order_key or rng(32)  # a new ordering per pool and restart
        self._tunnels: dict[int, PoolTunnel] = {}
        self._pending: dict[int, _PendingBuild] = {}
        self._failures_in_a_row = 0
        self._next_build_at = 0.0
        self.stats = PoolStats()

    # --- state

    @property
    def tunnels(self) -> list[PoolTunnel]:
        return list(self._tunnels.values())

    @property
    def pending_builds(self) -> int:
        return len(self._pending)

    def tunnel(self, key: int) -> PoolTunnel | None:
        return self._tunnels.get(key)

    def usable(self, now: float) -> list[PoolTunnel]:
        """Unexpired tunnels that passed their last test (those that failed it only while no other is left: a hop
        of theirs may be gone); a zero-hop fallback only while the pool has nothing longer (it would put our own
        router in a LeaseSet, or be the first hop of a client's traffic)."""
        live = [t for t in self._tunnels.values() if t.expires_at > now]
        if self.config.length > 0 and any(t.hops for t in live):
            live = [t for t in live if t.hops]
        return [t for t in live if not t.test_failures] or live

    def _healthy(self, now: float) -> int:
        """Tunnels that will not need replacing soon; a zero-hop fallback counts only in a zero-length pool. One
        that failed a test still counts until retired: its partner may have been the broken one, and builds
        started before the profiles know which peer went away fail more (tests/sim)."""
        horizon = now + self.config.rebuild_before_expiry
        zero_counts = self.config.length == 0
        return sum(1 for t in self._tunnels.values() if t.expires_at > horizon and (t.hops or zero_counts))

    # --- building

    def builds_needed(self, now: float) -> int:
        """How many builds to start now: the shortfall to quantity + backup, minus builds in flight."""
        if now < self._next_build_at:
            return 0
        wanted = self.config.quantity + self.config.backup_quantity
        shortfall = wanted - self._healthy(now) - len(self._pending)
        room = self.config.max_concurrent_builds - len(self._pending)
        return max(0, min(shortfall, room))

    def tier_order(self, tiers: PeerTiers) -> list[Sequence[Candidate]]:
        """Client pools: fast first; exploratory: the standard group, or high capacity when builds go badly."""
        if not self.config.exploratory:
            return [tiers.fast, tiers.high_capacity, tiers.standard]
        ratio = self.stats.success_ratio
        if ratio is not None and len(self.stats.recent) >= 10 and ratio < self.LOW_SUCCESS_RATIO:
            return [tiers.high_capacity, tiers.standard, tiers.fast]
        return [tiers.standard, tiers.high_capacity, tiers.fast]

    def select_hops(self, tiers: PeerTiers, exclude: Iterable[bytes] = ()) -> tuple[bytes, ...] | None:
        """Hops for one new tunnel in tunnel order (inbound: gateway first); () for zero-hop; None if impossible."""
        length = self.config.pick_length(self._rng)
        if length == 0:
            return () if self.config.allow_zero_hop else None
        chosen = select_peers(self.tier_order(tiers), length, our_hash=self.our_hash, rng=self._rng,
                              ip_restriction=self.config.ip_restriction, exclude=exclude, avoid=self._overused())
        if chosen is None:
            return () if self.config.allow_zero_hop else None
        return tuple(order_hops(chosen, self.order_key))

    def _overused(self) -> set[bytes]:
        """peer-selection.md "Restrictions": a peer in more than a third of the pool's tunnels is avoided. In a
        client pool builds in flight count too and the rule holds from the first tunnel on: a small pool's
        tunnels then share no hop, so one peer going away does not take them all at once. (Exploratory pools
        keep proven peers: avoiding them there lowered build success in tests/sim.)"""
        paths = [t.hops for t in self._tunnels.values()]
        if self.config.exploratory:
            if len(paths) < 3:
                return set()
        else:
            paths += [p.hops for p in self._pending.values()]
        counts: dict[bytes, int] = {}
        for hops in paths:
            for hop in hops:
                counts[hop] = counts.get(hop, 0) + 1
        limit = len(paths) / 3
        return {hop for hop, n in counts.items() if n > limit}

    def build_started(self, build_id: int, hops: Sequence[bytes], now: float) -> None:
        self._pending[build_id] = _PendingBuild(tuple(hops), now, now + self.config.build_timeout)
        self.stats.builds_started += 1
        self._mark_replacement(now)

    def _mark_replacement(self, now: float) -> None:
        horizon = now + self.config.rebuild_before_expiry
        for tunnel in sorted(self._tunnels.values(), key=lambda t: t.expires_at):
            if not tunnel.replaced and tunnel.expires_at <= horizon:
                tunnel.replaced = True
                return

    def build_succeeded(self, build_id: int, key: int, now: float, lifetime: float = TUNNEL_LIFETIME) -> PoolTunnel | None:
        """Adds the tunnel; None when the build was unknown or had already timed out."""
        pending = self._pending.pop(build_id, None)
        if pending is None:
            return None
        self._record(True)
        tunnel = PoolTunnel(key, pending.hops, now, now + lifetime, last_tested=now)
        self._tunnels[key] = tunnel
        return tunnel

    def add_zero_hop(self, key: int, now: float, lifetime: float = TUNNEL_LIFETIME) -> PoolTunnel:
        """A zero-hop tunnel needs no build."""
        tunnel = PoolTunnel(key, (), now, now + lifetime, last_tested=now)
        self._tunnels[key] = tunnel
        return tunnel

    def build_failed(self, build_id: int, now: float) -> None:
        if self._pending.pop(build_id, None) is not None:
            self.stats.builds_failed += 1
            self._record(False, now)

    def _record(self, ok: bool, now: float = 0.0) -> None:
        self.stats.recent.append(ok)
        if ok:
            self.stats.builds_succeeded += 1
            self._failures_in_a_row = 0
            self._next_build_at = 0.0
        else:
            self._failures_in_a_row += 1
            delay = min(self.config.retry_delay * 2 ** (self._failures_in_a_row - 1), self.config.max_retry_delay)
            self._next_build_at = now + delay

    def expire(self, now: float) -> tuple[list[int], list[int]]:
        """Time out builds past their deadline and drop expired tunnels; returns (build ids, tunnel keys)."""
        timed_out = [bid for bid, pending in self._pending.items() if pending.deadline <= now]
        for build_id in timed_out:
            del self._pending[build_id]
            self.stats.builds_timed_out += 1
            self._record(False, now)
        expired = [key for key, tunnel in self._tunnels.items() if tunnel.expires_at <= now]
        for key in expired:
            del self._tunnels[key]
        return timed_out, expired

    # --- testing and use

    def tunnels_to_test(self, now: float) -> list[int]:
        """Multi-hop tunnels due a test (routing a DeliveryStatus out one tunnel and back in another)."""
        due = []
        for tunnel in self._tunnels.values():
            if tunnel.hops and tunnel.last_tested + self.config.test_interval <= now < tunnel.expires_at:
                tunnel.last_tested = now
                due.append(tunnel.key)
        return due

    def test_result(self, key: int, ok: bool, now: float) -> bool:
        """Record a test; True when the tunnel was retired for failing too often."""
        tunnel = self._tunnels.get(key)
        if tunnel is None:
            return False
        if ok:
            tunnel.test_failures = 0
            self.stats.tests_passed += 1
            return False
        tunnel.test_failures += 1
        self.stats.tests_failed += 1
        if tunnel.test_failures >= self.config.max_test_failures:
            del self._tunnels[key]
            return True
        # not used meanwhile (usable()); the next test settles whether it is broken or only its partner was
        tunnel.last_tested = now - self.config.test_interval + min(self.config.retest_delay, self.config.test_interval)
        return False

    def choices(self, now: float) -> list[PoolTunnel]:
        """The tunnels pick() chooses from: usable ones, those far from expiry while there are such."""
        usable = self.usable(now)
        return [t for t in usable if t.expires_at > now + self.config.rebuild_before_expiry] or usable

    def pick(self, now: float) -> PoolTunnel | None:
        """A random tunnel to send through or to publish, preferring those far from expiry."""
        fresh = self.choices(now)
        return fresh[randbelow(self._rng, len(fresh))] if fresh else None

    def next_wakeup(self, now: float) -> float:
        """The earliest time something here changes state (a deadline, an expiry, a test, a retry)."""
        times = [p.deadline for p in self._pending.values()]
        for tunnel in self._tunnels.values():
            times.append(tunnel.expires_at)
            times.append(tunnel.expires_at - self.config.rebuild_before_expiry)
            if tunnel.hops:
                times.append(tunnel.last_tested + self.config.test_interval)
        if self._next_build_at > now:
            times.append(self._next_build_at)
        future = [t for t in times if t > now]
        return min(future) if future else now + self.config.test_interval
