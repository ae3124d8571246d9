"""A whole network in one process: N routers, each the real NetDbService + ProfileStore + NetDb (no disk) +
TunnelService + one garlic receiver, wired as core/router.py wires them, over in-memory links under one
FakeClock. One asyncio loop runs the services' async work (lookups, next-hop lookups, gateway flushes);
time moves only when `advance` says so."""
from __future__ import annotations

import asyncio
import random
from collections import OrderedDict, deque
from dataclasses import dataclass

from core.clock import FakeClock
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.leaseset import Lease2, LeaseSet2
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterAddress, RouterInfo
from core.garlic.routers import RouterGarlicReceiver
from core.i2np.header import I2NPMessage
from core.i2np.registry import parse_payload
from core.netdb.profiles import ProfileStore
from core.netdb.service import NetDbService, NetDbSettings
from core.netdb.store import NetDb
from core.router import NetDbTunnelPaths
from core.tunnel.service import TunnelService, TunnelSettings

NOW = 1_790_000_000.0
NETID = 42


def seeded_rng(seed: int):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


@dataclass(frozen=True)
class SimSettings:
    netdb: NetDbSettings = NetDbSettings()
    # a private network: every router shares one /16, as on a testnet
    tunnels: TunnelSettings = TunnelSettings(ip_restriction=0)
    max_sessions: int = 256              # open links per router, oldest closed first (a transport's limit)
    max_messages_per_settle: int = 2_000_000
    max_loop_turns: int = 200            # event-loop turns per settle before giving up on quiet


class SimRouter:
    """One router: the services of core/router.py, its transport replaced by the network's queue."""

    def __init__(self, net: "SimNetwork", index: int, *, floodfill: bool):
        self.net = net
        self.index = index
        self.floodfill = floodfill
        rng = seeded_rng(net.seed * 1_000_003 + index)
        self.rng = rng
        self.keys = PrivateKeys.generate(7, 4, rng)
        clock = net.clock
        self.hash = self.keys.router_identity.hash
        address = RouterAddress.create("NTCP2", {"host": f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
                                                 "port": "9000", "s": b64encode(rng(32)), "v": "2"})
        self.router_info = RouterInfo.create(self.keys.router_identity, self.keys.signing_private_key,
                                             int(clock.time() * 1000), [address],
                                             {"caps": "XfR" if floodfill else "XR", "netId": str(NETID),
                                              "router.version": "0.9.66"})
        self.sessions: OrderedDict[bytes, None] = OrderedDict()   # peers we have a link with
        self.db = NetDb(None, NETID, clock, own_hash=self.hash)
        self.profiles = ProfileStore(None, clock, rng)
        self.garlic = RouterGarlicReceiver(self.keys.private_key, clock=clock)
        self.started_at = clock.monotonic()
        self.netdb = NetDbService(self.db, self.profiles, own_hash=self.hash,
                                  own_router_info=lambda: self.router_info, send=self.send, clock=clock, rng=rng,
                                  floodfill=floodfill, uptime=lambda: clock.monotonic() - self.started_at,
                                  settings=net.settings.netdb, garlic=self.garlic)
        self.tunnels = TunnelService(router_hash=self.hash, static_key=X25519Keypair(self.keys.private_key),
                                     send=self.send, netdb=self.db, clock=clock, rng=rng, profiles=self.profiles,
                                     settings=net.settings.tunnels, lookup_router_info=self.netdb.lookup_router_info,
                                     garlic=self.garlic, connected=self.sessions.__contains__)
        self.tunnels.on_local_message = lambda message: self.handle_message(self.hash, message)
        self.netdb.tunnels = NetDbTunnelPaths(self.tunnels)
        self.unhandled = 0
        self.errors = 0

    # --- transport

    def open_session(self, peer: bytes) -> bool:
        """True if the link is new (the peer then learns our RouterInfo, as in NTCP2's SessionConfirmed)."""
        if peer in self.sessions:
            self.sessions.move_to_end(peer)
            return False
        self.sessions[peer] = None
        while len(self.sessions) > self.net.settings.max_sessions:
            self.sessions.popitem(last=False)
        return True

    def send(self, peer: bytes, message: I2NPMessage) -> bool:
        if peer == self.hash:                 # a reply into a tunnel whose gateway we are
            self.handle_message(self.hash, message)
            return True
        # a transport dials only routers whose RouterInfo it has, or answers over a link that is up
        if peer not in self.sessions and self.db.get_router_info(peer) is None:
            return False
        return self.net.send(self, peer, message)

    # --- inbound, as Router.handle_message

    def handle_message(self, peer: bytes, message: I2NPMessage) -> None:
        try:
            if self.tunnels.handle_message(peer, message):
                return
            if not self.netdb.handle(peer, parse_payload(message)):
                self.unhandled += 1
        except ProtocolError:
            self.errors += 1

    def tick(self) -> None:
        self.netdb.periodic()
        self.tunnels.tick()

    def state(self) -> dict[str, int]:
        """The sizes of what this router keeps, for the bounds check."""
        netdb, tunnels = self.netdb, self.tunnels
        return {"router_infos": len(self.db.router_infos), "leasesets": len(self.db.leasesets),
                "profiles": len(self.profiles.profiles), "lookups": netdb.active_lookups,
                "pending_stores": len(netdb._pending_stores), "requesters": len(netdb._requesters),
                "referrals": len(netdb._referrals), "pending_builds": len(tunnels._pending),
                "tunnel_tests": len(tunnels._tests), "own_tunnels": sum(len(p.core.tunnels) for p in tunnels.pools),
                "transit_tunnels": len(tunnels.transit), "next_hop_waits": len(tunnels._waiting),
                "reply_keys": len(self.garlic.reply_keys._keys), "sessions": len(self.sessions),
                "build_replays": len(tunnels.transit._build_replays),
                "data_replays": len(tunnels.transit._data_replays),
                "garlic_replays": len(self.garlic._replay), "used_tags": len(self.garlic._used_tags)}


class SimNetwork:
    def __init__(self, size: int, *, floodfill_share: float = 0.1, seed: int = 1,
                 settings: SimSettings = SimSettings()):
        self.seed = seed
        self.settings = settings
        self.clock = FakeClock(NOW)
        self.random = random.Random(seed)
        self.queue: deque = deque()
        self.down: set[bytes] = set()       # unreachable: messages to them vanish, they do nothing
        self.delivered = 0
        self.lost = 0
        self.instant_messages = 0     # delivered by the last batch of lookups before the clock moved
        floodfills = max(3, round(size * floodfill_share))
        self.routers = [SimRouter(self, i, floodfill=i < floodfills) for i in range(size)]
        self.by_hash = {r.hash: r for r in self.routers}

    # --- links

    def send(self, sender: SimRouter, peer: bytes, message: I2NPMessage) -> bool:
        target = self.by_hash.get(peer)
        if target is None:
            return False
        if sender.open_session(peer):
            self.queue.append((sender.hash, peer, None))     # the RouterInfo block of a new link
        self.queue.append((sender.hash, peer, message))
        return True

    def live(self) -> list[SimRouter]:
        return [r for r in self.routers if r.hash not in self.down]

    def floodfills(self) -> list[SimRouter]:
        return [r for r in self.routers if r.floodfill]

    def deliver(self) -> int:
        count = 0
        limit = self.settings.max_messages_per_settle
        while self.queue:
            sender, peer, message = self.queue.popleft()
            if peer in self.down or sender in self.down:
                self.lost += 1
                continue
            target = self.by_hash[peer]
            source = self.by_hash[sender]
            target.open_session(sender)
            if message is None:
                target.netdb.handle_router_info(sender, source.router_info)
                continue
            count += 1
            if count > limit:
                raise RuntimeError("message storm: the network did not settle")
            target.handle_message(sender, message)
        self.delivered += count
        return count

    async def settle(self) -> None:
        """Deliver everything, letting the loop run what the messages woke (lookups finishing, gateway
        flushes), until a turn moves nothing."""
        quiet = 0
        for _ in range(self.settings.max_loop_turns):
            moved = self.deliver()
            await asyncio.sleep(0)
            if moved or self.queue:
                quiet = 0
                continue
            quiet += 1
            if quiet >= 3:
                return

    async def advance(self, seconds: float, step: float = 1.0, until=None) -> bool:
        """Move simulated time on in steps, every live router doing its periodic work each step; stops early
        (True) once `until()` holds."""
        elapsed = 0.0
        while elapsed < seconds:
            if until is not None and until():
                return True
            self.clock.advance(step)
            elapsed += step
            for router in self.live():
                router.tick()
            await self.settle()
        return until is not None and until()

    # --- set-up

    def reseed(self, size: int = 10, floodfills: int = 3) -> None:
        """Every router gets one reseed bundle: `size` random routers, at least `floodfills` of them floodfills."""
        ffs = self.floodfills()
        for router in self.routers:
            picked = {r.hash: r for r in self.random.sample(ffs, min(floodfills, len(ffs)))}
            while len(picked) < size:
                other = self.random.choice(self.routers)
                picked[other.hash] = other
            for other in picked.values():
                if other is not router:
                    router.db.add_router_info(other.router_info, persist=False)

    def publish_all(self) -> None:
        for router in self.live():
            router.netdb.publish_router_info()

    def make_leaseset(self, owner: SimRouter, seed: int) -> tuple[PrivateKeys, LeaseSet2]:
        """A destination hosted on `owner`, its LeaseSet2 pointing at owner's exploratory inbound tunnels."""
        keys = PrivateKeys.generate(7, 4, seeded_rng(seed))
        published = int(self.clock.time())
        leases = [Lease2(gateway, tunnel_id, int(end))
                  for gateway, tunnel_id, end in owner.tunnels.leases(owner.tunnels.exploratory_inbound)]
        if not leases:
            leases = [Lease2(owner.hash, 1, published + 600)]
        ls = LeaseSet2.create(keys, published=published, expires_offset=600,
                              encryption_keys=[(4, X25519Keypair(keys.private_key).public_bytes)],
                              leases=leases[:16])
        return keys, ls

    # --- figures

    def knowledge(self) -> list[float]:
        """Per live router: the share of the other routers its netDb holds."""
        others = len(self.routers) - 1
        return [min(len(r.db.router_infos), others) / others for r in self.live()]
