"""The tunnel service: our pools, builds, tests and transit tunnels inside a running router.

The sans-I/O cores (build, participant, endpoints, pool) do the protocol work; this class feeds them the
router's messages, turns their events into sends, keeps the build/test schedule and reports figures.
Everything except `start()`/`stop()` is synchronous and reads only the injected clock, so a test can run
a whole network of services by calling `tick()` and `handle_message()`.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Sequence

from core.clock import Clock, Rng
from core.control.api import TunnelRecord
from core.crypto.x25519 import X25519Keypair
from core.data.errors import ProtocolError
from core.data.identity import RouterIdentity
from core.data.keytypes import CRYPTO_X25519
from core.data.routerinfo import RouterInfo
from core.garlic.routers import RouterGarlicReceiver, encrypt_with_reply_key, wrap_for_router
from core.i2np import (DeliveryStatus, DeliveryType, Garlic, GarlicCloveBlock, GarlicCloveDeliveryInstructions,
                       I2NPMessage, MessageType, OutboundTunnelBuildReply, RawI2NP, ShortTunnelBuild, TunnelBuildReply,
                       TunnelData, TunnelGateway, VariableTunnelBuild, VariableTunnelBuildReply)
from core.transport.ssu2.driver import dialable_ssu2

from .build import PendingBuild, create_build, random_tunnel_id, randbelow
from .endpoints import InboundTunnel, OutboundTunnel
from .events import DeliverLocally, SendBuildReply, SendToRouter, SendToTunnel, TunnelEvent
from .fragment import TunnelDelivery
from .participant import TransitManager, TransitPolicy, TransitRole
from .pool import Candidate, PeerTiers, PoolConfig, TunnelPool

log = logging.getLogger(__name__)

Send = Callable[[bytes, I2NPMessage], bool]
SendRaw = Callable[[bytes, RawI2NP], bool]
LookupRouterInfo = Callable[[bytes], Awaitable["RouterInfo | None"]]
InboundHandler = Callable[[int, I2NPMessage], None]

EXPLORATORY = "exploratory"
SHORT_BUILD_VERSION = (0, 9, 51)  # tunnel-creation-ecies.rst: ShortTunnelBuild from 0.9.51
BUILD_MESSAGE_EXPIRATION_MS = 60_000
TEST_MESSAGE_EXPIRATION_MS = 20_000
MAX_LOCAL_STEPS = 256  # messages we pass to ourselves while handling one (bounds loops through our own hops)
MAX_GARLIC_DEPTH = 2  # garlic inside garlic inside a tunnel: no deeper
MAX_FORWARDED_CLOVES = 4  # ROUTER/TUNNEL cloves one garlic to us may have us pass on
MAX_ROUTES = 1024  # routes per outbound pool that keep their tunnel (the least recently used go first)
MAX_LOOKUPS = 64  # next hops whose RouterInfo we are looking up at once ...
MAX_WAITING_PER_LOOKUP = 32  # ... and the messages held for each
LOOKUP_TIMEOUT_S = 20.0

_BUILD_REQUEST_TYPES = (MessageType.SHORT_TUNNEL_BUILD, MessageType.VARIABLE_TUNNEL_BUILD, MessageType.TUNNEL_BUILD)
_BUILD_REPLY_CLASSES = {
    MessageType.SHORT_TUNNEL_BUILD: ShortTunnelBuild,
    MessageType.VARIABLE_TUNNEL_BUILD: VariableTunnelBuild,
    MessageType.OUTBOUND_TUNNEL_BUILD_REPLY: OutboundTunnelBuildReply,
    MessageType.VARIABLE_TUNNEL_BUILD_REPLY: VariableTunnelBuildReply,
    MessageType.TUNNEL_BUILD_REPLY: TunnelBuildReply,
}
_TUNNEL_TYPES = frozenset(_BUILD_REPLY_CLASSES) | {MessageType.TUNNEL_BUILD, MessageType.TUNNEL_DATA,
                                                   MessageType.TUNNEL_GATEWAY}


@dataclass(frozen=True, slots=True)
class TunnelSettings:
    exploratory_length: int = 2
    exploratory_quantity: int = 2
    ip_restriction: int = 2  # bytes of IPv4 two hops may not share; 0 on a private net where all share a /16
    test_interval_s: float = 20.0  # every pool's tunnels (a failed test is repeated after retest_delay)
    build_timeout_s: float = 30.0
    tick_s: float = 1.0
    test_timeout_s: float = 15.0
    max_tests: int = 256  # tunnel tests in flight
    max_pending_builds: int = 64  # over all pools
    no_peers_retry_s: float = 5.0  # no hops could be had: wait this long before trying again
    tiers_refresh_s: float = 10.0  # rebuild the candidate list from the netDb at most this often
    transit_expire_s: float = 10.0
    handle_router_garlic: bool = True  # open Noise N garlic to us (i2pd wraps inbound build requests in it)


class ManagedPool:
    """A pool as the service runs it: the TunnelPool schedule plus the live tunnel ends it owns."""

    def __init__(self, name: str, config: PoolConfig, core: TunnelPool):
        self.name = name
        self.config = config
        self.core = core
        self.paired: ManagedPool | None = None  # the opposite direction (replies, tests)
        self.outbound: dict[int, OutboundTunnel] = {}
        self.inbound: dict[int, InboundTunnel] = {}
        self.on_message: InboundHandler | None = None  # inbound pools: what comes out of our tunnels
        self.retry_at = 0.0
        self.closed = False
        self.routes: OrderedDict[Any, int] = OrderedDict()   # outbound: the tunnel each route keeps using

    @property
    def is_inbound(self) -> bool:
        return self.config.inbound

    def __repr__(self) -> str:
        return f"ManagedPool({self.name!r}, {'inbound' if self.is_inbound else 'outbound'})"


@dataclass(slots=True)
class _Build:
    pool: ManagedPool
    pending: PendingBuild
    hops: tuple[bytes, ...]
    started_at: float
    waiter: asyncio.Future | None = None  # build_tunnel(): gets the tunnel key or None


@dataclass(slots=True)
class _Test:
    pool: ManagedPool
    key: int
    sent_at: float
    deadline: float


@dataclass(frozen=True, slots=True)
class TransitRecord:
    """One transit tunnel, for the control API and logs."""

    receive_tunnel_id: int
    role: str  # "participant", "inbound gateway" or "outbound endpoint"
    next_hash: bytes
    bytes_in: int
    messages_in: int
    messages_out: int
    dropped: int
    age_s: float


def _no_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def _version(text: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in (text or "").split("."))
    except ValueError:
        return ()


class TunnelService:
    """Builds, tests and uses our tunnels and carries transit tunnels for one router."""

    def __init__(self, *, router_hash: bytes, static_key: X25519Keypair, send: Send, netdb: Any, clock: Clock,
                 rng: Rng = os.urandom, profiles: Any = None, settings: TunnelSettings = TunnelSettings(),
                 transit_policy: TransitPolicy | None = None, garlic: RouterGarlicReceiver | None = None,
                 lookup_router_info: LookupRouterInfo | None = None,
                 connected: Callable[[bytes], bool] = lambda peer: False, ssu2: bool = False,
                 send_raw: SendRaw | None = None):
        self.router_hash = router_hash
        self._ssu2 = ssu2             # SSU2-only routers can be hops too
        self._send = send
        self._send_raw = send_raw     # the transport's send of short-header tuples, for the relay path
        self._lookup = lookup_router_info
        self._connected = connected   # a session to the peer is up: send without its RouterInfo
        self._waiting: dict[bytes, deque[I2NPMessage]] = {}  # next hops being looked up, with their messages
        self._lookup_tasks: set[asyncio.Task] = set()
        self._netdb = netdb
        self._profiles = profiles
        self.clock = clock
        self.rng = rng
        self.settings = settings
        self.transit = TransitManager(router_hash, static_key, clock, rng, transit_policy)
        self.garlic = garlic or RouterGarlicReceiver(static_key.private_bytes, clock=clock)
        self.stats: Counter[str] = Counter()
        # router-level messages we unwrapped (garlic cloves to us, exploratory inbound deliveries)
        self.on_local_message: Callable[[I2NPMessage], None] | None = None
        self._pools: dict[tuple[str, bool], ManagedPool] = {}
        self._inbound_ends: dict[int, tuple[ManagedPool | None, InboundTunnel]] = {}
        self._zero_hop_reply: InboundTunnel | None = None
        self._pending: dict[int, _Build] = {}
        self._tests: dict[int, _Test] = {}
        self._tiers: PeerTiers | None = None
        self._tiers_at = -1e18
        self._next_transit_expiry = clock.monotonic() + settings.transit_expire_s
        self._task: asyncio.Task | None = None
        self._flush_handle: asyncio.Handle | None = None
        self.exploratory_inbound = self.create_pool(EXPLORATORY, self._exploratory_config(True))
        self.exploratory_outbound = self.create_pool(EXPLORATORY, self._exploratory_config(False))

    def _exploratory_config(self, inbound: bool) -> PoolConfig:
        s = self.settings
        return PoolConfig(inbound=inbound, length=s.exploratory_length, quantity=s.exploratory_quantity,
                          exploratory=True, ip_restriction=s.ip_restriction, test_interval=s.test_interval_s,
                          build_timeout=s.build_timeout_s)

    # --- lifecycle

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tunnels")

    async def stop(self) -> None:
        task, self._task = self._task, None
        tasks = [task] if task is not None else []
        tasks += list(self._lookup_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._waiting.clear()
        for build in self._pending.values():
            if build.waiter is not None and not build.waiter.done():
                build.waiter.set_result(None)

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("tunnel service tick failed")
            await asyncio.sleep(self.settings.tick_s)

    # --- pools

    def create_pool(self, name: str, config: PoolConfig) -> ManagedPool:
        """A pool of `config.inbound` tunnels under `name`; pools of one name and both directions pair up."""
        key = (name, config.inbound)
        if key in self._pools:
            raise ValueError(f"pool {name!r} ({'inbound' if config.inbound else 'outbound'}) exists")
        pool = ManagedPool(name, config, TunnelPool(config, self.router_hash, self.rng))
        other = self._pools.get((name, not config.inbound))
        if other is not None:
            pool.paired, other.paired = other, pool
        self._pools[key] = pool
        return pool

    def pool(self, name: str, inbound: bool) -> ManagedPool | None:
        return self._pools.get((name, inbound))

    @property
    def pools(self) -> list[ManagedPool]:
        return list(self._pools.values())

    def remove_pool(self, pool: ManagedPool) -> None:
        """Stop building for `pool` and forget its tunnels (their hops let them expire)."""
        if self._pools.get((pool.name, pool.is_inbound)) is not pool or pool.name == EXPLORATORY:
            return
        del self._pools[(pool.name, pool.is_inbound)]
        pool.closed = True
        if pool.paired is not None:
            pool.paired.paired = None
        for receive_id in pool.inbound:
            self._inbound_ends.pop(receive_id, None)
        pool.inbound.clear()
        pool.outbound.clear()
        for build_id in [bid for bid, build in self._pending.items() if build.pool is pool]:
            self._resolve(self._pending.pop(build_id), None)
        for test_id in [tid for tid, test in self._tests.items() if test.pool is pool]:
            del self._tests[test_id]

    # --- the schedule

    def tick(self) -> None:
        """Expire, build, test: everything due at the clock's current time."""
        now = self.clock.monotonic()
        for test_id in [tid for tid, test in self._tests.items() if test.deadline <= now]:
            test = self._tests.pop(test_id)
            self._test_done(test, False, now)
        for pool in list(self._pools.values()):
            timed_out, expired = pool.core.expire(now)
            for build_id in timed_out:
                self._build_timed_out(build_id)
            for key in expired:
                self._forget_tunnel(pool, key)
        self._renew_zero_hop_reply(now)
        for pool in list(self._pools.values()):
            self._build_for(pool, now)
        for pool in list(self._pools.values()):
            for key in pool.core.tunnels_to_test(now):
                self._start_test(pool, key, now)
        if now >= self._next_transit_expiry:
            self._next_transit_expiry = now + self.settings.transit_expire_s
            dropped = self.transit.expire()
            self.stats["transit_expired"] += dropped
            for _, tunnel in self._inbound_ends.values():
                tunnel.expire_fragments()
            self.garlic.upkeep()

    def _build_for(self, pool: ManagedPool, now: float) -> None:
        if now < pool.retry_at:
            return
        for _ in range(pool.core.builds_needed(now)):
            if len(self._pending) >= self.settings.max_pending_builds:
                self.stats["builds_deferred"] += 1
                return
            exclude: set[bytes] = set()
            hops = pool.core.select_hops(self._peer_tiers(now), exclude)
            if hops == () and pool.config.length == 0:
                self._add_zero_hop(pool, now)
                continue
            if not hops:
                # no peers: keep one zero-hop tunnel (when allowed) and try again a little later
                if hops == () and not pool.core.usable(now):
                    self._add_zero_hop(pool, now)
                pool.retry_at = now + self.settings.no_peers_retry_s
                self.stats["builds_no_peers"] += 1
                return
            if self._start_build(pool, hops, now) is None:
                pool.retry_at = now + self.settings.no_peers_retry_s
                return

    def _peer_tiers(self, now: float) -> PeerTiers:
        """Candidates from the netDb, tiered by the profiles (peer-selection.md), refreshed every few seconds."""
        if self._tiers is not None and now - self._tiers_at < self.settings.tiers_refresh_s:
            return self._tiers
        tier_of: dict[bytes, Any] = {}
        if self._profiles is not None and hasattr(self._profiles, "tiers"):
            tier_of = self._profiles.tiers()
        fast: list[Candidate] = []
        high: list[Candidate] = []
        standard: list[Candidate] = []
        for router_hash, ri in list(self._netdb.router_infos.items()):
            if router_hash == self.router_hash or not self._usable_hop(ri, self._ssu2):
                continue
            tier = getattr(tier_of.get(router_hash), "value", tier_of.get(router_hash))
            if tier == "failing":
                continue
            candidate = Candidate.from_hosts(router_hash, [a.host for a in ri.addresses if a.host])
            if tier == "fast":
                fast.append(candidate)
                high.append(candidate)
            elif tier == "high_capacity":
                high.append(candidate)
            else:
                standard.append(candidate)
        self._tiers = PeerTiers(tuple(fast), tuple(high), tuple(standard))
        self._tiers_at = now
        return self._tiers

    @staticmethod
    def _usable_hop(ri: RouterInfo, ssu2: bool = False) -> bool:
        """ECIES routers we can dial over NTCP2 (or SSU2 when `ssu2`) that do not refuse tunnels or hide
        (common-structures.rst caps)."""
        if ri.identity.crypto_type != CRYPTO_X25519:
            return False
        caps = ri.caps
        if "G" in caps or "H" in caps or "U" in caps:
            return False
        for address in ri.addresses_of("NTCP2"):
            try:
                if address.host and address.port and address.s:
                    return True
            except ProtocolError:
                continue
        return ssu2 and dialable_ssu2(ri) is not None

    # --- building

    def _start_build(self, pool: ManagedPool, hops: Sequence[bytes], now: float,
                     waiter: asyncio.Future | None = None) -> int | None:
        """Send a build request for `hops` (tunnel order); the build id, or None when it could not start."""
        infos = [self._netdb.get_router_info(h) for h in hops]
        if any(ri is None or ri.identity.crypto_type != CRYPTO_X25519 for ri in infos):
            self.stats["builds_unknown_hop"] += 1
            return None
        short = all(_version(ri.router_version) >= SHORT_BUILD_VERSION for ri in infos)  # type: ignore[union-attr]
        identities = [ri.identity for ri in infos]  # type: ignore[union-attr]
        try:
            if pool.is_inbound:
                request = create_build(identities, inbound=True, our_hash=self.router_hash, clock=self.clock,
                                       rng=self.rng, short=short)
            else:
                reply = self._partner_inbound(pool, now)   # where the build reply comes back
                request = create_build(identities, inbound=False, our_hash=self.router_hash, clock=self.clock,
                                       rng=self.rng, reply_gateway=reply.gateway,
                                       reply_tunnel_id=reply.gateway_tunnel_id, short=short)
        except (ProtocolError, ValueError) as exc:
            log.debug("tunnel build not started: %s", exc)
            self.stats["builds_not_started"] += 1
            return None
        pending = request.pending
        build_id = pending.reply_msg_id
        if build_id in self._pending:
            return None  # a 32-bit collision: the next tick tries again
        self._pending[build_id] = _Build(pool, pending, tuple(hops), now, waiter)
        pool.core.build_started(build_id, hops, now)
        garlic = pending.reply_garlic
        if garlic is not None:
            self.garlic.add_reply_key(garlic[0], garlic[1], pool.config.build_timeout + 30.0)
        message = I2NPMessage(request.message.TYPE, request.msg_id, self._expiration(BUILD_MESSAGE_EXPIRATION_MS),
                              request.message.to_bytes())
        self.stats["builds_sent"] += 1
        if not (pool.is_inbound and self._send_build_via_outbound(pool, identities[0], message, now)):
            self._dispatch([SendToRouter(request.first_hop, message)])
        return build_id

    def _send_build_via_outbound(self, pool: ManagedPool, first_hop: RouterIdentity, message: I2NPMessage,
                                 now: float) -> bool:
        """tunnel-creation-ecies.rst "Message Flow": an inbound build leaves through one of our outbound tunnels,
        garlic-wrapped to its gateway so the outbound endpoint cannot see it either, and the gateway cannot
        tell who builds; False (send it directly) while no multi-hop outbound tunnel is up."""
        first_hash = first_hop.hash
        for outbound_pool in (pool.paired, self.exploratory_outbound):
            if outbound_pool is None:
                continue
            # an endpoint that is the first hop itself would learn both ends
            usable = [t for t in outbound_pool.core.usable(now)
                      if t.hops and t.hops[-1] != first_hash and t.key in outbound_pool.outbound]
            if usable:
                tunnel = usable[randbelow(self.rng, len(usable))]
                wrapped = wrap_for_router(first_hop.public_key, message, clock=self.clock, rng=self.rng)
                if self.send_via_outbound(outbound_pool, wrapped, to_router=first_hash, tunnel_key=tunnel.key):
                    self.stats["builds_via_outbound"] += 1
                    return True
        return False

    async def build_tunnel(self, pool: ManagedPool, hops: Sequence[bytes]) -> int | None:
        """Build one tunnel through exactly `hops` (tunnel order) for `pool`; its key once it is in the pool.

        The key is the inbound tunnel's receive id or the outbound tunnel's first tunnel id; None on failure.
        """
        waiter = asyncio.get_running_loop().create_future()
        if self._start_build(pool, hops, self.clock.monotonic(), waiter) is None:
            return None
        return await waiter

    def _zero_hop_reply_tunnel(self, now: float) -> InboundTunnel:
        tunnel = self._zero_hop_reply
        if tunnel is None or tunnel.expires_at - now < 120.0:
            tunnel = self._zero_hop_reply = InboundTunnel.zero_hop(self.router_hash, self.clock, self.rng)
            self._inbound_ends[tunnel.receive_tunnel_id] = (None, tunnel)
        return tunnel

    def _renew_zero_hop_reply(self, now: float) -> None:
        for receive_id, (pool, tunnel) in list(self._inbound_ends.items()):
            if pool is None and tunnel.expires_at <= now:
                del self._inbound_ends[receive_id]
                if tunnel is self._zero_hop_reply:
                    self._zero_hop_reply = None

    def _add_zero_hop(self, pool: ManagedPool, now: float) -> None:
        if pool.is_inbound:
            inbound = InboundTunnel.zero_hop(self.router_hash, self.clock, self.rng)
            pool.inbound[inbound.receive_tunnel_id] = inbound
            self._inbound_ends[inbound.receive_tunnel_id] = (pool, inbound)
            pool.core.add_zero_hop(inbound.receive_tunnel_id, now)
        else:
            key = random_tunnel_id(self.rng)
            pool.outbound[key] = OutboundTunnel.zero_hop(self.clock, self.rng)
            pool.core.add_zero_hop(key, now)
        self.stats["zero_hop_tunnels"] += 1

    def _finish_build(self, message: I2NPMessage) -> bool:
        """A build reply for one of our pending builds; False when it is not one."""
        build = self._pending.get(message.msg_id)
        if build is None or message.type != build.pending.reply_type:
            return False
        del self._pending[message.msg_id]
        now = self.clock.monotonic()
        pool = build.pool
        try:
            records = _BUILD_REPLY_CLASSES[message.type].parse(message.body).records
            result = build.pending.process_reply(records)
        except ProtocolError:
            self.stats["build_replies_malformed"] += 1
            pool.core.build_failed(message.msg_id, now)
            self._resolve(build, None)
            return True
        latency_ms = (now - build.started_at) * 1000
        for hop, status in zip(build.hops, result.statuses):
            if status == 0:
                self._profile("record_tunnel_accept", hop, latency_ms)
            elif status is not None:
                self._profile("record_tunnel_reject", hop)
        if not result.success:
            self.stats["builds_rejected"] += 1
            pool.core.build_failed(message.msg_id, now)
            self._resolve(build, None)
            return True
        pending = build.pending
        if pool.is_inbound:
            inbound = InboundTunnel.from_build(pending, self.clock)
            key = inbound.receive_tunnel_id
        else:
            outbound = OutboundTunnel.from_build(pending, self.clock, self.rng)
            key = pending.hops[0].receive_tunnel_id
        if pool.closed or pool.core.build_succeeded(message.msg_id, key, now) is None:
            self.stats["builds_late"] += 1
            self._resolve(build, None)
            return True
        if pool.is_inbound:
            pool.inbound[key] = inbound
            self._inbound_ends[key] = (pool, inbound)
        else:
            pool.outbound[key] = outbound
        self.stats["builds_succeeded"] += 1
        log.debug("%s %s tunnel built through %d hops", pool.name, "inbound" if pool.is_inbound else "outbound",
                  len(build.hops))
        self._resolve(build, key)
        return True

    def _build_timed_out(self, build_id: int) -> None:
        build = self._pending.pop(build_id, None)
        if build is None:
            return
        self.stats["builds_timed_out"] += 1
        for hop in build.hops:
            self._profile("record_tunnel_drop", hop)
        self._resolve(build, None)

    @staticmethod
    def _resolve(build: _Build, key: int | None) -> None:
        if build.waiter is not None and not build.waiter.done():
            build.waiter.set_result(key)

    def _profile(self, method: str, peer: bytes, *args) -> None:
        record = getattr(self._profiles, method, None) if self._profiles is not None else None
        if record is not None:
            record(peer, *args)

    def _forget_tunnel(self, pool: ManagedPool, key: int) -> None:
        if pool.is_inbound:
            pool.inbound.pop(key, None)
            self._inbound_ends.pop(key, None)
        else:
            pool.outbound.pop(key, None)

    # --- testing (tunnel-implementation.md "Tunnel Testing")

    def _start_test(self, pool: ManagedPool, key: int, now: float) -> None:
        if len(self._tests) >= self.settings.max_tests:
            self.stats["tests_skipped"] += 1
            return
        if pool.is_inbound:
            inbound = pool.inbound.get(key)
            outbound = self._partner_outbound(pool, now)
        else:
            outbound = pool.outbound.get(key)
            inbound = self._partner_inbound(pool, now)
        if inbound is None or outbound is None:
            return
        test_id = random_tunnel_id(self.rng)
        if test_id in self._tests:
            return
        status = DeliveryStatus(test_id, int(self.clock.time() * 1000))
        message = I2NPMessage.build(status, random_tunnel_id(self.rng), self._expiration(TEST_MESSAGE_EXPIRATION_MS))
        self._tests[test_id] = _Test(pool, key, now, now + self.settings.test_timeout_s)
        self.stats["tests_sent"] += 1
        delivery = TunnelDelivery.to_tunnel(inbound.gateway, inbound.gateway_tunnel_id)
        self._dispatch(outbound.send([(message, delivery)]))

    @staticmethod
    def _picked_inbound(pool: ManagedPool, now: float) -> InboundTunnel | None:
        picked = pool.core.pick(now)
        return pool.inbound.get(picked.key) if picked is not None else None

    def _partner_inbound(self, pool: ManagedPool, now: float) -> InboundTunnel:
        """Where replies to `pool`'s traffic come back (build replies, tests): the paired or exploratory inbound
        pool's tunnel, else zero-hop."""
        for other in (pool.paired, self.exploratory_inbound):
            tunnel = self._picked_inbound(other, now) if other is not None else None
            if tunnel is not None:
                return tunnel
        return self._zero_hop_reply_tunnel(now)

    def _partner_outbound(self, pool: ManagedPool, now: float) -> OutboundTunnel | None:
        for other in (pool.paired, self.exploratory_outbound):
            picked = other.core.pick(now) if other is not None else None
            if picked is not None and picked.key in other.outbound:  # type: ignore[union-attr]
                return other.outbound[picked.key]  # type: ignore[union-attr]
        return OutboundTunnel.zero_hop(self.clock, self.rng)

    def _test_done(self, test: _Test, ok: bool, now: float) -> None:
        self.stats["tests_passed" if ok else "tests_failed"] += 1
        tunnel = test.pool.core.tunnel(test.key)
        if not ok and tunnel is not None:
            for hop in tunnel.hops:
                self._profile("record_tunnel_drop", hop)
        if test.pool.core.test_result(test.key, ok, now):
            self.stats["tunnels_retired"] += 1
            self._forget_tunnel(test.pool, test.key)

    # --- using our tunnels

    def send_via_outbound(self, pool: ManagedPool | None, message: I2NPMessage, *, to_router: bytes,
                          to_tunnel: int | None = None, tunnel_key: int | None = None, route: Any = None) -> bool:
        """Send `message` out one of `pool`'s tunnels (exploratory when None) to a router or into its tunnel.

        `tunnel_key` picks the tunnel (a key from `build_tunnel`); otherwise the pool picks one, the same for
        every message of one `route` (e.g. a remote lease) while that tunnel stays usable: messages of one
        flow then arrive in the order sent, not shuffled over tunnels of different delays.
        """
        pool = pool or self.exploratory_outbound
        if pool.is_inbound:
            raise ValueError("send_via_outbound needs an outbound pool")
        if tunnel_key is None:
            tunnel_key = self._route_tunnel(pool, route, self.clock.monotonic())
        tunnel = pool.outbound.get(tunnel_key) if tunnel_key is not None else None
        if tunnel is None:
            self.stats["sends_no_tunnel"] += 1
            return False
        delivery = (TunnelDelivery.to_tunnel(to_router, to_tunnel) if to_tunnel is not None
                    else TunnelDelivery.to_router(to_router))
        try:
            events = tunnel.send([(message, delivery)])
        except ValueError:
            self.stats["sends_too_big"] += 1
            return False
        self._dispatch(events)
        return True

    def _route_tunnel(self, pool: ManagedPool, route: Any, now: float) -> int | None:
        kept = pool.routes.get(route) if route is not None else None
        if kept is not None and kept in pool.outbound and any(t.key == kept for t in pool.core.choices(now)):
            pool.routes.move_to_end(route)
            return kept
        picked = pool.core.pick(now)
        if picked is None:
            return None
        if route is not None:
            pool.routes[route] = picked.key
            pool.routes.move_to_end(route)
            while len(pool.routes) > MAX_ROUTES:
                pool.routes.popitem(last=False)
        return picked.key

    def reply_tunnel(self, pool: ManagedPool | None = None) -> tuple[bytes, int] | None:
        """(gateway hash, gateway tunnel id) of one of `pool`'s (exploratory when None) inbound tunnels, for
        replies to come back through; None while it has none."""
        tunnel = self._picked_inbound(pool or self.exploratory_inbound, self.clock.monotonic())
        return (tunnel.gateway, tunnel.gateway_tunnel_id) if tunnel is not None else None

    def leases(self, pool: ManagedPool) -> list[tuple[bytes, int, float]]:
        """(gateway hash, gateway tunnel id, wall-clock expiry) of `pool`'s usable inbound tunnels, for a LeaseSet."""
        now = self.clock.monotonic()
        wall = self.clock.time()
        out = []
        for tunnel in pool.core.usable(now):
            inbound = pool.inbound.get(tunnel.key)
            if inbound is not None:
                out.append((inbound.gateway, inbound.gateway_tunnel_id, wall + tunnel.expires_at - now))
        return out

    # --- inbound traffic

    def handle_message(self, peer_hash: bytes, message: I2NPMessage) -> bool:
        """Offer one I2NP message from a directly connected peer; True when it was ours (used or dropped)."""
        try:
            handled, events = self._handle(peer_hash, message, 0)
        except (ProtocolError, ValueError) as exc:
            self.stats["malformed"] += 1
            log.debug("tunnel message from %s dropped: %s", peer_hash.hex()[:8], exc)
            return message.type in _TUNNEL_TYPES
        if len(events) == 1 and type(events[0]) is SendToRouter and events[0].router_hash != self.router_hash:
            self._send_to(events[0].router_hash, events[0].message)   # a relayed TunnelData: the common case
            self._schedule_gateway_flush()
        elif events:
            self._dispatch(events)
        else:
            self._schedule_gateway_flush()
        return handled

    def relay_tunnel_data(self, peer_hash: bytes, items: list) -> list:
        """The relay path: of one read's items from a directly connected peer (I2NP messages as RawI2NP tuples,
        other blocks as they are), pass the TunnelData of transit tunnels on, with no object per message, and
        return the rest in order for handle_message(). The same TransitManager.relay() as handle_message()."""
        rest = []
        transit = self.transit
        relay = transit.relay
        ends = self._inbound_ends
        now, expiration_s = self.clock.monotonic(), transit.expiration_s()
        tunnel_data, size = int(MessageType.TUNNEL_DATA), TunnelData.SIZE
        for item in items:
            if type(item) is not tuple or item[0] != tunnel_data:
                rest.append(item)
                continue
            body = item[3]
            tunnel_id = int.from_bytes(body[:4], "big")
            if len(body) != size or not tunnel_id or tunnel_id in ends:
                rest.append(item)   # malformed ones are told apart there, ours are read there
                continue
            try:
                out = relay(tunnel_id, body[4:], peer_hash, now, expiration_s)
                if type(out) is tuple:
                    self._relay_send(*out)
                elif out:
                    self._dispatch(out)
            except (ProtocolError, ValueError) as exc:
                self.stats["malformed"] += 1
                log.debug("tunnel message from %s dropped: %s", peer_hash.hex()[:8], exc)
            except Exception:   # as on the message path: a bug costs the message, not the session
                log.exception("relaying a tunnel message from %s failed", peer_hash.hex()[:8])
        return rest

    def _relay_send(self, target: bytes, raw: RawI2NP) -> None:
        if self._send_raw is not None and self._connected(target):
            if not self._send_raw(target, raw):
                self.stats["send_failures"] += 1
        else:
            self._send_to(target, I2NPMessage.from_raw(raw))

    def _handle(self, peer: bytes, message: I2NPMessage, depth: int) -> tuple[bool, list[TunnelEvent]]:
        kind = message.type
        if kind == MessageType.TUNNEL_DATA:
            body = message.body
            tunnel_id = int.from_bytes(body[:4], "big")
            if len(body) != TunnelData.SIZE or tunnel_id == 0:
                TunnelData.parse(body)  # raises the ParseError that says what is wrong
            end = self._inbound_ends.get(tunnel_id)
            if end is not None:
                return True, self._delivered(end[0], end[1].receive(TunnelData.parse(body)), depth)
            return True, self.transit.handle_tunnel_payload(tunnel_id, body[4:], peer)
        if kind == MessageType.TUNNEL_GATEWAY:
            return True, self._gateway(peer, TunnelGateway.parse(message.body), depth)
        if kind in _BUILD_REPLY_CLASSES or kind == MessageType.TUNNEL_BUILD:
            if self._finish_build(message):
                return True, []
            if kind in _BUILD_REQUEST_TYPES:
                return True, self.transit.handle_build(message, peer)
            self.stats["build_replies_unknown"] += 1
            return True, []
        if kind == MessageType.GARLIC and self.settings.handle_router_garlic and depth < MAX_GARLIC_DEPTH:
            received = self._open_garlic(message, router_key=True)
            if received is None:
                return False, []
            return True, self._cloves(peer, received, None, depth + 1, from_tunnel=False)
        return False, []

    def _gateway(self, peer: bytes, gateway: TunnelGateway, depth: int) -> list[TunnelEvent]:
        end = self._inbound_ends.get(gateway.tunnel_id)
        if end is not None and end[1].is_zero_hop:
            return self._delivered(end[0], end[1].receive_gateway(gateway), depth)
        # inside the event loop, a gateway's last payload waits for the loop's turn to end (flush_gateways)
        return self.transit.handle_tunnel_gateway(gateway, peer, flush=_no_running_loop())

    def _open_garlic(self, message: I2NPMessage, *, router_key: bool):
        """Garlic under a reply key and tag of ours (or, with `router_key`, Noise N to our router); None if not."""
        data = Garlic.parse(message.body).data
        if not router_key and data[:8] not in self.garlic.reply_keys:
            return None
        received = self.garlic.decrypt(data)
        if received is not None:
            self.stats["garlic_opened"] += 1
        return received

    def _cloves(self, peer: bytes, received, pool: ManagedPool | None, depth: int, *,
                from_tunnel: bool) -> list[TunnelEvent]:
        """Cloves of garlic to us: LOCAL ones here (tunnel messages) or to the router or the pool's handler;
        ROUTER/TUNNEL ones passed on (garlic-routing.md "Delivery Instructions"), a few per garlic."""
        events: list[TunnelEvent] = []
        forwarded = 0
        for clove in received.cloves:
            instructions = clove.delivery_instructions
            if instructions.delivery_type != DeliveryType.LOCAL:
                if forwarded >= MAX_FORWARDED_CLOVES:
                    self.stats["cloves_forward_limit"] += 1
                    continue
                forwarded += 1
                events += self._forward_clove(instructions, clove.message, from_tunnel)
                continue
            inner = clove.message
            if inner.type == MessageType.GARLIC:
                self.stats["nested_garlic_dropped"] += 1  # garlic in a clove to us: no one sends it, depth bomb
                continue
            if inner.type in _TUNNEL_TYPES:
                try:
                    events += self._handle(peer, inner, depth)[1]
                except (ProtocolError, ValueError):
                    self.stats["malformed"] += 1
            elif inner.type == MessageType.DELIVERY_STATUS and self._test_reply(inner):
                continue
            else:
                self._to_owner(pool, 0, inner)
        return events

    def _forward_clove(self, instructions: GarlicCloveDeliveryInstructions, message: I2NPMessage,
                       from_tunnel: bool) -> list[TunnelEvent]:
        """Out of our inbound tunnels: on through an exploratory outbound tunnel. Sent to us directly: TUNNEL
        cloves go as TunnelGateway to the gateway (as i2pd), ROUTER cloves are dropped (no open relay)."""
        kind = instructions.delivery_type
        if kind == DeliveryType.DESTINATION or message.type == MessageType.GARLIC:
            self.stats["cloves_dropped"] += 1
            return []
        to_tunnel = instructions.tunnel_id if kind == DeliveryType.TUNNEL else None
        if from_tunnel:
            if self.send_via_outbound(None, message, to_router=instructions.to_hash, to_tunnel=to_tunnel):
                self.stats["cloves_forwarded"] += 1
            else:
                self.stats["cloves_dropped"] += 1
            return []
        if to_tunnel is None:
            self.stats["cloves_dropped"] += 1
            return []
        self.stats["cloves_forwarded"] += 1
        return [SendToTunnel(instructions.to_hash, to_tunnel, message)]

    def _delivered(self, pool: ManagedPool | None, deliveries: list[DeliverLocally], depth: int) -> list[TunnelEvent]:
        """Messages out of one of our inbound tunnels."""
        events: list[TunnelEvent] = []
        for delivery in deliveries:
            message = delivery.message
            kind = message.type
            try:
                if kind in _BUILD_REPLY_CLASSES and self._finish_build(message):
                    continue
                if kind == MessageType.DELIVERY_STATUS and self._test_reply(message):
                    continue
                if kind in _TUNNEL_TYPES:
                    self.stats["tunnel_message_in_tunnel_dropped"] += 1  # no tunnel traffic out of a tunnel
                    continue
                if kind == MessageType.GARLIC and depth < MAX_GARLIC_DEPTH:
                    exploratory = pool is None or pool.config.exploratory
                    received = self._open_garlic(message, router_key=exploratory and
                                                 self.settings.handle_router_garlic)
                    if received is not None:
                        events += self._cloves(self.router_hash, received, pool, depth + 1, from_tunnel=True)
                        continue
            except (ProtocolError, ValueError):
                self.stats["malformed"] += 1
                continue
            self._to_owner(pool, delivery.tunnel_id, message)
        return events

    def _to_owner(self, pool: ManagedPool | None, tunnel_id: int, message: I2NPMessage) -> None:
        if pool is not None and pool.on_message is not None:
            pool.on_message(tunnel_id, message)
        elif (pool is None or pool.config.exploratory) and self.on_local_message is not None:
            self.on_local_message(message)
        else:
            self.stats["inbound_unclaimed"] += 1

    def _test_reply(self, message: I2NPMessage) -> bool:
        status = DeliveryStatus.parse(message.body)
        test = self._tests.pop(status.msg_id, None)
        if test is None:
            return False
        self._test_done(test, True, self.clock.monotonic())
        return True

    # --- sending

    def _expiration(self, lifetime_ms: int) -> int:
        return int(self.clock.time() * 1000) + lifetime_ms

    def _gateway_message(self, tunnel_id: int, message: I2NPMessage) -> I2NPMessage:
        body = TunnelGateway(tunnel_id, message).to_bytes()
        return I2NPMessage(MessageType.TUNNEL_GATEWAY, random_tunnel_id(self.rng), message.expiration_ms, body)

    def _dispatch(self, events: Iterable[TunnelEvent]) -> None:
        """Send what the cores asked for; messages to ourselves loop back here, a bounded number of times."""
        queue = deque(events)
        steps = 0
        while queue:
            event = queue.popleft()
            if isinstance(event, SendToRouter):
                target, message = event.router_hash, event.message
            elif isinstance(event, SendToTunnel):
                if event.gateway_hash == self.router_hash:   # our own gateway (as outbound endpoint): no wrapping
                    steps += 1
                    if steps > MAX_LOCAL_STEPS:
                        self.stats["local_loop_dropped"] += 1
                        continue
                    try:
                        queue.extend(self._gateway(self.router_hash, TunnelGateway(event.tunnel_id, event.message), 0))
                    except (ProtocolError, ValueError):
                        self.stats["malformed"] += 1
                    continue
                target, message = event.gateway_hash, self._gateway_message(event.tunnel_id, event.message)
            elif isinstance(event, SendBuildReply):
                target, message = event.gateway_hash, self._build_reply_message(event)
            elif isinstance(event, DeliverLocally):
                queue.extend(self._delivered(None, [event], 0))
                continue
            else:
                continue
            if target != self.router_hash:
                self._send_to(target, message)
                continue
            steps += 1
            if steps > MAX_LOCAL_STEPS:
                self.stats["local_loop_dropped"] += 1
                continue
            try:
                handled, more = self._handle(self.router_hash, message, 0)
            except (ProtocolError, ValueError):
                self.stats["malformed"] += 1
                continue
            if not handled:
                if self.on_local_message is not None:
                    self.on_local_message(message)
                else:
                    self.stats["local_unclaimed"] += 1
            queue.extend(more)
        self._schedule_gateway_flush()

    def _schedule_gateway_flush(self) -> None:
        if self.transit.gateways_unflushed and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush_gateways)

    def flush_gateways(self) -> None:
        """Gateway payloads begun during the loop's last turn go out, padded: everything that arrived in one
        turn for a tunnel shares its TunnelData messages, and nothing waits longer than that turn."""
        self._flush_handle = None
        self._dispatch(self.transit.flush_gateways())

    def _send_to(self, target: bytes, message: I2NPMessage) -> None:
        """Send to a router; one we have neither a session with nor the RouterInfo of is looked up first (a
        tunnel's next hop often is)."""
        if self._lookup is not None and not self._connected(target) and self._netdb.get_router_info(target) is None:
            waiting = self._waiting.get(target)
            if waiting is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None
                if loop is not None and len(self._waiting) < MAX_LOOKUPS:
                    waiting = self._waiting[target] = deque(maxlen=MAX_WAITING_PER_LOOKUP)
                    task = loop.create_task(self._look_up_and_send(target), name="tunnel-next-hop-lookup")
                    self._lookup_tasks.add(task)
                    task.add_done_callback(self._lookup_tasks.discard)
                elif loop is not None:
                    self.stats["lookups_full_drops"] += 1
                    return
            if waiting is not None:
                if len(waiting) == waiting.maxlen:
                    self.stats["lookup_queue_drops"] += 1
                waiting.append(message)
                return
        if not self._send(target, message):
            self.stats["send_failures"] += 1

    async def _look_up_and_send(self, target: bytes) -> None:
        assert self._lookup is not None
        ri = None
        try:
            ri = await asyncio.wait_for(self._lookup(target), LOOKUP_TIMEOUT_S)
        except (TimeoutError, ProtocolError, OSError):
            pass
        except Exception:      # any failure ends the wait: the entry must not outlive its lookup
            log.exception("next-hop lookup failed")
        finally:
            waiting = self._waiting.pop(target, ())
        if ri is None:
            self.stats["next_hop_unknown_drops"] += len(waiting)
            return
        self.stats["next_hops_looked_up"] += 1
        for message in waiting:
            if not self._send(target, message):
                self.stats["send_failures"] += 1

    def _build_reply_message(self, event: SendBuildReply) -> I2NPMessage:
        """An OBEP's reply into the creator's reply tunnel, garlic-wrapped under the reply key and tag
        (tunnel-creation-ecies.rst "Garlic Encryption") unless that tunnel's gateway is us."""
        message = event.message
        if event.garlic_key is not None and event.garlic_tag is not None and event.gateway_hash != self.router_hash:
            clove = GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), message)
            data = encrypt_with_reply_key(event.garlic_key, event.garlic_tag, [clove], rng=self.rng)
            message = I2NPMessage(MessageType.GARLIC, random_tunnel_id(self.rng), message.expiration_ms,
                                  Garlic(data).to_bytes())
        return self._gateway_message(event.tunnel_id, message)

    # --- figures

    @property
    def participating_tunnels(self) -> int:
        return len(self.transit)

    def build_success_ratio(self) -> float:
        """Share of our recent builds (every pool, last 50 each) that succeeded; 0.0 before any finished."""
        recent = [ok for pool in self._pools.values() for ok in pool.core.stats.recent]
        return sum(recent) / len(recent) if recent else 0.0

    def tunnel_records(self) -> list[TunnelRecord]:
        """Our own tunnels (not transit) for the control API: established ones and builds in flight."""
        now = self.clock.monotonic()
        wall = self.clock.time()
        records = []
        for pool in self._pools.values():
            direction = "inbound" if pool.is_inbound else "outbound"
            for tunnel in pool.core.tunnels:
                state = "expiring" if tunnel.expires_at - now < pool.config.rebuild_before_expiry else "established"
                records.append(TunnelRecord(tunnel.key, direction, tunnel.hops, state,
                                            wall + tunnel.expires_at - now, pool.name))
        for build_id, build in self._pending.items():
            pool = build.pool
            records.append(TunnelRecord(build_id, "inbound" if pool.is_inbound else "outbound", build.hops,
                                        "building", wall + build.started_at + pool.config.build_timeout - now,
                                        pool.name))
        return records

    def transit_records(self) -> list[TransitRecord]:
        now = self.clock.monotonic()
        names = {TransitRole.PARTICIPANT: "participant", TransitRole.INBOUND_GATEWAY: "inbound gateway",
                 TransitRole.OUTBOUND_ENDPOINT: "outbound endpoint"}
        return [TransitRecord(t.receive_tunnel_id, names[t.role], t.next_hash, t.bytes_in, t.messages_in,
                              t.messages_out, t.dropped, now - t.created_at) for t in self.transit.tunnels()]

    def transit_bytes_per_tunnel(self) -> float:
        """Mean bytes received per current transit tunnel."""
        tunnels = self.transit.tunnels()
        return sum(t.bytes_in for t in tunnels) / len(tunnels) if tunnels else 0.0

    def summary(self) -> dict[str, Any]:
        """Counters for logs and the console."""
        transit = self.transit.stats
        return {"participating": len(self.transit), "build_success_ratio": self.build_success_ratio(),
                "pending_builds": len(self._pending), "tests_in_flight": len(self._tests),
                "transit_messages_forwarded": transit.messages_forwarded,
                "transit_bytes_forwarded": transit.bytes_forwarded, **self.stats}
