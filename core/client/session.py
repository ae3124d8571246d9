"""One local destination: its keys, garlic sessions, tunnels, LeaseSet2, and end-to-end messages.

Sending (garlic-routing.md, ecies.rst): the payload goes gzip-framed (payload.py) into an I2NP Data
message, that into a Garlic Clove block with DESTINATION delivery, the blocks into an ECIES-ratchet
message for the remote's LeaseSet2 key (ElGamal/AES+SessionTags when it offers only an ElGamal key),
and the Garlic message out one of our outbound tunnels to the inbound gateway of one of the remote's
leases. Our LeaseSet2 rides along (a DatabaseStore clove) in New Session messages and, with an ack
request, after it changes. Receiving is the reverse, from our inbound tunnels. Destinations of the
same ClientAPI talk directly, without tunnels or garlic.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from core.clock import BufferedRng, Clock, Rng
from core.crypto import elgamal, x25519
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.keytypes import CRYPTO_ELGAMAL, CRYPTO_TYPES, CRYPTO_X25519
from core.data.leaseset import STORE_LEASESET, STORE_LEASESET2, AnyLeaseSet, Lease, Lease2, LeaseSet, LeaseSet2
from core.data.privatekeys import PrivateKeys
from core.datagram import (PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3, PROTO_RAW, Datagram1, Datagram2,
                           Datagram3, RawDatagram, parse_datagram)
from core.garlic.elgamal_aes import ElGamalAesManager
from core.garlic.manager import SessionKeyManager
from core.garlic.session import SUPPORTED_CRYPTO_TYPES, MessageKind, ReceivedGarlic, SessionNotReady, SessionState
from core.i2np import (Data, DatabaseStore, DeliveryStatus, DeliveryType, Garlic, GarlicClove, GarlicCloveBlock,
                       GarlicCloveDeliveryInstructions, GarlicCloveSet, I2NPMessage, MessageType)

from .payload import ClientPayload, Compressor

if TYPE_CHECKING:
    from .api import ClientAPI

log = logging.getLogger(__name__)

TICK_S = 0.5
REPLY_AFTER_S = 0.5               # ecies.rst "Protocol-layer responses": answer NS/NSR/ack requests within ~1 s
MESSAGE_LIFETIME_MS = 60_000
LEASESET_MAX_LIFETIME_S = 660     # leases last 10 minutes; floodfills refuse much longer
LEASESET_REFRESH_S = 300.0        # re-sign and republish even when the leases stay the same
PUBLISH_RETRY_S = 5.0             # after a publication no floodfill confirmed
LEASE_MARGIN_S = 10.0             # a lease ending sooner than this is not used
LOOKUP_TIMEOUT_S = 30.0
FAILED_LOOKUP_HOLD_S = 10.0       # a destination not found is not searched again this soon
LS_ACK_TIMEOUT_S = 60.0           # resend our LeaseSet when its ack has not come by then
LEASE_SILENCE_S = 5.0             # nothing back from the peer this long after we sent to its lease: try another
LEASESET_REFRESH_HOLD_S = 10.0    # every lease of a peer failed: ask the floodfills for its LeaseSet at most this often
NS_BEFORE_HOLD = 4                # New Session messages sent before the rest wait for the NSR...
NS_HOLD_S = 2.0                   # ...at most this long: a burst of NS would hit receivers' NS rate limits
DEFAULT_CRYPTO_TYPES = "4,0"      # Java's default: ElGamal too, so destinations that speak only it reach us
MAX_STATUS_WAITS = 256            # DeliveryStatus messages we bundled (ElGamal/AES) and wait for
FORWARDED_TYPES = frozenset((MessageType.GARLIC, MessageType.DELIVERY_STATUS))   # i2pd's tag acks, to its tunnel


class ClientNetwork(Protocol):
    """What a session needs from the router: client tunnels and the netDb."""

    def open_pools(self, name: str, options: Mapping[str, str], on_message: Callable[[I2NPMessage], None]) -> Any:
        """Inbound and outbound tunnel pools for one destination; returns a handle for the calls below."""

    def close_pools(self, handle: Any) -> None: ...

    def leases(self, handle: Any) -> list[tuple[bytes, int, float]]:
        """(gateway hash, tunnel id, wall-clock end in seconds) of the usable inbound tunnels."""

    def send(self, handle: Any, message: I2NPMessage, gateway: bytes, tunnel_id: int) -> bool:
        """Out one of our outbound tunnels into the tunnel `tunnel_id` at `gateway`."""

    async def lookup_leaseset(self, handle: Any, dest_hash: bytes, *, fresh: bool = False) -> AnyLeaseSet | None:
        """`fresh`: ask the floodfills though a copy is held."""

    async def publish_leaseset(self, handle: Any, leaseset: LeaseSet2) -> int:
        """Store at the closest floodfills; how many confirmed."""


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The I2CP options a session reads (i2cp-overview.md "Options"); the rest go to the tunnel pools."""

    crypto_types: tuple[int, ...] = (CRYPTO_X25519, CRYPTO_ELGAMAL)
    gzip: bool = True
    publish_leaseset: bool = True
    receive_queue: int = 1024
    max_pending_per_destination: int = 64
    max_pending_destinations: int = 256
    max_remote_leasesets: int = 1024
    max_peers: int = 4096

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> "SessionOptions":
        types: list[int] = []
        for item in str(options.get("i2cp.leaseSetEncType", DEFAULT_CRYPTO_TYPES)).split(","):
            try:
                code = int(item.strip())
            except ValueError:
                continue
            if (code in SUPPORTED_CRYPTO_TYPES or code == CRYPTO_ELGAMAL) and code not in types:
                types.append(code)
        if not types:
            raise ValueError(f"i2cp.leaseSetEncType: none of {options.get('i2cp.leaseSetEncType')!r} is "
                             f"supported (supported: {sorted(SUPPORTED_CRYPTO_TYPES | {CRYPTO_ELGAMAL})})")
        return cls(crypto_types=tuple(types),
                   gzip=str(options.get("i2cp.gzip", "true")).lower() == "true",
                   publish_leaseset=str(options.get("i2cp.dontPublishLeaseSet", "false")).lower() != "true")


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """An end-to-end message for this destination.

    `sender_hash` is set only when the garlic session (or local delivery) vouches for the sender;
    `sender` is its Destination when known too.
    """

    payload: bytes
    protocol: int
    src_port: int
    dst_port: int
    sender: Destination | None = None
    sender_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class ReceivedDatagram:
    """A datagram (datagrams.rst). `sender` is the signer for the repliable formats 17 and 19;
    `sender_hash` is the claimed hash for 20 and the vouched one when the transport knows it."""

    payload: bytes
    protocol: int
    src_port: int
    dst_port: int
    sender: Destination | None = None
    sender_hash: bytes | None = None

    @property
    def repliable(self) -> bool:
        return self.sender_hash is not None


MessageHandler = Callable[[ReceivedMessage], None]
RemoteLeaseSet = LeaseSet2 | LeaseSet    # the kinds we send to; an original LeaseSet offers ElGamal only
DATAGRAM_PROTOCOLS = frozenset((PROTO_DATAGRAM, PROTO_RAW, PROTO_DATAGRAM2, PROTO_DATAGRAM3))


@dataclass(slots=True)
class _Peer:
    """What we know of one remote destination we talk to."""

    leaseset_sent: int = -1                  # published time of our LeaseSet the peer confirmed
    leaseset_ack: tuple[tuple[int, int], int, float] | None = None   # (ack id, published, sent at)
    lease: Lease | Lease2 | None = None
    ns_session: int = 0                      # id() of the outbound session the NS count is for
    ns_sent: int = 0
    held: deque = field(default_factory=deque)   # cloves waiting for the NSR (ecies.rst "Multiple NS Messages")
    held_since: float = 0.0
    unreachable_logged: bool = False         # said once that no key of its LeaseSet is of a type we speak
    unanswered_since: float | None = None    # first send to `lease` since we last heard from the peer
    elgamal_status: tuple[int, float] | None = None   # (DeliveryStatus id, sent at) of the last bundled LeaseSet
    lease_failed: bool = False               # the peer's streaming timed out on `lease`: take another
    failed_leases: set = field(default_factory=set)   # (gateway, tunnel id) given up since the last full round
    refreshed_at: float = -1e9               # when we last asked the floodfills for its LeaseSet afresh
    compressor: Compressor = field(default_factory=Compressor)   # how well what we send it deflates


@dataclass(slots=True)
class _PendingLookup:
    messages: deque = field(default_factory=deque)
    task: asyncio.Task | None = None


class ClientSession:
    """A destination hosted in this process; see the module docstring. Created by ClientAPI.open_session()."""

    def __init__(self, api: "ClientAPI", keys: PrivateKeys, options: Mapping[str, str], name: str, *,
                 network: ClientNetwork | None, clock: Clock, rng: Rng = os.urandom):
        self.api = api
        self.keys = keys
        self.name = name
        self.raw_options = dict(options)
        self.options = SessionOptions.from_options(options)
        self.network = network
        self.clock = clock
        self.rng = rng
        self._ids = BufferedRng(rng)   # I2NP message ids, two a message sent
        self.stats: Counter[str] = Counter()
        self.skm = SessionKeyManager(self._static_keys(), clock=clock, rng=rng)
        elgamal_key = elgamal.generate_private(rng) if CRYPTO_ELGAMAL in self.options.crypto_types else None
        self.elgamal = ElGamalAesManager(elgamal_key, clock=clock, rng=rng)
        self._status_waits: OrderedDict[int, tuple[bytes, int]] = OrderedDict()   # id -> (peer, our LS published)
        self.leaseset: LeaseSet2 | None = None
        self.leaseset_published_at: float | None = None   # monotonic time a floodfill first confirmed it
        self.opened_at = clock.monotonic()
        self._handle: Any = None
        self._lease_key: frozenset | None = None
        self._leaseset_signed_at = 0.0
        self._publish_task: asyncio.Task | None = None
        self._handlers: dict[int, MessageHandler] = {}
        self._messages: asyncio.Queue[ReceivedMessage] = asyncio.Queue(self.options.receive_queue)
        self._datagrams: asyncio.Queue[ReceivedDatagram] = asyncio.Queue(self.options.receive_queue)
        self._remote: OrderedDict[bytes, RemoteLeaseSet] = OrderedDict()
        self._by_static_key: OrderedDict[bytes, bytes] = OrderedDict()
        self._peers: OrderedDict[bytes, _Peer] = OrderedDict()
        self._compressor = Compressor()   # for destinations we hold no state of yet
        self._pending: dict[bytes, _PendingLookup] = {}
        self._refreshes: dict[bytes, asyncio.Task] = {}
        self._failed_lookups: OrderedDict[bytes, float] = OrderedDict()
        self._task: asyncio.Task | None = None
        self._leaseset_waiters: list[asyncio.Future] = []
        self.closed = False

    def _static_keys(self) -> dict[int, bytes]:
        """Our ratchet keys: the destination's own X25519 key for type 4, fresh ones otherwise. A destination
        that offers only ElGamal still holds an (unpublished) X25519 key: the ratchet manager needs one."""
        keys = {}
        for crypto_type in [t for t in self.options.crypto_types if t != CRYPTO_ELGAMAL] or [CRYPTO_X25519]:
            if crypto_type == CRYPTO_X25519 and self.keys.destination.crypto_type == CRYPTO_X25519:
                keys[crypto_type] = self.keys.private_key
            else:
                keys[crypto_type] = x25519.generate_private(self.rng)
        return keys

    # ------------------------------------------------------------------ identity

    @property
    def destination(self) -> Destination:
        return self.keys.destination

    @property
    def hash(self) -> bytes:
        return self.keys.destination.hash

    @property
    def b32_address(self) -> str:
        return self.keys.destination.b32_address

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.network is not None:
            self._handle = self.network.open_pools(self.name, self.raw_options, self._on_tunnel_message)
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"client:{self.name}")

    async def close(self) -> None:
        """Stop: no more sends or receipts; tunnels are released and pending lookups cancelled."""
        if self.closed:
            return
        self.closed = True
        self.api._unregister(self)
        tasks = [t for t in (self._task, self._publish_task) if t is not None]
        tasks += [p.task for p in self._pending.values() if p.task is not None]
        tasks += list(self._refreshes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.clear()
        if self.network is not None and self._handle is not None:
            self.network.close_pools(self._handle)
        for future in self._leaseset_waiters:
            if not future.done():
                future.cancel()

    async def __aenter__(self) -> "ClientSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def wait_published(self, timeout: float | None = None) -> LeaseSet2:
        """Our LeaseSet2 once a floodfill confirmed it (at once when already published)."""
        if self.leaseset_published_at is not None and self.leaseset is not None:
            return self.leaseset
        future = asyncio.get_running_loop().create_future()
        self._leaseset_waiters.append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if future in self._leaseset_waiters:
                self._leaseset_waiters.remove(future)

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("client %s: periodic work failed", self.name)
            await asyncio.sleep(TICK_S)

    def tick(self) -> None:
        """Keep the LeaseSet current, answer what the ratchet layer owes, expire caches."""
        self._maintain_leaseset()
        self.elgamal.upkeep()
        for session in self.skm.sessions_wanting_reply(REPLY_AFTER_S):
            dest_hash = self._by_static_key.get(session.remote_static_key)
            leaseset = self._remote_leaseset(dest_hash) if dest_hash is not None else None
            if leaseset is None:
                continue
            self.stats["empty_replies"] += 1
            self._send_garlic(leaseset, [])
        now = self.clock.monotonic()
        for dest_hash in [h for h, p in self._peers.items() if p.held and now - p.held_since >= NS_HOLD_S]:
            self._flush_held(dest_hash, force=True)
        wall = self.clock.time()
        for dest_hash in [h for h, ls in self._remote.items() if ls.expires <= wall * 1000]:
            self._forget_remote(dest_hash)

    # ------------------------------------------------------------------ our LeaseSet2

    def _maintain_leaseset(self) -> None:
        if self.network is None:
            return
        now_wall = self.clock.time()
        leases = [(gw, tid, end) for gw, tid, end in self.network.leases(self._handle) if end > now_wall + 1]
        key = frozenset((gw, tid) for gw, tid, _ in leases)
        if not leases:
            return
        if key == self._lease_key and self.clock.monotonic() - self._leaseset_signed_at < LEASESET_REFRESH_S:
            return
        self._lease_key = key
        self._leaseset_signed_at = self.clock.monotonic()
        self.leaseset = self.build_leaseset(leases)
        self.stats["leasesets_signed"] += 1
        if self.options.publish_leaseset:
            if self._publish_task is not None and not self._publish_task.done():
                self._publish_task.cancel()
            self._publish_task = asyncio.get_running_loop().create_task(self._publish(self.leaseset))

    def build_leaseset(self, leases: list[tuple[bytes, int, float]]) -> LeaseSet2:
        """common-structures.rst "LeaseSet2": our keys in preference order, the newest 16 leases, signed."""
        published = int(self.clock.time())
        if self.leaseset is not None and published <= self.leaseset.header.published:
            published = self.leaseset.header.published + 1   # a store must be newer to replace the old one
        chosen = sorted(leases, key=lambda lease: -lease[2])[:16]
        lease2s = [Lease2(gw, tid, min(int(end), published + LEASESET_MAX_LIFETIME_S)) for gw, tid, end in chosen]
        expires = max(1, min(max(lease.end_date for lease in lease2s) - published, LEASESET_MAX_LIFETIME_S))
        encryption_keys = [(t, self.elgamal.public_key if t == CRYPTO_ELGAMAL else self.skm.public_key(t))
                           for t in self.options.crypto_types]
        return LeaseSet2.create(self.keys, published=published, expires_offset=expires,
                                encryption_keys=encryption_keys, leases=lease2s)

    async def _publish(self, leaseset: LeaseSet2) -> None:
        try:
            confirmed = await self.network.publish_leaseset(self._handle, leaseset)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("client %s: publishing the LeaseSet failed", self.name)
            return
        self.stats["leaseset_publications"] += 1
        if confirmed <= 0:
            self.stats["leaseset_unconfirmed"] += 1
            # sign and publish again soon, not at every tick (no floodfill may be known yet)
            self._leaseset_signed_at = self.clock.monotonic() - LEASESET_REFRESH_S + PUBLISH_RETRY_S
            return
        if self.leaseset_published_at is None:
            self.leaseset_published_at = self.clock.monotonic()
            log.info("client %s: LeaseSet published %.1f s after opening (%d floodfills)", self.name,
                     self.leaseset_published_at - self.opened_at, confirmed)
        waiters, self._leaseset_waiters = self._leaseset_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(leaseset)

    # ------------------------------------------------------------------ sending

    def send(self, to: Destination | bytes, payload: bytes, *, protocol: int = 0, src_port: int = 0,
             dst_port: int = 0) -> None:
        """Send one message; best effort, like I2CP: it may wait for a LeaseSet lookup or be lost."""
        if self.closed:
            raise RuntimeError("session is closed")
        message = ClientPayload(payload, protocol, src_port, dst_port)
        dest_hash = to if isinstance(to, bytes) else to.hash
        local = self.api.local_session(dest_hash)
        if local is not None:
            self.stats["sent_local"] += 1
            asyncio.get_running_loop().call_soon(local._dispatch, message, self.destination, self.hash)
            return
        if self.network is None:
            self.stats["dropped_no_network"] += 1
            return
        compress: bool | Compressor = False
        if self.options.gzip:
            peer = self._peers.get(dest_hash)
            compress = peer.compressor if peer is not None else self._compressor
        data = message.to_bytes(compress=compress)
        leaseset = self._remote_leaseset(dest_hash)
        if leaseset is not None:
            self._send_data(leaseset, data)
        else:
            self._queue_for_lookup(dest_hash, data)

    def send_datagram(self, to: Destination | bytes, payload: bytes, *, protocol: int = PROTO_DATAGRAM,
                      src_port: int = 0, dst_port: int = 0) -> None:
        """A datagram (datagrams.rst) of the given format: 17 repliable, 18 raw, 19 Datagram2, 20 Datagram3."""
        dest_hash = to if isinstance(to, bytes) else to.hash
        if protocol == PROTO_RAW:
            body = RawDatagram(payload).to_bytes()
        elif protocol == PROTO_DATAGRAM:
            body = Datagram1.create(self.keys, payload).to_bytes()
        elif protocol == PROTO_DATAGRAM2:
            body = Datagram2.create(self.keys, payload, dest_hash).to_bytes()
        elif protocol == PROTO_DATAGRAM3:
            body = Datagram3(self.hash, payload).to_bytes()
        else:
            raise ValueError(f"protocol {protocol} is not a datagram protocol")
        self.send(to, body, protocol=protocol, src_port=src_port, dst_port=dst_port)

    def _queue_for_lookup(self, dest_hash: bytes, data: bytes) -> None:
        failed_at = self._failed_lookups.get(dest_hash)
        if failed_at is not None and self.clock.monotonic() - failed_at < FAILED_LOOKUP_HOLD_S:
            self.stats["dropped_not_found"] += 1
            return
        pending = self._pending.get(dest_hash)
        if pending is None:
            if len(self._pending) >= self.options.max_pending_destinations:
                self.stats["dropped_too_many_lookups"] += 1
                return
            pending = self._pending[dest_hash] = _PendingLookup()
            pending.task = asyncio.get_running_loop().create_task(self._lookup(dest_hash))
        if len(pending.messages) >= self.options.max_pending_per_destination:
            pending.messages.popleft()
            self.stats["dropped_pending_full"] += 1
        pending.messages.append(data)

    async def _ask_network(self, dest_hash: bytes, fresh: bool = False) -> AnyLeaseSet | None:
        """The destination's LeaseSet from the netDb (`fresh`: from the floodfills though we hold a copy)."""
        try:
            return await asyncio.wait_for(self.network.lookup_leaseset(self._handle, dest_hash, fresh=fresh),
                                          LOOKUP_TIMEOUT_S)
        except asyncio.TimeoutError:
            return None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("client %s: LeaseSet lookup failed", self.name)
            return None

    async def _lookup(self, dest_hash: bytes) -> None:
        self.stats["lookups"] += 1
        found = await self._ask_network(dest_hash)
        pending = self._pending.pop(dest_hash, None)
        leaseset = self._accept_leaseset(dest_hash, found) if found is not None else None
        if leaseset is None:
            leaseset = self._remote_leaseset(dest_hash)   # it may have come bundled meanwhile
        if leaseset is None:
            self.stats["lookups_failed"] += 1
            self._failed_lookups[dest_hash] = self.clock.monotonic()
            while len(self._failed_lookups) > self.options.max_pending_destinations:
                self._failed_lookups.popitem(last=False)
            if pending is not None:
                self.stats["dropped_not_found"] += len(pending.messages)
            return
        self._failed_lookups.pop(dest_hash, None)
        for data in pending.messages if pending is not None else ():
            self._send_data(leaseset, data)

    def _send_data(self, leaseset: RemoteLeaseSet, data: bytes) -> None:
        clove = GarlicCloveBlock(GarlicCloveDeliveryInstructions.to_destination(leaseset.hash),
                                 self._message(Data(data)))
        self._send_garlic(leaseset, [clove])

    def _message(self, payload) -> I2NPMessage:
        msg_id = int.from_bytes(self._ids(4), "big")
        return I2NPMessage.build(payload, msg_id, int(self.clock.time() * 1000) + MESSAGE_LIFETIME_MS)

    def _send_garlic(self, leaseset: RemoteLeaseSet, cloves: list[GarlicCloveBlock]) -> bool:
        """Encrypt `cloves` (plus our LeaseSet when the peer needs it) and send them to one of its leases."""
        selected = leaseset.select_encryption_key(self.skm.crypto_types)
        dest_hash = leaseset.hash
        peer = self._peer(dest_hash)
        if selected is None and (elgamal_key := _elgamal_key(leaseset)) is not None:
            return self._send_elgamal(leaseset, peer, elgamal_key, cloves)
        if selected is None:
            self.stats["dropped_no_common_crypto"] += 1
            if not peer.unreachable_logged:
                peer.unreachable_logged = True
                log.warning("client %s: cannot send to %s: %s", self.name, leaseset.destination.b32_address,
                            self.unreachable_reason(leaseset))
            return False
        crypto_type, static_key = selected
        lease = self._pick_lease(peer, leaseset, self.clock.monotonic())
        if lease is None:
            self.stats["dropped_no_lease"] += 1
            return False
        session = self.skm.session(static_key)
        new_session = session is None or not session.established
        now = self.clock.monotonic()
        if session is not None and session.state is SessionState.NEW_SESSION_SENT \
                and not session.should_restart(now):
            if peer.ns_session != id(session):
                peer.ns_session, peer.ns_sent = id(session), 0
            if peer.ns_sent >= NS_BEFORE_HOLD and now - session.created < NS_HOLD_S:
                if cloves:
                    if not peer.held:
                        peer.held_since = now
                    if len(peer.held) >= self.options.max_pending_per_destination:
                        peer.held.popleft()
                        self.stats["dropped_held_full"] += 1
                    peer.held.append(cloves)
                    self.stats["held_for_nsr"] += 1
                return True
        blocks: list = list(cloves)
        ack_request = False
        ours = self.leaseset
        if ours is not None and peer.leaseset_sent != ours.header.published:
            waiting = peer.leaseset_ack
            if new_session or waiting is None or waiting[1] != ours.header.published \
                    or now - waiting[2] > LS_ACK_TIMEOUT_S:
                blocks.insert(0, GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(),
                                                  self._message(DatabaseStore.for_lease_set(ours))))
                ack_request = not new_session
        try:
            sent = self.skm.encrypt(static_key, blocks, crypto_type=crypto_type, ack_request=ack_request)
        except (SessionNotReady, ValueError) as exc:
            self.stats["dropped_encrypt"] += 1
            log.debug("client %s: cannot encrypt to %s: %s", self.name, dest_hash.hex()[:8], exc)
            return False
        if ack_request and sent.ack_id is not None and ours is not None:
            peer.leaseset_ack = (sent.ack_id, ours.header.published, now)
        self._by_static_key[static_key] = dest_hash
        message = self._message(Garlic(sent.data))
        if not self.network.send(self._handle, message, lease.gateway, lease.tunnel_id):
            self.stats["dropped_no_tunnel"] += 1
            peer.lease = None
            return False
        self.stats[f"sent_{sent.kind.name.lower()}"] += 1
        if peer.unanswered_since is None:
            peer.unanswered_since = now
        if sent.kind is MessageKind.NEW_SESSION:
            if peer.ns_session != id(self.skm.session(static_key)):
                peer.ns_session, peer.ns_sent = id(self.skm.session(static_key)), 0
            peer.ns_sent += 1
        return True

    def _send_elgamal(self, leaseset: RemoteLeaseSet, peer: _Peer, remote_key: bytes,
                      cloves: list[GarlicCloveBlock]) -> bool:
        """legacy/elgamal-aes.md to a destination that offers only ElGamal: our LeaseSet rides along until a
        DeliveryStatus we bundle confirms it, and each new batch of tags gets such a DeliveryStatus too."""
        now = self.clock.monotonic()
        lease = self._pick_lease(peer, leaseset, now)
        if lease is None:
            self.stats["dropped_no_lease"] += 1
            return False
        blocks = list(cloves)
        ours = self.leaseset
        bundle = ours is not None and peer.leaseset_sent != ours.header.published
        if bundle:
            blocks.insert(0, GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(),
                                              self._message(DatabaseStore.for_lease_set(ours))))
        new_tags = self.elgamal.wants_tags(remote_key)
        status_due = bundle and (peer.elgamal_status is None or now - peer.elgamal_status[1] > LS_ACK_TIMEOUT_S / 4)
        status_id = None
        if new_tags or status_due:
            status_id = int.from_bytes(self.rng(4), "big")
            status = self._delivery_status_clove(status_id)
            if status is None:
                status_id = None
            else:
                blocks.append(status)
                self._status_waits[status_id] = (leaseset.hash, ours.header.published if bundle else -1)
                while len(self._status_waits) > MAX_STATUS_WAITS:
                    self._status_waits.popitem(last=False)
                if bundle:
                    peer.elgamal_status = (status_id, now)
        expires = int(self.clock.time() * 1000) + MESSAGE_LIFETIME_MS
        clove_set = GarlicCloveSet(tuple(GarlicClove(b.delivery_instructions, b.message,
                                                     int.from_bytes(self.rng(4), "big"), expires) for b in blocks),
                                   int.from_bytes(self.rng(4), "big"), expires)
        sent = self.elgamal.encrypt(remote_key, clove_set.to_bytes(),
                                    tags_message_id=status_id if new_tags else None)
        if not self.network.send(self._handle, self._message(Garlic(sent.data)), lease.gateway, lease.tunnel_id):
            self.stats["dropped_no_tunnel"] += 1
            peer.lease = None
            return False
        self.stats["sent_elgamal_new" if sent.new_session else "sent_elgamal_existing"] += 1
        if peer.unanswered_since is None:
            peer.unanswered_since = now
        return True

    def _delivery_status_clove(self, status_id: int) -> GarlicCloveBlock | None:
        """A DeliveryStatus for the far end to send down one of our inbound tunnels, sealed to ourselves."""
        leases = self.network.leases(self._handle)
        if not leases:
            return None
        gateway, tunnel_id, _ = leases[int.from_bytes(self.rng(2), "big") % len(leases)]
        now_ms = int(self.clock.time() * 1000)
        inner = self._message(DeliveryStatus(status_id, now_ms))
        clove_set = GarlicCloveSet((GarlicClove(GarlicCloveDeliveryInstructions.local(), inner,
                                                int.from_bytes(self.rng(4), "big"), now_ms + MESSAGE_LIFETIME_MS),),
                                   int.from_bytes(self.rng(4), "big"), now_ms + MESSAGE_LIFETIME_MS)
        sealed = self._message(Garlic(self.elgamal.seal_for_self(clove_set.to_bytes())))
        return GarlicCloveBlock(GarlicCloveDeliveryInstructions.to_tunnel(gateway, tunnel_id), sealed)

    def _delivery_status(self, status_id: int) -> None:
        """One of our bundled DeliveryStatus messages came back: its tags are usable, its LeaseSet is stored."""
        self.elgamal.confirm(status_id)
        waiting = self._status_waits.pop(status_id, None)
        if waiting is None:
            return
        dest_hash, published = waiting
        peer = self._peers.get(dest_hash)
        if peer is None:
            return
        self._heard_from(dest_hash)
        if published >= 0 and peer.elgamal_status is not None and peer.elgamal_status[0] == status_id:
            peer.leaseset_sent, peer.elgamal_status = published, None

    def _flush_held(self, dest_hash: bytes, force: bool = False) -> None:
        """Send what waited for the NSR: once the session is up, or when waiting took too long."""
        peer = self._peers.get(dest_hash)
        if peer is None or not peer.held:
            return
        leaseset = self._remote_leaseset(dest_hash)
        if leaseset is None:
            self.stats["dropped_held_no_leaseset"] += len(peer.held)
            peer.held.clear()
            return
        selected = leaseset.select_encryption_key(self.skm.crypto_types)
        session = self.skm.session(selected[1]) if selected is not None else None
        if not force and (session is None or not session.established):
            return
        held, peer.held = peer.held, deque()
        peer.ns_sent = 0 if force else peer.ns_sent
        peer.ns_session = 0 if force else peer.ns_session
        for cloves in held:
            self._send_garlic(leaseset, cloves)

    def _pick_lease(self, peer: _Peer, leaseset: RemoteLeaseSet, now: float) -> Lease | Lease2 | None:
        """Keep one lease per peer while it lasts and the peer answers (a stable path), else a random unexpiring
        one not given up yet: the silent or timed-out one's tunnel may be broken. Once every lease was given
        up (or none is left), the floodfills are asked for a newer LeaseSet and the round starts over."""
        horizon = self.clock.time() + LEASE_MARGIN_S
        usable = [lease for lease in leaseset.leases if lease.end_date_ms > horizon * 1000]
        current = peer.lease if peer.lease in usable else None
        if current is not None:
            silent = peer.unanswered_since is not None and now - peer.unanswered_since >= LEASE_SILENCE_S
            if not silent and not peer.lease_failed:
                return current
            peer.failed_leases.add((current.gateway, current.tunnel_id))
            self.stats["lease_switched"] += 1
        peer.lease_failed = False
        if len(peer.failed_leases) > 16:   # a LeaseSet holds at most 16: older entries are of replaced ones
            peer.failed_leases.clear()
        fresh = [lease for lease in usable if (lease.gateway, lease.tunnel_id) not in peer.failed_leases]
        if not fresh:
            self._refresh_leaseset(peer, leaseset.hash, now)
            peer.failed_leases.clear()
            fresh = [lease for lease in usable if lease is not current] or usable
        if not fresh:
            return None
        peer.lease = fresh[int.from_bytes(self.rng(2), "big") % len(fresh)]
        peer.unanswered_since = None
        return peer.lease

    def lease_failed(self, dest_hash: bytes) -> None:
        """Something sent to `dest_hash` went unanswered (a streaming retransmission timeout): the next message
        takes another of its leases, even while other traffic from the peer still arrives."""
        peer = self._peers.get(dest_hash)
        if peer is not None and peer.lease is not None:
            peer.lease_failed = True

    def _refresh_leaseset(self, peer: _Peer, dest_hash: bytes, now: float) -> None:
        """Ask the floodfills for the peer's LeaseSet though we hold one: it replaced the tunnels we know of."""
        if dest_hash in self._refreshes or dest_hash in self._pending or now - peer.refreshed_at < LEASESET_REFRESH_HOLD_S:
            return
        if len(self._refreshes) >= self.options.max_pending_destinations:
            return
        peer.refreshed_at = now
        self.stats["leaseset_refreshes"] += 1
        self._refreshes[dest_hash] = asyncio.get_running_loop().create_task(self._refresh(dest_hash))

    async def _refresh(self, dest_hash: bytes) -> None:
        try:
            found = await self._ask_network(dest_hash, fresh=True)
        finally:
            self._refreshes.pop(dest_hash, None)
        current = self._remote.get(dest_hash)
        if found is not None and self._accept_leaseset(dest_hash, found) is not current:
            self.stats["leasesets_refreshed"] += 1

    def _peer(self, dest_hash: bytes) -> _Peer:
        peer = self._peers.get(dest_hash)
        if peer is None:
            peer = self._peers[dest_hash] = _Peer()
            while len(self._peers) > self.options.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(dest_hash)
        return peer

    # ------------------------------------------------------------------ remote LeaseSets

    def _remote_leaseset(self, dest_hash: bytes) -> RemoteLeaseSet | None:
        leaseset = self._remote.get(dest_hash)
        if leaseset is None:
            return None
        if leaseset.expires <= self.clock.time() * 1000:
            self._forget_remote(dest_hash)
            return None
        return leaseset

    def _forget_remote(self, dest_hash: bytes) -> None:
        leaseset = self._remote.pop(dest_hash, None)
        if leaseset is None:
            return
        for _, key in leaseset.encryption_keys:
            if self._by_static_key.get(key) == dest_hash:
                del self._by_static_key[key]

    def _accept_leaseset(self, dest_hash: bytes, leaseset: AnyLeaseSet) -> RemoteLeaseSet | None:
        """Cache a remote LeaseSet2 (or original LeaseSet, ElGamal only) only when it is for `dest_hash`, validly
        signed, current and usable."""
        now = self.clock.time()
        if not isinstance(leaseset, (LeaseSet2, LeaseSet)):
            self.stats["leaseset_unsupported"] += 1
            return None
        if leaseset.hash != dest_hash:
            self.stats["leaseset_bad"] += 1
            return None
        if leaseset.expires <= now * 1000 or (isinstance(leaseset, LeaseSet2)   # type 1: "published" = a lease end
                                               and leaseset.published_ms > (now + 120) * 1000):
            self.stats["leaseset_stale"] += 1
            return None
        try:
            valid = leaseset.verify(now)
        except ProtocolError:
            valid = False
        if not valid:
            self.stats["leaseset_bad_signature"] += 1
            return None
        current = self._remote.get(dest_hash)
        # one kind's "published" does not compare with the other's: a change of kind replaces
        if current is not None and type(current) is type(leaseset) and current.published_ms > leaseset.published_ms:
            return current
        if current is not None:
            self._forget_remote(dest_hash)
        self._remote[dest_hash] = leaseset
        while len(self._remote) > self.options.max_remote_leasesets:
            self._forget_remote(next(iter(self._remote)))
        for _, key in leaseset.encryption_keys:
            self._by_static_key[key] = dest_hash
        self.stats["leasesets_stored"] += 1
        return leaseset

    def unreachable_reason(self, leaseset: AnyLeaseSet) -> str | None:
        """Why no message of ours can reach this LeaseSet's destination: none of its encryption keys is of a
        type we speak (e.g. an ElGamal-only destination); None when one is."""
        if isinstance(leaseset, LeaseSet2):
            offered = [t for t, _ in leaseset.encryption_keys]
            if leaseset.select_encryption_key(self.skm.crypto_types) is not None \
                    or _elgamal_key(leaseset) is not None:
                return None
        elif isinstance(leaseset, LeaseSet):
            return None   # ElGamal, which every destination of ours can send
        else:
            return None   # a Meta or Encrypted LeaseSet names no keys itself
        def names(types) -> str:
            return ", ".join(f"{t} ({CRYPTO_TYPES[t].name})" if t in CRYPTO_TYPES else str(t) for t in types)
        return (f"its LeaseSet offers only encryption types {names(offered)}; this destination speaks "
                f"{names(sorted(self.skm.crypto_types | {CRYPTO_ELGAMAL}))}")

    def remote_leaseset(self, dest_hash: bytes) -> RemoteLeaseSet | None:
        """The cached LeaseSet2 (or original LeaseSet) of a remote destination, if current."""
        return self._remote_leaseset(dest_hash)

    def forget_remote(self, dest_hash: bytes) -> None:
        """Drop a remote destination's cached LeaseSet (its tunnels did not answer): the next send looks it up
        again, finding the one a restarted destination published since."""
        self._forget_remote(dest_hash)
        self._peers.pop(dest_hash, None)

    # ------------------------------------------------------------------ receiving

    def set_protocol_handler(self, protocol: int, handler: MessageHandler | None) -> None:
        """Route messages of `protocol` to `handler` instead of the receive queues."""
        if handler is None:
            self._handlers.pop(protocol, None)
        else:
            self._handlers[protocol] = handler

    async def receive(self) -> ReceivedMessage:
        """The next message of a protocol that has no handler and is not a datagram protocol."""
        return await self._messages.get()

    async def receive_datagram(self) -> ReceivedDatagram:
        """The next datagram (protocols 17-20) whose signature, if it has one, verified."""
        return await self._datagrams.get()

    def _on_tunnel_message(self, message: I2NPMessage) -> None:
        """A message out of one of our inbound tunnels."""
        if self.closed:
            return
        if message.type != MessageType.GARLIC:
            self.stats["inbound_not_garlic"] += 1
            return
        try:
            data = Garlic.parse(message.body).data
        except ProtocolError:
            self.stats["garlic_malformed"] += 1
            return
        # legacy/elgamal-aes.md "Message Reception": a 32-byte tag first; an ElGamal trial only when nothing else fits
        elgamal_received = self.elgamal.decrypt_existing(data)
        received = self.skm.decrypt(data) if elgamal_received is None else None
        if received is None and elgamal_received is None:
            elgamal_received = self.elgamal.decrypt_new(data)
        if elgamal_received is not None:
            try:
                clove_set = GarlicCloveSet.parse(elgamal_received.payload)
            except ProtocolError:
                self.stats["garlic_malformed"] += 1
                return
            received = ReceivedGarlic(MessageKind.ELGAMAL_AES, tuple(
                GarlicCloveBlock(c.delivery_instructions, c.message) for c in clove_set.cloves))
        if received is None:
            self.stats["garlic_undecryptable"] += 1
            return
        self.stats["garlic_received"] += 1
        self.handle_garlic(received)

    def handle_garlic(self, received: ReceivedGarlic) -> None:
        """Cloves of a decrypted message: our LeaseSet's ack, bundled LeaseSets, then the data."""
        static_key = received.remote_static_key
        sender_hash = self._by_static_key.get(static_key) if static_key is not None else None
        if sender_hash is not None:
            self._confirm_leaseset(sender_hash, received)
            self._heard_from(sender_hash)
        payloads: list[bytes] = []
        for clove in received.cloves:
            instructions = clove.delivery_instructions
            if instructions.delivery_type == DeliveryType.DESTINATION:
                if instructions.to_hash != self.hash:
                    self.stats["clove_wrong_destination"] += 1
                    continue
            elif instructions.delivery_type == DeliveryType.TUNNEL and received.kind is MessageKind.ELGAMAL_AES \
                    and clove.message.type in FORWARDED_TYPES and self.network is not None:
                # the sender's DeliveryStatus for the tags it delivered, back down its own inbound tunnel
                self.stats["clove_forwarded"] += 1
                self.network.send(self._handle, clove.message, instructions.to_hash, instructions.tunnel_id)
                continue
            elif instructions.delivery_type != DeliveryType.LOCAL:
                self.stats["clove_not_local"] += 1   # we route nothing else onward for others
                continue
            inner = clove.message
            try:
                if inner.type == MessageType.DATA:
                    payloads.append(Data.parse(inner.body).payload)
                elif inner.type == MessageType.DATABASE_STORE:
                    bound = self._store_bundled(DatabaseStore.parse(inner.body), static_key)
                    if bound is not None and sender_hash is None:
                        sender_hash = bound
                        self._confirm_leaseset(sender_hash, received)
                        self._heard_from(sender_hash)
                elif inner.type == MessageType.DELIVERY_STATUS:
                    self.stats["delivery_status"] += 1
                    self._delivery_status(DeliveryStatus.parse(inner.body).msg_id)
                else:
                    self.stats["clove_unexpected_type"] += 1
            except ProtocolError:
                self.stats["clove_malformed"] += 1
        sender = None
        if sender_hash is not None:
            leaseset = self._remote.get(sender_hash)
            sender = leaseset.destination if leaseset is not None else None
            self._flush_held(sender_hash)
        for data in payloads:
            try:
                message = ClientPayload.parse(data)
            except ProtocolError:
                self.stats["payload_malformed"] += 1
                continue
            self._dispatch(message, sender, sender_hash)

    def _heard_from(self, dest_hash: bytes) -> None:
        peer = self._peers.get(dest_hash)
        if peer is not None:
            peer.unanswered_since = None

    def _confirm_leaseset(self, dest_hash: bytes, received: ReceivedGarlic) -> None:
        """An NSR to our NS (which carried our LeaseSet) or an Ack of the ES that did."""
        peer = self._peers.get(dest_hash)
        if peer is None:
            return
        if received.kind is MessageKind.NEW_SESSION_REPLY and self.leaseset is not None \
                and peer.leaseset_ack is None:
            peer.leaseset_sent = self.leaseset.header.published
        waiting = peer.leaseset_ack
        if waiting is not None and (waiting[0] in received.acks or received.kind is MessageKind.NEW_SESSION_REPLY):
            peer.leaseset_sent = waiting[1]
            peer.leaseset_ack = None

    def _store_bundled(self, store: DatabaseStore, static_key: bytes | None) -> bytes | None:
        """A LeaseSet in a clove: cached when valid; the destination it binds the session to, if its keys match."""
        if store.store_type not in (STORE_LEASESET2, STORE_LEASESET):
            self.stats["bundled_not_leaseset2"] += 1
            return None
        leaseset = self._accept_leaseset(store.key, store.lease_set())
        if leaseset is None:
            return None
        if static_key is not None and any(key == static_key for _, key in leaseset.encryption_keys):
            return leaseset.hash   # ecies.rst "NS Binding For NSR"
        return None

    def _dispatch(self, message: ClientPayload, sender: Destination | None, sender_hash: bytes | None) -> None:
        if self.closed:
            return
        self.stats["received"] += 1
        received = ReceivedMessage(message.data, message.protocol, message.src_port, message.dst_port,
                                   sender, sender_hash)
        handler = self._handlers.get(message.protocol)
        if handler is not None:
            handler(received)
        elif message.protocol in DATAGRAM_PROTOCOLS:
            datagram = self._open_datagram(received)
            if datagram is not None:
                self._enqueue(self._datagrams, datagram)
        else:
            self._enqueue(self._messages, received)

    def _enqueue(self, queue: asyncio.Queue, item) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats["dropped_receive_queue_full"] += 1

    def _open_datagram(self, message: ReceivedMessage) -> ReceivedDatagram | None:
        try:
            datagram = parse_datagram(message.protocol, message.payload)
        except ProtocolError:
            self.stats["datagram_malformed"] += 1
            return None
        sender, sender_hash = message.sender, message.sender_hash
        if isinstance(datagram, Datagram1):
            if not datagram.verify():
                self.stats["datagram_bad_signature"] += 1
                return None
            sender, sender_hash = datagram.from_destination, datagram.from_destination.hash
        elif isinstance(datagram, Datagram2):
            if not datagram.verify(self.hash, self.clock.time()):
                self.stats["datagram_bad_signature"] += 1
                return None
            sender, sender_hash = datagram.from_destination, datagram.from_destination.hash
        elif isinstance(datagram, Datagram3):
            if sender_hash is None:
                sender_hash = datagram.from_hash   # claimed, not authenticated (datagrams.rst "Datagram3")
            elif sender_hash != datagram.from_hash:
                self.stats["datagram_sender_mismatch"] += 1
                return None
        return ReceivedDatagram(datagram.payload, message.protocol, message.src_port, message.dst_port,
                                sender, sender_hash)


def _elgamal_key(leaseset: RemoteLeaseSet) -> bytes | None:
    selected = leaseset.select_encryption_key((CRYPTO_ELGAMAL,))
    return selected[1] if selected is not None else None
