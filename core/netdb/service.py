"""The netDb service: stores, lookups, exploration, publishing and the floodfill role around one NetDb.

Message handlers and `periodic()` are synchronous and read only the injected clock, so a whole
network of services can run in one process; `start()`/`stop()` add the asyncio task that calls
`periodic()`, and the `lookup_*`/`store_leaseset` coroutines wrap lookups in futures.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from core.clock import Clock, Rng
from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.keytypes import CRYPTO_X25519
from core.data.leaseset import AnyLeaseSet
from core.data.routerinfo import RouterInfo
from core.garlic.routers import RouterGarlicReceiver, wrap_for_router, wrap_with_reply_key
from core.i2np.header import I2NPMessage
from core.i2np.messages import (DatabaseLookup, DatabaseSearchReply, DatabaseStore, DeliveryStatus, LookupType,
                                ReplyEncryption, TunnelGateway)

from .floodfill import answer_lookup, flood_targets, may_flood_leaseset, may_flood_router_info
from .kademlia import RoutingKeys, closest
from .lookup import Lookup, LookupSettings, LookupState
from .profiles import ProfileStore
from .store import NetDb

log = logging.getLogger(__name__)

Sender = Callable[[bytes, I2NPMessage], bool]
TunnelReplySender = Callable[[bytes, int, I2NPMessage], bool]
ReplyWrapper = Callable[[DatabaseLookup, I2NPMessage], "I2NPMessage | None"]
LookupCallback = Callable[[Lookup], None]
REPLY_KEY_MARGIN_S = 30.0     # a reply key outlives its lookup a little, for late replies


class NetDbTunnels(Protocol):
    """Our tunnels as the netDb uses them; `pools` is a client's pool pair, None for the exploratory ones."""

    def reply_tunnel(self, pools: Any) -> tuple[bytes, int] | None:
        """(gateway hash, gateway tunnel id) of an inbound tunnel of ours, None while there is none."""

    def send_out(self, pools: Any, message: I2NPMessage, to_router: bytes) -> bool:
        """Send `message` out an outbound tunnel to a router; False while there is none."""


@dataclass(frozen=True, slots=True)
class NetDbSettings:
    lookup: LookupSettings = LookupSettings()
    exploration: LookupSettings = LookupSettings(parallelism=2, max_queries=4, total_timeout_s=15.0)
    referral_fetch: LookupSettings = LookupSettings(parallelism=2, max_queries=4, total_timeout_s=15.0)
    max_lookups: int = 64                   # concurrent searches, referral fetches included
    max_referral_fetches_per_reply: int = 16
    max_pending_stores: int = 256
    store_reply_timeout_s: float = 10.0     # "waits about 10 seconds" for the DeliveryStatus
    publish_redundancy: int = 2             # confirmed stores of our RouterInfo we want per round
    publish_attempts: int = 5               # floodfills tried per round
    message_expiration_s: float = 60.0
    tick_s: float = 0.5
    first_exploration_s: float = 1.0
    exploration_min_s: float = 10.0         # while the netDb is small, and after a round found something new
    exploration_max_s: float = 300.0        # interval doubles up to this when rounds find nothing new
    exploration_followup_s: float = 2.0     # after a reply named new routers, while the netDb is small
    small_netdb: int = 100                  # below this many routers, explore at the minimum interval
    few_floodfills: int = 10                # below this, also search random keys to meet more floodfills
    floodfill_searches: int = 3             # i2pd names only floodfills closer to the key than itself
    exploration_excluded: int = 500         # known routers listed so the floodfill names new ones
    expiry_s: float = 60.0
    profile_save_s: float = 300.0
    flush_s: float = 2.0          # netDb files are written at most this long after an entry changes
    lookups_per_minute_per_peer: int = 60   # what a floodfill answers one requester; beyond: dropped
    max_tracked_requesters: int = 1000
    # network-database.md "Exploration" and "RouterInfo and LeaseSet Lookup": our own RouterInfo lookups and
    # explorations leave through exploratory tunnels (garlic-wrapped, encrypted replies) once there are some
    lookups_via_tunnels: bool = True


@dataclass
class _Search:
    lookup: Lookup
    follow_referrals: bool
    callbacks: list[LookupCallback] = field(default_factory=list)
    via_tunnels: bool = False
    pools: Any = None
    tunneled: set[bytes] = field(default_factory=set)   # peers asked through tunnels, replies come from us


@dataclass
class _PendingStore:
    peer: bytes
    key: bytes
    sent_at: float
    round: "_StoreRound | None"


@dataclass
class _StoreRound:
    """Storing one entry to floodfills until `redundancy` confirm (DeliveryStatus) or `attempts` run out."""

    key: bytes
    build: Callable[[int, bytes, int], DatabaseStore]   # (reply token, reply gateway, reply tunnel id)
    targets: list[bytes]
    redundancy: int
    attempts: int
    tried: list[bytes] = field(default_factory=list)
    confirmed: list[bytes] = field(default_factory=list)
    outstanding: int = 0
    callbacks: list[Callable[["_StoreRound"], None]] = field(default_factory=list)
    finished: bool = False
    via_tunnels: bool = False
    pools: Any = None


class NetDbService:
    def __init__(self, db: NetDb, profiles: ProfileStore, *, own_hash: bytes,
                 own_router_info: Callable[[], RouterInfo | None], send: Sender, clock: Clock,
                 rng: Rng = os.urandom, floodfill: bool = False, uptime: Callable[[], float] = lambda: 0.0,
                 settings: NetDbSettings = NetDbSettings(), garlic: RouterGarlicReceiver | None = None,
                 tunnels: NetDbTunnels | None = None):
        self.db = db
        self.profiles = profiles
        self.own_hash = own_hash
        self.own_router_info = own_router_info
        self._send = send
        self.clock = clock
        self.rng = rng
        self.floodfill = floodfill
        self.uptime = uptime
        self.settings = settings
        self.routing_keys = RoutingKeys()
        self.stats: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        # replies to a tunnel go as TunnelGateway straight to its gateway, as i2pd and Java send them
        self.reply_via_tunnel: TunnelReplySender = self._reply_via_tunnel_gateway
        self.wrap_encrypted_reply: ReplyWrapper | None = self._wrap_encrypted_reply
        # the router's shared garlic receiver (reply keys of our lookups) and our tunnels; without both, direct
        self.garlic = garlic
        self.tunnels = tunnels
        self._searches: dict[tuple[bytes, LookupType], _Search] = {}
        # searches that ended lately: the other floodfills asked in parallel still answer (late replies)
        self._finished: OrderedDict[tuple[bytes, LookupType], tuple[float, _Search]] = OrderedDict()
        self._referrals: dict[bytes, set[tuple[bytes, LookupType]]] = {}
        self._pending_stores: dict[int, _PendingStore] = {}
        self._publish_round: _StoreRound | None = None
        self._requesters: dict[bytes, tuple[float, int]] = {}
        now = clock.monotonic()
        self._next_explore = now + settings.first_exploration_s
        self._explore_interval = settings.exploration_min_s
        self._next_expiry = now + settings.expiry_s
        self._next_profile_save = now + settings.profile_save_s
        self._next_flush = now + settings.flush_s
        self._exploration_known_before = 0
        self._task: asyncio.Task | None = None

    # --- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="netdb")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for search in list(self._searches.values()):
            search.lookup.state = LookupState.FAILED
            self._complete(search)
        self.profiles.save()
        self.db.flush()

    async def _run(self) -> None:
        while True:
            try:
                self.periodic()
            except Exception:
                log.exception("netDb: periodic work failed")
            await self._write_files()
            await asyncio.sleep(self.settings.tick_s)

    async def _write_files(self) -> None:
        """netDb entries and profiles that changed, written in a thread: fsync never holds up the routers
        and tunnels we serve. Taken on the loop (where they change), written off it."""
        now = self.clock.monotonic()
        try:
            if now >= self._next_flush:
                self._next_flush = now + self.settings.flush_s
                await asyncio.to_thread(self.db.write_files, self.db.take_unsaved())
            if now >= self._next_profile_save:
                self._next_profile_save = now + self.settings.profile_save_s
                await asyncio.to_thread(self.profiles.write_files, self.profiles.take_unsaved())
        except Exception:
            log.exception("netDb: writing files failed")

    def periodic(self) -> None:
        """Timeouts, then whatever is due: exploration, expiry, saving profiles."""
        now = self.clock.monotonic()
        self.tick(now)
        if now >= self._next_explore:
            self.explore()
            self._next_explore = now + self._explore_interval
        if now >= self._next_expiry:
            self.expire()
            self._next_expiry = now + self.settings.expiry_s


    def expire(self) -> tuple[int, int]:
        routers = self.db.expire_router_infos(self.uptime(), floodfill=self.floodfill)
        leasesets = self.db.expire_leasesets()
        if routers or leasesets:
            log.debug("netDb: expired %d RouterInfos, %d leasesets", routers, leasesets)
        return routers, leasesets

    # --- sending

    def _message(self, payload) -> I2NPMessage:
        msg_id = int.from_bytes(self.rng(4), "big")
        expiration = int((self.clock.time() + self.settings.message_expiration_s) * 1000)
        return I2NPMessage.build(payload, msg_id, expiration)

    def send(self, peer: bytes, payload) -> bool:
        if peer == self.own_hash:
            return False
        return self._send(peer, self._message(payload))

    def _reply_via_tunnel_gateway(self, gateway: bytes, tunnel_id: int, message: I2NPMessage) -> bool:
        # i2np.rst "TunnelGateway": the gateway puts it into its inbound tunnel
        return self._send(gateway, self._message(TunnelGateway(tunnel_id, message)))

    def _wrap_encrypted_reply(self, lookup: DatabaseLookup, message: I2NPMessage) -> I2NPMessage | None:
        """ECIES: the reply as garlic under the lookup's reply key and tag; ElGamal session tags: not offered."""
        if lookup.reply_encryption != ReplyEncryption.ECIES or lookup.reply_key is None:
            return None
        self.stats["encrypted_replies"] += 1
        return wrap_with_reply_key(lookup.reply_key, lookup.reply_tags[0], message, rng=self.rng)

    def _router_key(self, peer: bytes) -> bytes | None:
        """The X25519 key garlic to `peer` is encrypted to (ecies-routers.rst); None for other routers."""
        ri = self.db.get_router_info(peer)
        if ri is None or ri.identity.crypto_type != CRYPTO_X25519:
            return None
        return ri.identity.public_key

    def _tunnels_ready(self, pools: Any) -> tuple[bytes, int] | None:
        if self.tunnels is None or self.garlic is None:
            return None
        return self.tunnels.reply_tunnel(pools)

    def _send_via_tunnels(self, pools: Any, peer: bytes, payload) -> bool:
        """`payload` garlic-wrapped to `peer`'s router key, out one of our outbound tunnels."""
        key = self._router_key(peer)
        if key is None or self.tunnels is None:
            return False
        wrapped = wrap_for_router(key, self._message(payload), clock=self.clock, rng=self.rng)
        return self.tunnels.send_out(pools, wrapped, peer)

    def _reply(self, gateway: bytes, tunnel_id: int | None, payload) -> bool:
        message = self._message(payload)
        if not tunnel_id:
            return self._send(gateway, message)
        return self.reply_via_tunnel(gateway, tunnel_id, message)

    def _new_token(self) -> int:
        while True:
            token = int.from_bytes(self.rng(4), "big")
            if token and token not in self._pending_stores:
                return token

    def routing_key(self, key: bytes) -> bytes:
        return self.routing_keys.get(key, self.clock.time())

    # --- inbound messages (from directly connected peers)

    def handle(self, peer: bytes, payload, *, via_tunnel: bool = False) -> bool:
        """Dispatch one netDb message; False if the payload is not one of ours.

        `via_tunnel`: it came out of one of our inbound tunnels (the tunnel layer says so), not from `peer` itself.
        """
        if isinstance(payload, DatabaseStore):
            self.handle_store(peer, payload, via_tunnel=via_tunnel)
        elif isinstance(payload, DatabaseLookup):
            self.handle_lookup(peer, payload)
        elif isinstance(payload, DatabaseSearchReply):
            self.handle_search_reply(peer, payload)
        elif isinstance(payload, DeliveryStatus):
            return self.handle_delivery_status(peer, payload)
        else:
            return False
        return True

    def handle_router_info(self, peer: bytes, data: bytes) -> RouterInfo | None:
        """A RouterInfo a transport delivered (NTCP2 RouterInfo block)."""
        ri = self.db.add_router_info(data)
        if ri is not None:
            self._router_info_arrived(ri, peer)
        return ri

    def handle_store(self, peer: bytes, store: DatabaseStore, *, via_tunnel: bool = False) -> None:
        now = self.clock.monotonic()
        if via_tunnel and store.reply_token:
            # i2np.rst "DatabaseStore" notes: reply fields are ignored if the message came down a tunnel
            store = DatabaseStore(store.key, store.store_type, store.data)
        self.stats["stores_received"] += 1
        rejected_before = sum(self.db.rejected.values())
        entry = None
        if store.key == self.own_hash:
            self._own_entry_returned(peer, store, now)
            return
        if store.is_router_info:
            try:
                data = store.router_info_bytes()
            except ProtocolError as exc:
                self._drop("bad RouterInfo store", exc)
                return
            entry = self.db.add_router_info(data, key=store.key)
        else:
            as_reply = self._is_awaited(store.key, peer, (LookupType.LEASE_SET, LookupType.ANY))
            if not as_reply and self._is_late_reply(store.key, peer, (LookupType.LEASE_SET, LookupType.ANY)):
                self.stats["late_replies"] += 1
                as_reply = True
            if not as_reply and via_tunnel:
                self._drop("unsolicited leaseset store down a tunnel", None)   # as i2pd: stores come direct
                return
            if not (self.floodfill or as_reply):
                self._drop("unsolicited leaseset store to a non-floodfill", None)
                return
            entry = self.db.add_leaseset(store.key, store.store_type, store.data, as_reply=as_reply)
        if sum(self.db.rejected.values()) != rejected_before:
            self.dropped["invalid entry"] += 1
            return
        if store.reply_token:
            # network-database.md "RouterInfo Storage to Floodfills": DeliveryStatus with the token as msg id
            self._reply(store.reply_gateway, store.reply_tunnel_id,
                        DeliveryStatus(store.reply_token, int(self.clock.time() * 1000)))
            if self.floodfill and entry is not None:
                self._flood(store, peer)
        # a copy no newer than ours still answers a lookup
        if store.is_router_info:
            ri = entry or self.db.get_router_info(store.key)
            if ri is not None:
                self._router_info_arrived(ri, peer)
        elif store.key in self.db.leasesets:
            for lookup_type in (LookupType.LEASE_SET, LookupType.ANY):
                self._found(store.key, lookup_type, peer, now)

    def _own_entry_returned(self, peer: bytes, store: DatabaseStore, now: float) -> None:
        """Our own RouterInfo, as the answer to verify_router_info(): never stored (as i2pd), only checked."""
        search = self._searches.get((self.own_hash, LookupType.ROUTER_INFO))
        own = self.own_router_info()
        try:
            returned = store.router_info_bytes() if store.is_router_info else None
        except ProtocolError:
            returned = None
        if search is None or own is None or returned != own.to_bytes() or peer not in search.lookup.sent_at:
            self._drop("store of our own RouterInfo", None)
            return
        self._found(self.own_hash, LookupType.ROUTER_INFO, peer, now)

    def verify_router_info(self, floodfill: bytes, on_done: LookupCallback | None = None) -> Lookup | None:
        """Ask `floodfill` for our own RouterInfo ("RouterInfo Storage Verification"; Java no longer does it
        routinely, but it proves a floodfill holds our current copy)."""
        lookup = self.start_lookup(self.own_hash, LookupType.ROUTER_INFO, on_done=on_done, preferred=(floodfill,),
                                   follow_referrals=False,
                                   settings=LookupSettings(parallelism=1, max_queries=1, total_timeout_s=10.0))
        return lookup

    def _flood(self, store: DatabaseStore, sender: bytes) -> None:
        """"Flooding": to the 3 floodfills closest to the routing key, with a zero reply token, never stale entries."""
        now_ms = int(self.clock.time() * 1000)
        if store.is_router_info:
            ri = self.db.get_router_info(store.key)
            if ri is None or not may_flood_router_info(ri, now_ms):
                return
        else:
            stored = self.db.leasesets.get(store.key)
            if stored is None or not may_flood_leaseset(stored.leaseset, now_ms):
                return
        flooded = DatabaseStore(store.key, store.store_type, store.data)
        for peer in flood_targets(self.db, self.routing_key(store.key), {self.own_hash, store.key, sender}):
            if self.send(peer, flooded):
                self.stats["flooded"] += 1

    def handle_lookup(self, peer: bytes, lookup: DatabaseLookup) -> None:
        self.stats["lookups_received"] += 1
        if lookup.key == bytes(32):
            self._drop("lookup for the zero key", None)
            return
        if lookup.from_hash == self.own_hash and lookup.reply_tunnel_id is None:
            # with a reply tunnel, from_hash is its gateway, and that may be us
            self._drop("lookup claiming to be from us", None)
            return
        if not self._allow_requester(lookup.from_hash):
            self._drop("lookup rate limit", None)
            return
        reply = answer_lookup(self.db, lookup, own_hash=self.own_hash, routing_key=self.routing_key(lookup.key),
                              floodfill=self.floodfill, own_router_info=self.own_router_info())
        self.stats["lookups_answered_store" if isinstance(reply, DatabaseStore) else "lookups_answered_reply"] += 1
        message = self._message(reply)
        if lookup.reply_tunnel_id is None:
            # direct replies are never encrypted, as i2pd does
            self._send(lookup.from_hash, message)
            return
        if lookup.reply_encryption != ReplyEncryption.NONE:
            wrapped = self.wrap_encrypted_reply(lookup, message) if self.wrap_encrypted_reply else None
            if wrapped is None:
                self._drop("lookup asking for ElGamal-encrypted replies", None)
                return
            message = wrapped
        self.reply_via_tunnel(lookup.from_hash, lookup.reply_tunnel_id, message)

    def _allow_requester(self, requester: bytes) -> bool:
        now = self.clock.monotonic()
        start, count = self._requesters.get(requester, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if count >= self.settings.lookups_per_minute_per_peer:
            return False
        if requester not in self._requesters and len(self._requesters) >= self.settings.max_tracked_requesters:
            self._requesters = {k: v for k, v in self._requesters.items() if now - v[0] < 60.0}
            if len(self._requesters) >= self.settings.max_tracked_requesters:
                return False
        self._requesters[requester] = (start, count + 1)
        return True

    def handle_search_reply(self, peer: bytes, reply: DatabaseSearchReply) -> None:
        now = self.clock.monotonic()
        searches = [s for (key, _), s in self._searches.items() if key == reply.key]
        if not searches:
            late = self._is_late_reply(reply.key, reply.from_hash, tuple(LookupType)) or \
                self._is_late_reply(reply.key, peer, tuple(LookupType))
            self._drop("late search reply" if late else "unsolicited search reply", None)
            return
        for search in searches:
            lookup = search.lookup
            latency = lookup.latency(reply.from_hash, now)
            new = lookup.on_search_reply(now, reply.from_hash, reply.peer_hashes)
            if latency is not None and reply.from_hash in lookup.replied:
                self.profiles.record_lookup_reply(reply.from_hash, latency * 1000)
            if lookup.is_exploration:
                self._fetch_unknown(new, reply.from_hash, parent=None)
            else:
                self._follow(search, new, reply.from_hash)
            self._pump(search)

    def handle_delivery_status(self, peer: bytes, status: DeliveryStatus) -> bool:
        pending = self._pending_stores.pop(status.msg_id, None)
        if pending is None:
            return False
        self.stats["stores_confirmed"] += 1
        self.profiles.record_store_verified(pending.peer)
        if pending.round is not None:
            pending.round.outstanding -= 1
            pending.round.confirmed.append(pending.peer)
            self._advance_round(pending.round)
        return True

    def _drop(self, reason: str, exc: Exception | None) -> None:
        self.dropped[reason] += 1
        log.debug("netDb: dropped (%s)%s", reason, f": {exc}" if exc else "")

    # --- lookups

    def start_lookup(self, key: bytes, lookup_type: LookupType, *, on_done: LookupCallback | None = None,
                     preferred: tuple[bytes, ...] = (), follow_referrals: bool = True,
                     extra_excluded: tuple[bytes, ...] = (), settings: LookupSettings | None = None,
                     via_tunnels: bool = False, pools: Any = None) -> Lookup | None:
        """Begin (or join) an iterative search; None when too many run (on_done then sees nothing)."""
        search = self._searches.get((key, lookup_type))
        if search is not None:
            if on_done is not None:
                search.callbacks.append(on_done)
            search.lookup.preferred.update(preferred)
            search.lookup.add_candidates(preferred)
            self._pump(search)
            return search.lookup
        if len(self._searches) >= self.settings.max_lookups:
            self._drop("too many lookups", None)
            return None
        now = self.clock.monotonic()
        if settings is None:
            settings = self.settings.exploration if lookup_type == LookupType.EXPLORATION else self.settings.lookup
        lookup = Lookup(key, lookup_type, self.routing_key(key), now, settings, extra_excluded=extra_excluded,
                        preferred=set(preferred))
        floodfills = [ri.hash for ri in self.db.floodfills() if ri.hash != self.own_hash]
        wall = self.clock.time()
        bad = [h for h in floodfills if (p := self.profiles.get(h)) is not None and p.is_bad_floodfill(wall)]
        lookup.add_candidates([*preferred, *floodfills], bad=bad)
        search = _Search(lookup, follow_referrals, [on_done] if on_done else [], via_tunnels, pools)
        self._searches[(key, lookup_type)] = search
        self.stats["lookups_started"] += 1
        self._pump(search)
        return lookup

    def _pump(self, search: _Search) -> None:
        lookup = search.lookup
        now = self.clock.monotonic()
        for _ in range(lookup.settings.max_queries + 1):
            peers = lookup.next_queries(now)
            if not peers:
                break
            excluded = lookup.excluded_peers()
            for peer in peers:
                if not (self._query_via_tunnels(search, peer, excluded) or
                        self.send(peer, DatabaseLookup(lookup.key, self.own_hash, lookup.lookup_type, None, excluded))):
                    lookup.on_send_failed(peer, now)
        if lookup.done:
            self._complete(search)

    def _query_via_tunnels(self, search: _Search, peer: bytes, excluded: tuple[bytes, ...]) -> bool:
        """network-database.md "RouterInfo and LeaseSet Lookup": out an outbound tunnel, garlic-wrapped to the
        floodfill, the reply to our inbound tunnel under a fresh ECIES reply key and tag; False: go direct."""
        reply = self._tunnels_ready(search.pools) if search.via_tunnels else None
        if reply is None or self._router_key(peer) is None:
            return False
        assert self.garlic is not None
        gateway, tunnel_id = reply
        lookup = search.lookup
        reply_key, reply_tag = self.rng(32), self.rng(8)
        excluded = tuple(h for h in excluded if h != self.own_hash)   # naming ourselves would undo the tunnels
        query = DatabaseLookup(lookup.key, gateway, lookup.lookup_type, tunnel_id, excluded, ReplyEncryption.ECIES,
                               reply_key, (reply_tag,))
        if not self._send_via_tunnels(search.pools, peer, query):
            return False
        self.garlic.add_reply_key(reply_key, reply_tag, lookup.settings.total_timeout_s + REPLY_KEY_MARGIN_S)
        search.tunneled.add(peer)
        self.stats["lookups_via_tunnels"] += 1
        return True

    def _complete(self, search: _Search) -> None:
        lookup = search.lookup
        if self._searches.get((lookup.key, lookup.lookup_type)) is not search:
            return
        del self._searches[(lookup.key, lookup.lookup_type)]
        self._remember_finished(search)
        self.stats[f"lookups_{lookup.state.value}"] += 1
        for referral in lookup.discovered:
            parents = self._referrals.get(referral)
            if parents is not None:
                parents.discard((lookup.key, lookup.lookup_type))
                if not parents:
                    del self._referrals[referral]
        if lookup.lookup_type == LookupType.ROUTER_INFO:
            self._referral_done(lookup.key, self.db.get_router_info(lookup.key))
        if lookup.is_exploration:
            self.stats["exploration_discovered"] += len(lookup.discovered)
            new = [h for h in lookup.discovered if h not in self.db.router_infos]
            if new and len(self.db) < self.settings.small_netdb:
                # the reply named routers we did not know: there may be more, ask again soon
                self._next_explore = min(self._next_explore, self.clock.monotonic() + self.settings.exploration_followup_s)
        callbacks, search.callbacks = search.callbacks, []
        for callback in callbacks:
            try:
                callback(lookup)
            except Exception:
                log.exception("netDb: lookup callback failed")

    def tick(self, now: float | None = None) -> None:
        """Query and store timeouts."""
        now = self.clock.monotonic() if now is None else now
        for search in list(self._searches.values()):
            for peer in search.lookup.tick(now):
                self.profiles.record_lookup_timeout(peer)
                self.stats["lookup_query_timeouts"] += 1
            self._pump(search)
        for token, pending in list(self._pending_stores.items()):
            if now - pending.sent_at >= self.settings.store_reply_timeout_s:
                del self._pending_stores[token]
                self.profiles.record_store_failed(pending.peer)
                self.stats["store_timeouts"] += 1
                if pending.round is not None:
                    pending.round.outstanding -= 1
                    self._advance_round(pending.round)

    def _is_awaited(self, key: bytes, peer: bytes, types: tuple[LookupType, ...]) -> bool:
        return any(self._asked(self._searches.get((key, lookup_type)), peer) for lookup_type in types)

    def _asked(self, search: _Search | None, peer: bytes) -> bool:
        """`peer` was asked in `search` (our own hash: the answer came out of the tunnels the search used)."""
        return search is not None and (peer in search.lookup.sent_at or (peer == self.own_hash and bool(search.tunneled)))

    def _remember_finished(self, search: _Search) -> None:
        lookup = search.lookup
        self._finished.pop((lookup.key, lookup.lookup_type), None)
        self._finished[(lookup.key, lookup.lookup_type)] = (self.clock.monotonic(), search)
        while len(self._finished) > self.settings.max_lookups * 4:
            self._finished.popitem(last=False)

    def _is_late_reply(self, key: bytes, peer: bytes, types: tuple[LookupType, ...]) -> bool:
        """An answer to a search that ended lately from a peer it asked (the others asked in parallel answer
        after the first answer ended it), not an unsolicited message."""
        now = self.clock.monotonic()
        while self._finished and now - next(iter(self._finished.values()))[0] > REPLY_KEY_MARGIN_S:
            self._finished.popitem(last=False)
        return any(self._asked(self._finished.get((key, t), (0.0, None))[1], peer) for t in types)

    def _found(self, key: bytes, lookup_type: LookupType, peer: bytes | None, now: float) -> None:
        search = self._searches.get((key, lookup_type))
        if search is None:
            return
        if peer == self.own_hash and len(search.tunneled) == 1:
            peer = next(iter(search.tunneled))   # it came out of our tunnels: the one floodfill we asked
        latency = search.lookup.latency(peer, now) if peer is not None else None
        if latency is not None:
            self.profiles.record_lookup_reply(peer, latency * 1000)
        search.lookup.on_store(now, peer if latency is not None else None)
        self._complete(search)

    def _router_info_arrived(self, ri: RouterInfo, peer: bytes | None) -> None:
        now = self.clock.monotonic()
        for lookup_type in (LookupType.ROUTER_INFO, LookupType.ANY):
            self._found(ri.hash, lookup_type, peer, now)
        self._referral_done(ri.hash, ri)

    def _referral_done(self, referral: bytes, ri: RouterInfo | None) -> None:
        """A referred peer's RouterInfo arrived (or could not be found): its searches may ask it now."""
        for parent_key in self._referrals.pop(referral, ()):
            search = self._searches.get(parent_key)
            if search is None:
                continue
            if ri is not None and ri.is_floodfill:
                search.lookup.add_candidates([referral])
            else:
                search.lookup.drop_referral(referral)
            self._pump(search)

    def _follow(self, search: _Search, referrals: list[bytes], referrer: bytes) -> None:
        """DatabaseSearchReply peers: known floodfills join the search; unknown ones are fetched first."""
        lookup = search.lookup
        known, unknown = [], []
        for peer in referrals:
            if peer == self.own_hash:
                continue
            ri = self.db.get_router_info(peer)
            if ri is None:
                unknown.append(peer)
            elif ri.is_floodfill:
                known.append(peer)
        lookup.add_candidates(known)
        if search.follow_referrals:
            self._fetch_unknown(unknown, referrer, parent=search)

    def _fetch_unknown(self, peers: list[bytes], referrer: bytes, parent: _Search | None) -> None:
        fetched = 0
        for peer in peers:
            if peer == self.own_hash or self.db.get_router_info(peer) is not None:
                continue
            if fetched >= self.settings.max_referral_fetches_per_reply:
                break
            lookup = self.start_lookup(peer, LookupType.ROUTER_INFO, preferred=(referrer,), follow_referrals=False,
                                       settings=self.settings.referral_fetch,
                                       via_tunnels=self.settings.lookups_via_tunnels)
            if lookup is None:
                break
            fetched += 1
            if parent is not None and not lookup.done:
                parent.lookup.await_referral(peer)
                self._referrals.setdefault(peer, set()).add((parent.lookup.key, parent.lookup.lookup_type))

    # --- exploration ("Exploration")

    def explore(self) -> Lookup | None:
        """One exploratory search for a random key, listing the routers we know so the answer names new ones."""
        known = len(self.db)
        discovered_something = known > self._exploration_known_before
        self._exploration_known_before = known
        if known < self.settings.small_netdb or discovered_something:
            self._explore_interval = self.settings.exploration_min_s
        else:
            self._explore_interval = min(self._explore_interval * 2, self.settings.exploration_max_s)
        if not any(ri.hash != self.own_hash for ri in self.db.floodfills()):
            return None
        key = self.rng(32)
        routing_key = self.routing_key(key)
        others = [h for h, ri in self.db.router_infos.items() if not ri.is_floodfill and h != self.own_hash]
        excluded = (self.own_hash, *closest(routing_key, others, self.settings.exploration_excluded - 1))
        self.stats["explorations"] += 1
        tunneled = self.settings.lookups_via_tunnels
        lookup = self.start_lookup(key, LookupType.EXPLORATION, extra_excluded=excluded, via_tunnels=tunneled)
        if len(self.db.floodfills()) < self.settings.few_floodfills:
            # exploration names only non-floodfills; normal searches for random keys meet floodfills
            for _ in range(self.settings.floodfill_searches):
                self.start_lookup(self.rng(32), LookupType.ROUTER_INFO, via_tunnels=tunneled)
        return lookup

    # --- storing to floodfills

    def _store_round(self, key: bytes, build: Callable[[int, bytes, int], DatabaseStore], redundancy: int,
                     attempts: int, *, via_tunnels: bool = False, pools: Any = None) -> _StoreRound:
        wall = self.clock.time()
        floodfills = [ri.hash for ri in self.db.floodfills() if ri.hash not in (self.own_hash, key)]
        ordered = closest(self.routing_key(key), floodfills, len(floodfills))
        ordered.sort(key=lambda h: (p := self.profiles.get(h)) is not None and p.is_bad_floodfill(wall))
        store_round = _StoreRound(key, build, ordered, redundancy, attempts, via_tunnels=via_tunnels, pools=pools)
        self._advance_round(store_round)
        return store_round

    def _advance_round(self, store_round: _StoreRound) -> None:
        if store_round.finished:
            return
        now = self.clock.monotonic()
        while (len(store_round.confirmed) + store_round.outstanding < store_round.redundancy
               and len(store_round.tried) < store_round.attempts
               and len(store_round.tried) < len(store_round.targets)
               and len(self._pending_stores) < self.settings.max_pending_stores):
            peer = store_round.targets[len(store_round.tried)]
            store_round.tried.append(peer)
            token = self._new_token()
            if self._store_via_tunnels(store_round, peer, token) or \
                    self.send(peer, store_round.build(token, self.own_hash, 0)):
                self._pending_stores[token] = _PendingStore(peer, store_round.key, now, store_round)
                store_round.outstanding += 1
        if store_round.outstanding == 0 and (len(store_round.confirmed) >= store_round.redundancy
                                             or len(store_round.tried) >= min(store_round.attempts,
                                                                               len(store_round.targets))):
            store_round.finished = True
            callbacks, store_round.callbacks = store_round.callbacks, []
            for callback in callbacks:
                callback(store_round)

    def _store_via_tunnels(self, store_round: _StoreRound, peer: bytes, token: int) -> bool:
        """network-database.md "LeaseSet Storage to Floodfills": through an outbound tunnel, garlic-wrapped to
        the floodfill, the DeliveryStatus to our inbound tunnel; False: go direct (reply to us, tunnel 0)."""
        reply = self._tunnels_ready(store_round.pools) if store_round.via_tunnels else None
        if reply is None:
            return False
        gateway, tunnel_id = reply
        if not self._send_via_tunnels(store_round.pools, peer, store_round.build(token, gateway, tunnel_id)):
            return False
        self.stats["stores_via_tunnels"] += 1
        return True

    def publish_router_info(self) -> _StoreRound | None:
        """Send our RouterInfo to the floodfills closest to its routing key, each with a reply token."""
        ri = self.own_router_info()
        if ri is None:
            return None
        data = ri.to_bytes()
        self.stats["publications"] += 1
        self._publish_round = self._store_round(
            self.own_hash,
            lambda token, gateway, tunnel_id: DatabaseStore.for_router_info(
                self.own_hash, data, reply_token=token, reply_tunnel_id=tunnel_id, reply_gateway=gateway),
            self.settings.publish_redundancy, self.settings.publish_attempts)
        log.info("netDb: publishing our RouterInfo to %s",
                 ", ".join(b64encode(h)[:4] for h in self._publish_round.tried) or "no floodfill")
        return self._publish_round

    @property
    def published_to(self) -> list[bytes]:
        """Floodfills that confirmed our latest RouterInfo publication."""
        return list(self._publish_round.confirmed) if self._publish_round else []

    # --- public async API for the layers above

    async def _await_lookup(self, key: bytes, lookup_type: LookupType, *, via_tunnels: bool = False,
                            pools: Any = None) -> Lookup | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Lookup | None] = loop.create_future()

        def done(lookup: Lookup) -> None:
            if not future.done():
                future.set_result(lookup)
        if self.start_lookup(key, lookup_type, on_done=done, via_tunnels=via_tunnels, pools=pools) is None:
            return None
        return await future

    async def lookup_router_info(self, router_hash: bytes) -> RouterInfo | None:
        """The RouterInfo for `router_hash`, from the netDb or an iterative search (None if not found)."""
        ri = self.db.get_router_info(router_hash)
        if ri is not None:
            return ri
        await self._await_lookup(router_hash, LookupType.ROUTER_INFO, via_tunnels=self.settings.lookups_via_tunnels)
        return self.db.get_router_info(router_hash)

    async def lookup_leaseset(self, key: bytes, pools: Any = None, *, fresh: bool = False) -> AnyLeaseSet | None:
        """The leaseset under `key` (destination hash, or blinded key hash for an EncryptedLeaseSet), asked
        through `pools` (a client's tunnels; None: exploratory) with encrypted replies, direct while no tunnels.
        `fresh` asks the floodfills even when we hold a copy (its leases failed us: the owner may have a newer)."""
        ls = self.db.get_leaseset(key)
        if ls is not None and not fresh:
            return ls
        await self._await_lookup(key, LookupType.LEASE_SET, via_tunnels=True, pools=pools)
        return self.db.get_leaseset(key)

    async def store_leaseset(self, ls: AnyLeaseSet, pools: Any = None) -> int:
        """Publish `ls` to the closest floodfills through `pools` (None: exploratory), garlic-wrapped, or
        directly while no tunnels exist; returns how many confirmed it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        store_round = self._store_round(
            ls.hash, lambda token, gateway, tunnel_id: DatabaseStore.for_lease_set(
                ls, reply_token=token, reply_tunnel_id=tunnel_id, reply_gateway=gateway),
            self.settings.publish_redundancy, self.settings.publish_attempts, via_tunnels=True, pools=pools)
        if store_round.finished:
            return len(store_round.confirmed)
        store_round.callbacks.append(lambda r: future.done() or future.set_result(len(r.confirmed)))
        return await future

    def select_peers(self, tier, count: int, exclude=()) -> list[bytes]:
        """Peers for tunnels from the profile tiers; unprofiled routers of the netDb count as standard."""
        known = self.db.router_infos
        excluded = {self.own_hash, *exclude, *(p for p in self.profiles.profiles if p not in known)}
        return self.profiles.select_peers(tier, count, excluded, candidates=known.keys())

    @property
    def active_lookups(self) -> int:
        return len(self._searches)
