"""Transport manager: one NTCP2 or SSU2 session per peer, both roles, bounded queues and connection count."""
from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Callable

from core.clock import Clock, Rng
from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from core.i2np.header import I2NPMessage, RawI2NP
from core.transport.ntcp2.blocks import (DateTimeBlock, I2NPBlock, RouterInfoBlock, TerminationBlock,
                                         TerminationReason)
from core.transport.ntcp2.driver import ConnectionClosed, DriverSettings, NTCP2Connection, NTCP2Listener, connect
from core.transport.ntcp2.handshake import ReplayCache
from core.transport.ssu2.blocks import RouterInfoBlock as SSU2RouterInfoBlock
from core.transport.ssu2.driver import (SSU2Connection, SSU2Endpoint, SSU2Settings, address_mtu, dialable_ssu2,
                                        introduced_ssu2)
from core.transport.ssu2.peertest import Reachability

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes, I2NPMessage], None]
RouterInfoHandler = Callable[[bytes, bytes], None]


@dataclass(frozen=True, slots=True)
class TransportSettings:
    max_connections: int = 256
    max_queued_per_peer: int = 256          # messages waiting for a session; older ones are dropped
    max_concurrent_dials: int = 16
    idle_timeout_s: float = 600.0           # close a session with no I2NP either way for this long
    keepalive_s: float = 50.0               # i2pd ends sessions silent for 120 s; a DateTime block keeps ours
    housekeeping_s: float = 10.0
    dial_failure_backoff_s: float = 20.0
    replaced_session_grace_s: float = 30.0  # a superseded session still delivers what is in flight on it
    receive_batch: int = 8                  # SSU2: messages handled from one session before others get a turn
    first_peer_test_s: float = 60.0         # SSU2: our reachability, once sessions are up, then now and then
    peer_test_s: float = 1200.0
    introducers: int = 3                    # SSU2, firewalled: relay tags we hold and publish (ssu2.rst ih0-ih2)
    first_introducer_s: float = 5.0
    introducer_check_s: float = 30.0
    introducer_lifetime_s: int = 3600       # the iexp we publish
    ntcp2_failure_memory_s: float = 1800.0  # a peer whose NTCP2 failed and SSU2 worked is dialled over SSU2 first


@dataclass(slots=True)
class _PeerState:
    queue: deque
    dial: asyncio.Task | None = None
    last_failure: float = -1e9


Connection = NTCP2Connection | SSU2Connection


class TransportManager:
    """Owns every NTCP2 and SSU2 session of one router; upper layers only call send() and get callbacks.

    SSU2 runs when `ssu2_keys` (static key, intro key) is given: on the NTCP2 port over UDP.
    """

    def __init__(self, *, router_hash: bytes, static_key, iv: bytes, netid: int,
                 router_info: Callable[[], bytes], lookup_router_info: Callable[[bytes], RouterInfo | None],
                 on_message: MessageHandler, on_router_info: RouterInfoHandler,
                 clock: Clock, on_dial_failure: Callable[[bytes], None] | None = None, rng: Rng = os.urandom, settings: TransportSettings = TransportSettings(),
                 driver_settings: DriverSettings = DriverSettings(), ssu2_keys: tuple | None = None,
                 ssu2_settings: SSU2Settings = SSU2Settings(), sign: Callable[[bytes], bytes] | None = None,
                 on_introducers: Callable[[], None] | None = None):
        self.router_hash = router_hash
        self._static_key = static_key
        self._iv = iv
        self.netid = netid
        self._router_info = router_info
        self._lookup = lookup_router_info
        self._on_message = on_message
        self._on_router_info = on_router_info
        self._on_dial_failure = on_dial_failure
        self.clock = clock
        self.rng = rng
        self.settings = settings
        self.driver_settings = driver_settings
        self.replay_cache = ReplayCache(clock)
        self._ssu2_keys = ssu2_keys
        self._ssu2_settings = ssu2_settings
        self._sign = sign
        self._on_introducers = on_introducers
        self.introducers: list[tuple[bytes, int, int]] = []    # published: (Bob's hash, relay tag, iexp)
        self.ssu2: SSU2Endpoint | None = None
        self.sessions: dict[bytes, Connection] = {}
        self._peers: dict[bytes, _PeerState] = {}
        self._listener: NTCP2Listener | None = None
        self._dial_slots = asyncio.Semaphore(settings.max_concurrent_dials)
        self._tasks: set[asyncio.Task] = set()
        self._last_i2np: dict[bytes, float] = {}
        self._outbox: dict[bytes, list[RawI2NP]] = {}   # per peer with a session, until the loop's next turn
        self._flush_handle: asyncio.Handle | None = None
        # the relay path: called with each read's items from a peer before on_message, it passes on the
        # TunnelData it can and returns the rest in order (the router sets the tunnel service's)
        self.relay: Callable[[bytes, list], list] | None = None
        self.listen_port: int | None = None
        self._local_host: str | None = None
        self._retired: set[Connection] = set()
        self._secondary: dict[bytes, Connection] = {}   # per peer: a session of the transport not sent on
        self._ntcp2_failed: OrderedDict[bytes, float] = OrderedDict()    # peer -> when NTCP2 failed and SSU2 worked
        self.bytes_sent_closed = 0
        self.bytes_received_closed = 0
        self.dropped_messages = 0

    # --- lifecycle

    async def start(self, host: str | None, port: int) -> None:
        self._local_host = host      # dial from our published address: peers limit pending handshakes per IP
        if host:
            self._listener = NTCP2Listener(static_key=self._static_key, router_hash=self.router_hash, iv=self._iv,
                                           netid=self.netid, on_connection=self._inbound, clock=self.clock,
                                           rng=self.rng, replay_cache=self.replay_cache,
                                           router_info=self._router_info, settings=self.driver_settings)
            await self._listener.start(host, port)
            self.listen_port = self._listener.port
            log.info("NTCP2 listening on %s:%d", host, self.listen_port)
        if self._ssu2_keys is not None:
            static_key, intro_key = self._ssu2_keys
            self.ssu2 = SSU2Endpoint(static_key=static_key, intro_key=intro_key, netid=self.netid,
                                     router_info=self._router_info, on_connection=self._inbound, clock=self.clock,
                                     rng=self.rng, replay_cache=self.replay_cache,
                                     # only a router others can reach introduces (and publishes "C")
                                     settings=replace(self._ssu2_settings, introducer=bool(host)),
                                     sign=self._sign, lookup_router_info=self._lookup)
            # without a published host the socket only dials out, from any port
            await self.ssu2.start(host or "0.0.0.0", (self.listen_port or port) if host else 0)
            log.info("SSU2 on UDP %s:%d", host or "0.0.0.0", self.ssu2.port)
            if host:
                self._spawn(self._peer_tests(), "ssu2-peer-tests")
            else:
                self._spawn(self._introducer_loop(), "ssu2-introducers")
        self._spawn(self._housekeeping(), "transport-housekeeping")

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
        if self.ssu2 is not None:
            await self.ssu2.stop()
        for conn in [*self.sessions.values(), *self._secondary.values(), *self._retired]:
            await conn.close(TerminationReason.ROUTER_SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._outbox.clear()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- sending

    def send(self, peer_hash: bytes, message: I2NPMessage) -> bool:
        """Queue `message` for `peer_hash`, dialling if needed; False if it had to be dropped."""
        return self.send_raw(peer_hash, message.raw())

    def send_raw(self, peer_hash: bytes, raw: RawI2NP) -> bool:
        """send() of a message in short-header terms (the relay path sends without I2NPMessage objects)."""
        outbox = self._outbox.get(peer_hash)
        if outbox is not None:   # a session's outbox this turn: the relay path's common case
            outbox.append(raw)
            return True
        if peer_hash == self.router_hash:
            return False
        conn = self.sessions.get(peer_hash)
        if conn is not None and not conn.closed:
            # what one turn of the event loop sends a peer leaves in one write, in order, in few frames
            self._outbox[peer_hash] = [raw]
            if self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_outboxes)
            return True
        state = self._peers.get(peer_hash)
        if state is None:
            if len(self._peers) >= self.settings.max_connections * 2:
                self.dropped_messages += 1
                return False
            state = self._peers[peer_hash] = _PeerState(deque(maxlen=self.settings.max_queued_per_peer))
        if len(state.queue) == state.queue.maxlen:
            self.dropped_messages += 1
        state.queue.append(raw)
        if state.dial is None:
            if self.clock.monotonic() - state.last_failure < self.settings.dial_failure_backoff_s:
                state.queue.clear()
                self.dropped_messages += 1
                return False
            state.dial = self._spawn(self._dial(peer_hash, state), "ntcp2-dial")
        return True

    def is_connected(self, peer_hash: bytes) -> bool:
        conn = self.sessions.get(peer_hash)
        return conn is not None and not conn.closed

    async def connect(self, peer_hash: bytes) -> Connection | None:
        """An established session to `peer_hash`, dialling if there is none; None if that fails."""
        conn = self.sessions.get(peer_hash)
        if conn is not None and not conn.closed:
            return conn
        state = self._peers.setdefault(peer_hash, _PeerState(deque(maxlen=self.settings.max_queued_per_peer)))
        if state.dial is None:
            state.dial = self._spawn(self._dial(peer_hash, state), "ntcp2-dial")
        await asyncio.shield(state.dial)
        return self.sessions.get(peer_hash)

    def _flush_outboxes(self) -> None:
        self._flush_handle = None
        outboxes, self._outbox = self._outbox, {}
        now = self.clock.monotonic()
        last_i2np = self._last_i2np
        for peer, messages in outboxes.items():
            conn = self.sessions.get(peer)
            if conn is None:
                self.dropped_messages += len(messages)
            else:
                last_i2np[peer] = now
                self._send_now(conn, messages)

    def _send_now(self, conn: Connection, messages: list[RawI2NP]) -> None:
        try:
            if not conn.send_raw_nowait(messages):
                self.dropped_messages += len(messages)   # the peer has not read megabytes we sent: too slow
        except ConnectionClosed:
            self.dropped_messages += len(messages)
        except ValueError as exc:   # a message too big for the session's blocks: none of this turn's go
            self.dropped_messages += len(messages)
            log.warning("%s: dropped a send to %s: %s", conn.transport_style, b64encode(conn.peer_router_hash)[:8],
                        exc)

    async def _dial(self, peer_hash: bytes, state: _PeerState) -> None:
        # `state` may leave self._peers before this runs: an inbound session from the peer takes its queue
        try:
            existing = self.sessions.get(peer_hash)
            if existing is not None and not existing.closed:
                return
            ri = self._lookup(peer_hash)
            choices = self._dial_choices(ri) if ri is not None else []
            if not choices:
                log.debug("no dialable address for %s", b64encode(peer_hash)[:8])
                raise LookupError("no address")
            if len(self.sessions) >= self.settings.max_connections:
                raise LookupError("connection limit")
            async with self._dial_slots:
                for k, (style, address) in enumerate(choices):
                    try:
                        conn = await self._dial_one(style, address, peer_hash)
                        if k and choices[0][0] == "NTCP2":
                            self._remember_ntcp2_failure(peer_hash)     # SSU2 first next time, for a while
                        break
                    except (ProtocolError, OSError, TimeoutError) as exc:
                        if k == len(choices) - 1:
                            raise
                        log.info("%s: dial %s failed (%s), trying %s", style, b64encode(peer_hash)[:8], exc,
                                 choices[k + 1][0])
            log.info("%s: connected to %s at %s", style, b64encode(peer_hash)[:8], conn.peername)
            self._register(conn)
        except (ProtocolError, OSError, TimeoutError, LookupError) as exc:
            state.last_failure = self.clock.monotonic()
            self.dropped_messages += len(state.queue)
            state.queue.clear()
            if not isinstance(exc, LookupError):
                log.info("NTCP2: dial %s failed: %s", b64encode(peer_hash)[:8], exc)
                if self._on_dial_failure is not None:
                    self._on_dial_failure(peer_hash)
        finally:
            state.dial = None
            if self._peers.get(peer_hash) is state and not state.queue and peer_hash not in self.sessions:
                del self._peers[peer_hash]

    def _dial_choices(self, ri: RouterInfo) -> list[tuple[str, object]]:
        """The transports to try, in order. With both published, NTCP2 first, as i2pd and Java bid: it carries bulk
        at a fraction of SSU2's cost. SSU2 first only while we are firewalled and short of introducers (and the
        peer introduces), or when NTCP2 to this peer failed and SSU2 then worked, lately."""
        ntcp2 = _dialable_ntcp2(ri)
        ssu2 = dialable_ssu2(ri) if self.ssu2 is not None else None
        introduced = introduced_ssu2(ri, self.clock.time()) if self.ssu2 is not None and ssu2 is None else None
        choices = [c for c in (("NTCP2", ntcp2), ("SSU2", ssu2), ("SSU2-introduced", introduced))
                   if c[1] is not None]
        if len(choices) == 2 and ssu2 is not None and (self._wants_relay_tag(ssu2) or self._ssu2_preferred(ri.hash)):
            choices.reverse()
        return choices

    def _ssu2_preferred(self, peer: bytes) -> bool:
        since = self._ntcp2_failed.get(peer)
        if since is None:
            return False
        if self.clock.monotonic() - since > self.settings.ntcp2_failure_memory_s:
            del self._ntcp2_failed[peer]
            return False
        return True

    def _remember_ntcp2_failure(self, peer: bytes) -> None:
        self._ntcp2_failed.pop(peer, None)
        self._ntcp2_failed[peer] = self.clock.monotonic()
        while len(self._ntcp2_failed) > self.settings.max_connections * 4:
            self._ntcp2_failed.popitem(last=False)

    def _wants_relay_tag(self, address) -> bool:
        """Firewalled, short of introducers, and `address` (SSU2) offers introductions ("C")."""
        return self.ssu2 is not None and not self._local_host and "C" in address.caps \
            and len(self.ssu2.introducers()) < self.settings.introducers

    async def _dial_one(self, style: str, address, peer_hash: bytes) -> Connection:
        if style == "SSU2-introduced":
            return await self._dial_introduced(address, peer_hash)
        if style == "SSU2":
            # firewalled: ask peers that introduce for a relay tag in the Session Request (i2pd answers there)
            return await self.ssu2.connect(address.host, address.port, peer_router_hash=peer_hash,
                                           peer_static_key=address.s, peer_intro_key=address.i,
                                           peer_mtu=address_mtu(address),
                                           relay_tag_request=self._wants_relay_tag(address))
        return await connect(address.host, address.port, static_key=self._static_key,
                             router_info=self._router_info(), peer_router_hash=peer_hash,
                             peer_static_key=address.s, peer_iv=address.i, netid=self.netid,
                             clock=self.clock, rng=self.rng, settings=self.driver_settings,
                             local_addr=(self._local_host, 0) if self._local_host else None)

    async def _dial_introduced(self, choice, peer_hash: bytes) -> SSU2Connection:
        """ssu2.rst "Introducer Selection": through an introducer we have a session with, else the first we
        can dial."""
        address, introducers = choice
        ordered = sorted(introducers, key=lambda i: self._ssu2_session(i[0]) is None)
        failure: Exception = LookupError("no introducer reachable")
        for bob_hash, tag in ordered:
            try:
                bob = self._ssu2_session(bob_hash)
                if bob is None:
                    ri = self._lookup(bob_hash)
                    bob_address = dialable_ssu2(ri) if ri is not None else None
                    if bob_address is None:
                        continue
                    bob = await self._dial_one("SSU2", bob_address, bob_hash)
                    self._register(bob)
                return await self.ssu2.connect_introduced(bob, charlie_hash=peer_hash, relay_tag=tag,
                                                          peer_static_key=address.s, peer_intro_key=address.i,
                                                          peer_mtu=address_mtu(address))
            except (ProtocolError, OSError, TimeoutError) as exc:
                failure = exc
        raise failure

    async def _introducer_loop(self) -> None:
        """Firewalled: hold relay tags from up to `introducers` SSU2 peers offering "C", and have the router
        publish them (ssu2.rst "Relay Process")."""
        await asyncio.sleep(self.settings.first_introducer_s)
        while True:
            try:
                self.refresh_introducers()
            except (ProtocolError, ConnectionClosed) as exc:
                log.debug("SSU2 introducers: %s", exc)
            await asyncio.sleep(self.settings.introducer_check_s)

    def refresh_introducers(self) -> bool:
        """Ask more peers for relay tags when we hold too few; publish the ones we hold. True when they changed."""
        held = self.ssu2.introducers()
        if len(held) < self.settings.introducers:
            asked = 0
            for peer, conn in list(self._ssu2_sessions()):
                if asked + len(held) >= self.settings.introducers:
                    break
                ri = self._lookup(peer)
                address = dialable_ssu2(ri) if ri is not None else None
                if address is not None and "C" in address.caps and peer not in {h for h, _ in held}:
                    self.ssu2.request_relay_tag(conn)
                    asked += 1
        now = int(self.clock.time())
        current = {(h, t) for h, t, _ in self.introducers}
        fresh = all(e - now > self.settings.introducer_lifetime_s / 3 for _, _, e in self.introducers)
        if current == set(held[:self.settings.introducers]) and fresh:
            return False             # unchanged, and no iexp near: nothing to republish
        expires = now + self.settings.introducer_lifetime_s
        self.introducers = [(h, t, expires) for h, t in held[:self.settings.introducers]]
        log.info("SSU2: %d introducers", len(self.introducers))
        if self._on_introducers is not None:
            self._on_introducers()
        return True

    # --- sessions

    def _inbound(self, conn: Connection) -> None:
        if len(self.sessions) >= self.settings.max_connections and conn.peer_router_hash not in self.sessions:
            self._spawn(conn.close(TerminationReason.NORMAL_CLOSE), "ntcp2-refuse")   # no "limits" code in ntcp2.rst
            return
        log.info("%s: inbound session from %s", conn.transport_style, b64encode(conn.peer_router_hash)[:8])
        self._register(conn)

    def _register(self, conn: Connection) -> None:
        peer = conn.peer_router_hash
        old = self.sessions.get(peer)
        if old is not None and old is not conn and not old.closed and old.transport_style != conn.transport_style:
            # one session per transport, as i2pd and Java keep: a peer that has NTCP2 with us may come over SSU2
            # (its peer tests, relays). Both stay up; we send on NTCP2, the other is read and takes over if
            # the first closes
            primary, secondary = (old, conn) if old.transport_style == "NTCP2" else (conn, old)
            self._set_secondary(peer, secondary)
            self.sessions[peer] = primary
        else:
            if old is not None and old is not conn and not old.closed:
                # the peer dialled again (restart, or both dialled at once): send on the newest session, and
                # keep reading the old one a while so nothing already in flight on it is lost
                self._spawn(self._retire(old), "ntcp2-retire")
            self.sessions[peer] = conn
            other = self._secondary.get(peer)
            if other is not None and other.transport_style == conn.transport_style:
                self._set_secondary(peer, None)
        self._last_i2np[peer] = self.clock.monotonic()
        conn.add_close_callback(self._closed)
        if conn.peer_router_info:
            self._on_router_info(peer, conn.peer_router_info)
        if isinstance(conn, SSU2Connection):
            self._spawn(self._receive(conn), f"ssu2-recv-{b64encode(peer)[:8]}")
        else:
            conn.set_receiver(self._received)
        state = self._peers.pop(peer, None)
        if state is not None and state.queue:
            self._send_now(conn, list(state.queue))

    def _set_secondary(self, peer: bytes, conn: Connection | None) -> None:
        """The session of the other transport with `peer`; one that it replaces is retired."""
        prev = self._secondary.pop(peer, None)
        if prev is not None and prev is not conn and not prev.closed:
            self._spawn(self._retire(prev), "ntcp2-retire")
        if conn is not None:
            self._secondary[peer] = conn

    def _closed(self, conn: Connection) -> None:
        self.bytes_sent_closed += conn.bytes_sent
        self.bytes_received_closed += conn.bytes_received
        peer = conn.peer_router_hash
        if self._secondary.get(peer) is conn:
            del self._secondary[peer]
        if self.sessions.get(peer) is conn:
            other = self._secondary.pop(peer, None)
            if other is not None and not other.closed:
                self.sessions[peer] = other          # the other transport's session carries on, with the outbox
            else:
                del self.sessions[peer]
                self._last_i2np.pop(peer, None)
                self.dropped_messages += len(self._outbox.pop(peer, ()))
            log.info("%s: session with %s closed (reason %s)", conn.transport_style, b64encode(peer)[:8],
                     conn.close_reason)

    async def _retire(self, conn: Connection) -> None:
        self._retired.add(conn)
        try:
            await asyncio.sleep(self.settings.replaced_session_grace_s)
            await conn.close(TerminationReason.NORMAL_CLOSE)
        finally:
            self._retired.discard(conn)

    async def _receive(self, conn: Connection) -> None:
        """SSU2 sessions queue their blocks: each goes through _received, others get a turn every receive_batch."""
        handled = 0
        async for block in conn:
            if isinstance(block, I2NPBlock):
                handled += 1
                if handled % self.settings.receive_batch == 0:
                    await asyncio.sleep(0)
                block = (block.msg_type, block.msg_id, block.expiration, block.body)
            self._received(conn, [block])

    def _received(self, conn: NTCP2Connection, items: list) -> None:
        """One read's blocks from a session, in order; each peer's reads take turns in the event loop."""
        peer = conn.peer_router_hash
        count = len(items)
        if self.relay is not None:
            items = self.relay(peer, items)
        i2np = len(items) < count
        on_message = self._on_message
        for item in items:
            if type(item) is tuple:
                i2np = True
                try:
                    on_message(peer, I2NPMessage.from_raw(item))
                except ProtocolError as exc:
                    log.debug("NTCP2: bad I2NP message from %s: %s", b64encode(peer)[:8], exc)
                except Exception:
                    log.exception("I2NP handler failed on a message from %s", b64encode(peer)[:8])
            elif isinstance(item, (RouterInfoBlock, SSU2RouterInfoBlock)):
                try:
                    self._on_router_info(peer, item.router_info)
                except ProtocolError as exc:
                    log.debug("bad RouterInfo block from %s: %s", b64encode(peer)[:8], exc)
            elif isinstance(item, TerminationBlock):
                log.info("%s: %s terminated the session (reason %d)", conn.transport_style, b64encode(peer)[:8],
                         item.reason)
        if i2np:
            self._last_i2np[peer] = self.clock.monotonic()

    async def peer_test(self) -> Reachability | None:
        """An SSU2 peer test of our published address through a connected peer that offers testing ("B" in
        its SSU2 caps); None when there is no such peer or SSU2 is off or unpublished."""
        if self.ssu2 is None or not self._local_host or self.listen_port is None:
            return None
        for peer, conn in list(self._ssu2_sessions()):
            ri = self._lookup(peer)
            address = dialable_ssu2(ri) if ri is not None else None
            if address is not None and "B" in address.caps:
                return await self.ssu2.peer_test(conn, self._local_host, self.ssu2.port)
        return None

    async def _peer_tests(self) -> None:
        await asyncio.sleep(self.settings.first_peer_test_s)
        while True:
            try:
                await self.peer_test()
            except (ProtocolError, OSError, ConnectionClosed) as exc:
                log.debug("SSU2 peer test failed: %s", exc)
            await asyncio.sleep(self.settings.peer_test_s)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.settings.housekeeping_s)
            now = self.clock.monotonic()
            for peer, conn in list(self.sessions.items()):
                if conn.closed:
                    continue
                if now - self._last_i2np.get(peer, now) > self.settings.idle_timeout_s:
                    self._spawn(conn.close(TerminationReason.IDLE_TIMEOUT), "ntcp2-idle")
                elif now - conn.last_sent > self.settings.keepalive_s:
                    self._spawn(self._keepalive(conn), "ntcp2-keepalive")
            for conn in list(self._secondary.values()):     # not kept alive: closed when quiet both ways
                if not conn.closed and now - max(conn.last_received, conn.last_sent) > self.settings.idle_timeout_s:
                    self._spawn(conn.close(TerminationReason.IDLE_TIMEOUT), "ntcp2-idle")

    async def _keepalive(self, conn: Connection) -> None:
        try:
            await conn.send(DateTimeBlock.now(self.clock.time()))
        except ConnectionClosed:
            pass

    # --- figures

    def _ssu2_sessions(self):
        """(peer, SSU2 session) for every live SSU2 session, whether we send on it or not."""
        for sessions in (self.sessions, self._secondary):
            for peer, conn in list(sessions.items()):
                if isinstance(conn, SSU2Connection) and not conn.closed:
                    yield peer, conn

    def _ssu2_session(self, peer: bytes) -> SSU2Connection | None:
        for conn in (self.sessions.get(peer), self._secondary.get(peer)):
            if isinstance(conn, SSU2Connection) and not conn.closed:
                return conn
        return None

    @property
    def bytes_sent(self) -> int:
        return self.bytes_sent_closed + sum(c.bytes_sent
                                            for c in [*self.sessions.values(), *self._secondary.values()])

    @property
    def bytes_received(self) -> int:
        return self.bytes_received_closed + sum(c.bytes_received
                                                for c in [*self.sessions.values(), *self._secondary.values()])


def _dialable_ntcp2(ri: RouterInfo):
    """The first NTCP2 address with host, port, s, i and v=2 (ntcp2.rst "Published Router Info")."""
    for address in ri.addresses_of("NTCP2"):
        try:
            if address.host and address.port and address.s and address.i and "2" in (address.v or "").split(","):
                return address
        except ProtocolError:
            continue
    return None

