"""asyncio driver for SSU2: one UDP socket per router running the sans-I/O handshake and data phase."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.clock import Clock, Rng
from core.crypto.chacha import ChaChaStream
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64decode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from core.garlic.limits import KeyedBuckets
from core.i2np.header import I2NPMessage, RawI2NP
from core.transport.ntcp2.driver import _CLOSED, BlockReceiver, ConnectionClosed

from . import header as h
from .blocks import (PATH_CHALLENGE, PATH_RESPONSE, CongestionBlock, DateTimeBlock, I2NPBlock, NewTokenBlock,
                     OpaqueBlock, PeerTestBlock, RelayIntroBlock, RelayRequestBlock, RelayResponseBlock, RelayTagBlock,
                     RouterInfoBlock, TerminationBlock, TerminationReason)
from .handshake import HandshakeResult, Initiator, ReplayCache, Responder, new_token_block
from .migration import PathSettings, PathValidator, path_response
from .relay import AliceRelay, Introduced, Introducer, RelayLimits, is_relay_tag_request, relay_tag_request
from .peertest import AliceTest, PeerTestLimits, PeerTestRelay, Reachability, ToAddress, ToPeer, nonce_of
from .session import DataPhase, SessionSettings

log = logging.getLogger(__name__)

RELAY_BLOCKS = (RelayRequestBlock, RelayResponseBlock, RelayIntroBlock, RelayTagBlock)
RELAY_TOKEN_LIFETIME = 60          # seconds: Alice uses a relayed token at once (ssu2.rst "RelayResponse")


@dataclass(frozen=True, slots=True)
class SSU2Settings:
    mtu: int = 1500
    handshake_timeout: float = 20.0          # ssu2.rst "Total Timeout"
    handshake_resend: tuple[float, ...] = (1.25, 2.5, 5.0)   # Token/Session Request
    max_pending_outbound: int = 64
    max_pending_inbound: int = 256
    max_sessions: int = 1024
    max_tokens: int = 4096                   # tokens Bobs gave us for the next connection
    receive_queue_size: int = 1024           # blocks delivered and not yet read; more are dropped
    max_send_queue: int = 1024
    socket_buffer: int = 1 << 20
    session: SessionSettings = SessionSettings()
    peer_test_roles: bool = True             # act as Bob and Charlie in others' peer tests (needs sign and lookup)
    peer_test: PeerTestLimits = PeerTestLimits()
    max_forwarded_router_infos: int = 64     # RouterInfos peers sent in session, kept for peer tests
    introducer: bool = True                  # hand out relay tags and introduce (needs sign and lookup)
    relay: RelayLimits = RelayLimits()
    relay_timeout: float = 5.0               # Alice: for the Relay Response or Hole Punch
    hole_punch_resends: int = 3              # Charlie: a Hole Punch goes again 1, 2 and 3 s later unless Alice came
    # floods from one IP cost only that IP (ssu2.rst "Security Analysis": rate limits are left to routers)
    handshake_rate: float = 10.0             # Token/Session Requests per second per IP, before any DH
    handshake_burst: float = 40.0
    peer_test_rate: float = 1.0              # Peer Test messages per second per IP, in or out of session
    peer_test_burst: float = 10.0
    relay_rate: float = 2.0                  # Relay blocks per second per IP
    relay_burst: float = 20.0
    path_rate: float = 2.0                   # Path Challenges answered per second per new IP
    path_burst: float = 10.0
    max_sessions_per_ip: int = 16
    path: PathSettings = PathSettings()      # ssu2.rst "Connection Migration"
    max_tracked_ips: int = 4096


class SSU2Connection(BlockReceiver):
    """An established SSU2 session, with the NTCP2Connection interface the transport manager uses."""

    def __init__(self, endpoint: "SSU2Endpoint", phase: DataPhase, address, *, inbound: bool,
                 peer_router_info: bytes | None):
        self._endpoint = endpoint
        self.data_phase = phase
        self.result: HandshakeResult = phase.result
        self.address = address
        self.peername = address
        self.inbound = inbound
        self.peer_router_hash = phase.result.peer_router_hash
        self.peer_static_key = phase.result.peer_static_key
        self.peer_router_info = peer_router_info
        self.clock_skew = phase.result.clock_skew
        clock = endpoint.clock
        self.established_at = clock.time()
        self.last_received = self.last_sent = clock.monotonic()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.refused_packets = 0
        self.congestion_signals = 0
        self._congestion_sent = -1e9
        self.close_reason: int | None = None
        self.peer_termination: TerminationBlock | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = False
        self._close_callbacks: list[Callable[[SSU2Connection], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_scheduled = False
        self.path = PathValidator(address, clock=clock, rng=endpoint.rng, settings=endpoint.settings.path)

    transport_style = "SSU2"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def outbound(self) -> bool:
        return not self.inbound

    def __repr__(self) -> str:
        return f"<SSU2Connection {'in' if self.inbound else 'out'} {self.peer_router_hash[:4].hex()} {self.address}>"

    def add_close_callback(self, callback: Callable[["SSU2Connection"], None]) -> None:
        self._close_callbacks.append(callback)

    # sending

    def send_raw_nowait(self, messages: list[RawI2NP]) -> bool:
        """I2NP messages in short-header terms, as NTCP2Connection.send_raw_nowait (the transport manager's
        send path)."""
        return self.send_nowait([I2NPMessage.from_raw(raw) for raw in messages])

    def send_nowait(self, items) -> bool:
        if self._closed:
            raise ConnectionClosed(self.close_reason)
        ok = True
        for item in _as_items(items):
            if isinstance(item, I2NPMessage):
                ok = self.data_phase.send_message(item) and ok
            elif isinstance(item, I2NPBlock):
                ok = self.data_phase.send_message(item.to_message()) and ok
            else:
                ok = self.data_phase.send_blocks([item]) and ok
        self._schedule_flush()
        return ok

    async def send(self, items) -> None:
        self.send_nowait(items)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        self._send_path(self.path.poll())
        for packet in self.data_phase.poll():
            self._endpoint.sendto(packet, self.address)
            self.bytes_sent += len(packet)
            self.last_sent = self._endpoint.clock.monotonic()
        self._arm_timer()

    def _send_path(self, packets) -> None:
        """Path Challenges to a candidate address: sealed now, outside the retransmitted stream."""
        for blocks, address in packets:
            packet = self.data_phase.seal_now(blocks)
            self._endpoint.sendto(packet, address)
            self.bytes_sent += len(packet)

    def _arm_timer(self) -> None:
        deadline = self.data_phase.next_deadline()
        path = self.path.next_deadline()
        if path is not None and (deadline is None or path < deadline):
            deadline = path
        if deadline is None or self._closed:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return              # an earlier timer runs _flush, which arms the next one: no churn per packet
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self._endpoint.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._flush()

    # receiving

    def _datagram(self, packet: bytes, address) -> None:
        if self._queue.qsize() >= self._endpoint.settings.receive_queue_size:
            # the reader is behind: leave the packet unacknowledged so the peer sends it again later
            self.refused_packets += 1
            return
        blocks = self.data_phase.receive(packet)      # ProtocolError goes to the endpoint: dropped, counted
        self.bytes_received += len(packet)
        now = self.last_received = self._endpoint.clock.monotonic()
        if self._queue.qsize() * 4 >= self._endpoint.settings.receive_queue_size * 3 \
                and now - self._congestion_sent >= (self.data_phase.srtt or 0.1):
            # ssu2.rst "Congestion": the reader falls behind; an ECN mark, once a round trip, before refusing packets
            self._congestion_sent = now
            self.congestion_signals += 1
            self._send_path([([CongestionBlock(2)], self.address)])
        if not self.data_phase.last_duplicate:
            self._send_path(self.path.on_packet(address))    # from a new address: Path Challenge there
        for block in blocks:
            if isinstance(block, OpaqueBlock) and block.block_type in (PATH_CHALLENGE, PATH_RESPONSE):
                self._path_block(block, address)
                continue
            if isinstance(block, NewTokenBlock):
                self._endpoint.store_token(self.address, block)
                continue
            if isinstance(block, PeerTestBlock) or isinstance(block, RELAY_BLOCKS) or is_relay_tag_request(block):
                if not self._endpoint.allow("peer_test" if isinstance(block, PeerTestBlock) else "relay",
                                            self.address):
                    continue
                try:
                    if isinstance(block, PeerTestBlock):
                        self._endpoint._peer_test_block(self, block)
                    else:
                        self._endpoint._relay_block(self, block)
                except ProtocolError as exc:          # a bad block costs only itself: the packet is acknowledged
                    self._endpoint.dropped += 1
                    log.debug("SSU2: %r: %s", self, exc)
                continue
            if isinstance(block, RouterInfoBlock):
                try:
                    ri_bytes = block.router_info
                    ri = self._endpoint._remember_router_info(ri_bytes)
                except ProtocolError:
                    continue
                if ri.hash == self.peer_router_hash:     # a peer test's Bob also forwards others' RouterInfos
                    self.peer_router_info = ri_bytes
            self._queue.put_nowait(block)
            if isinstance(block, TerminationBlock):
                self.peer_termination = block
                if block.reason != TerminationReason.TERMINATION_RECEIVED:
                    self._endpoint.sendto(self.data_phase.terminate(TerminationReason.TERMINATION_RECEIVED),
                                          self.address)
                self._shutdown(block.reason)
                return
        self._schedule_flush()        # the datagrams of one loop turn share one poll: ACKs and data batched

    def _path_block(self, block: OpaqueBlock, address) -> None:
        if block.block_type == PATH_RESPONSE:
            old = self.address
            if self.path.on_response(block):           # ssu2.rst "Successful Path Validation"
                self.address = self.peername = self.path.address
                if old[0] != self.address[0]:          # a new IP: a new path, a new RTT estimate
                    self.data_phase.srtt = None
                    self.data_phase.rto = self.data_phase.settings.initial_rto
                self._endpoint.migrations += 1
                log.info("SSU2: %r: migrated from %s", self, old)
            return
        # ssu2.rst "Responding to Path Challenge": to where it came from; new addresses within a rate
        if address != self.address and not self._endpoint.allow("path", address):
            return
        reply = path_response(block, address)
        if reply is not None:
            self._send_path([(reply, address)])

    # closing

    async def close(self, reason: int = TerminationReason.NORMAL_CLOSE) -> None:
        if self._closed:
            return
        try:
            self._endpoint.sendto(self.data_phase.terminate(reason), self.address)
        except ProtocolError:
            pass
        self._shutdown(reason)

    def _shutdown(self, reason: int | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
        self._queue.put_nowait(_CLOSED)
        self._endpoint._forget(self)
        for callback in self._close_callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("SSU2 close callback failed")



def _as_items(items) -> Iterable:
    if isinstance(items, (list, tuple)):
        return items
    return [items]


class _Pending:
    __slots__ = ("initiator", "future", "address", "resends", "timer", "started", "mtu")

    def __init__(self, initiator: Initiator, future: asyncio.Future, address, started: float, mtu: int):
        self.mtu = mtu
        self.initiator = initiator
        self.future = future
        self.address = address
        self.resends = 0
        self.timer: asyncio.TimerHandle | None = None
        self.started = started


class SSU2Endpoint(asyncio.DatagramProtocol):
    """One UDP socket: inbound handshakes (Responder), outbound ones (Initiator), and every session on it."""

    def __init__(self, *, static_key: X25519Keypair, intro_key: bytes, netid: int,
                 router_info: Callable[[], bytes], on_connection: Callable[[SSU2Connection], None],
                 clock: Clock, rng: Rng = os.urandom, replay_cache: ReplayCache | None = None,
                 settings: SSU2Settings = SSU2Settings(), sign: Callable[[bytes], bytes] | None = None,
                 lookup_router_info: Callable[[bytes], object] | None = None):
        self.static_key = static_key
        self.intro_key = intro_key
        self._intro_mask = ChaChaStream(intro_key)   # every datagram's connection id is unmasked with it
        self.netid = netid
        self._router_info = router_info
        self._on_connection = on_connection
        self.clock = clock
        self.rng = rng
        self.settings = settings
        self.responder = Responder(static_key=static_key, intro_key=intro_key, netid=netid, clock=clock, rng=rng,
                                   replay_cache=replay_cache, max_pending=settings.max_pending_inbound,
                                   handshake_timeout=settings.handshake_timeout, handshake_rate=settings.handshake_rate,
                                   handshake_burst=settings.handshake_burst, max_tracked_ips=settings.max_tracked_ips)
        self._buckets = {"peer_test": KeyedBuckets(settings.peer_test_rate, settings.peer_test_burst,
                                                   settings.max_tracked_ips),
                         "relay": KeyedBuckets(settings.relay_rate, settings.relay_burst, settings.max_tracked_ips),
                         "path": KeyedBuckets(settings.path_rate, settings.path_burst, settings.max_tracked_ips)}
        self.migrations = 0                 # sessions moved to a validated new peer address
        self._limited: Counter[str] = Counter()
        self.sessions: dict[int, SSU2Connection] = {}        # by our receive connection id
        self._outbound: dict[tuple, _Pending] = {}           # by the peer's address
        self._tokens: OrderedDict[tuple, tuple[int, float]] = OrderedDict()   # peer address -> (token, expires)
        self._transport: asyncio.DatagramTransport | None = None
        self._housekeeping: asyncio.TimerHandle | None = None
        self.port: int | None = None
        self._host = "0.0.0.0"
        self.dropped = 0
        self._sign = sign
        self._lookup = lookup_router_info
        self._peer_tests: dict[int, tuple[AliceTest, asyncio.Event]] = {}
        self.reachability = Reachability.UNKNOWN
        self._relay: PeerTestRelay | None = None
        self._introducer: Introducer | None = None
        self._introduced: Introduced | None = None
        self._introductions: dict[int, tuple[AliceRelay, asyncio.Event]] = {}   # ours as Alice, by nonce
        self._hole_punches: OrderedDict[tuple, list] = OrderedDict()   # Alice's address -> [packet, resends left]
        self._our_hash: bytes | None = None
        self._router_infos: OrderedDict[bytes, RouterInfo] = OrderedDict()   # by hash, from RouterInfo blocks

    # lifecycle

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        self._host = host
        self.port = self._transport.get_extra_info("sockname")[1]
        sock = self._transport.get_extra_info("socket")
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:   # a window of full-size packets arrives in one burst; the default buffer drops some
                sock.setsockopt(socket.SOL_SOCKET, option, self.settings.socket_buffer)
            except OSError:
                pass
        self._housekeep()

    async def stop(self) -> None:
        for conn in list(self.sessions.values()):
            await conn.close(TerminationReason.ROUTER_SHUTDOWN)
        for pending in list(self._outbound.values()):
            self._fail(pending, ConnectionError("SSU2 endpoint stopped"))
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _housekeep(self) -> None:
        self.responder.expire()
        if self._relay is not None:
            self._relay.expire()
        if self._introducer is not None:
            self._introducer.expire()
        for packet, address in self.responder.retransmit():
            self.sendto(packet, address)
        self._resend_hole_punches()
        self._housekeeping = asyncio.get_running_loop().call_later(1.0, self._housekeep)

    def _resend_hole_punches(self) -> None:
        """ssu2.rst "Relay" retransmissions: "Hole punch may be retransmitted", once a second (housekeeping), until
        Alice's Session Request arrives from that address or the resends are spent."""
        if not self._hole_punches:
            return
        reached = {c.address for c in self.sessions.values()} | self.responder.pending_addresses()
        for address, entry in list(self._hole_punches.items()):
            if address in reached or entry[1] <= 0:
                del self._hole_punches[address]
                continue
            entry[1] -= 1
            self.sendto(entry[0], address)

    def allow(self, kind: str, address) -> bool:
        """One more `kind` ("peer_test", "relay", "path") message from `address`'s IP, within its token bucket."""
        if self._buckets[kind].take(address[0], self.clock.monotonic()):
            return True
        self._limited[kind] += 1
        return False

    @property
    def limited(self) -> Counter:
        """What the flood limits dropped: handshake_rate, amplification, peer_test, relay, path, sessions_per_ip."""
        return self._limited + self.responder.limited

    def sendto(self, packet: bytes, address) -> None:
        if self._transport is not None:
            self._transport.sendto(packet, address)

    # tokens Bobs gave us (New Token blocks), for the next Session Request to them

    def store_token(self, address, block: NewTokenBlock) -> None:
        self._tokens.pop(address, None)
        self._tokens[address] = (block.token, self.clock.time() + min(block.expires - self.clock.time(), 3600))
        while len(self._tokens) > self.settings.max_tokens:
            self._tokens.popitem(last=False)

    def _take_token(self, address) -> int:
        entry = self._tokens.pop(address, None)
        if entry is None or entry[1] < self.clock.time():
            return 0
        return entry[0]

    # outbound

    async def connect(self, host: str, port: int, *, peer_router_hash: bytes, peer_static_key: bytes,
                      peer_intro_key: bytes, peer_mtu: int | None = None, token: int = 0,
                      relay_tag_request: bool = False) -> SSU2Connection:
        address = (host, port)
        mtu = min(self.settings.mtu, peer_mtu or self.settings.mtu)
        if address in self._outbound or len(self._outbound) >= self.settings.max_pending_outbound:
            raise ConnectionError("SSU2: a handshake to this address is already running, or too many are")
        initiator = Initiator(static_key=self.static_key, router_info=self._router_info(), intro_key=self.intro_key,
                              peer_router_hash=peer_router_hash, peer_static_key=peer_static_key,
                              peer_intro_key=peer_intro_key, netid=self.netid, clock=self.clock, rng=self.rng,
                              token=token or self._take_token(address), mtu=mtu, ipv6=":" in host,
                              relay_tag_request=relay_tag_request and self.introduced is not None)
        future = asyncio.get_running_loop().create_future()
        pending = _Pending(initiator, future, address, self.clock.monotonic(), mtu)
        self._outbound[address] = pending
        self.sendto(initiator.first_packet(), address)
        self._arm_resend(pending)
        try:
            async with asyncio.timeout(self.settings.handshake_timeout):
                return await future
        finally:
            if self._outbound.get(address) is pending:
                del self._outbound[address]
            if pending.timer is not None:
                pending.timer.cancel()

    def _arm_resend(self, pending: _Pending) -> None:
        resend = self.settings.handshake_resend
        if pending.resends < len(resend):
            pending.timer = asyncio.get_running_loop().call_later(resend[pending.resends], self._resend, pending)

    def _resend(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        pending.resends += 1
        for packet in pending.initiator.last_sent:
            self.sendto(packet, pending.address)
        self._arm_resend(pending)

    def _fail(self, pending: _Pending, exc: Exception) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)

    # receiving

    def datagram_received(self, data: bytes, addr) -> None:
        address = (addr[0], addr[1])
        try:
            self._dispatch(data, address)
        except ProtocolError as exc:
            self.dropped += 1          # ssu2.rst: drop without an answer
            log.debug("SSU2: dropped a datagram from %s: %s", address, exc)
        except Exception:
            self.dropped += 1
            log.exception("SSU2: datagram from %s", address)

    def error_received(self, exc: Exception) -> None:
        log.debug("SSU2 socket error: %s", exc)

    def _dispatch(self, data: bytes, address) -> None:
        if len(data) < h.MIN_PACKET_SIZE:
            raise ProtocolError(f"{len(data)}-byte datagram", structure="SSU2 packet")
        dest_id = h.unprotect_dest_id(data, self._intro_mask)
        conn = self.sessions.get(dest_id)
        if conn is not None:
            conn._datagram(data, address)
            return
        nonce = nonce_of(dest_id)
        if nonce is not None and nonce in self._peer_tests:
            test, event = self._peer_tests[nonce]
            test.on_packet(data, self.intro_key)
            event.set()
            return
        if nonce is not None and nonce in self._introductions:
            relay, event = self._introductions[nonce]
            relay.on_hole_punch(data, self.intro_key, address, self.router_info_of(relay.charlie_hash))
            event.set()
            return
        if nonce is not None and self._relay is not None and ~nonce & 0xFFFFFFFF in self._relay.as_charlie:
            if not self.allow("peer_test", address):
                return
            self._act(self._relay.on_packet(data, address))      # message 6: its ids are message 5's swapped
            return
        pending = self._outbound.get(address)
        if pending is not None and dest_id not in self.responder:
            try:
                self._outbound_packet(pending, data)
                return
            except ProtocolError as exc:
                if pending.initiator.state == "rejected":
                    self._fail(pending, exc)
                    return
        replies, result = self.responder.receive(data, address)
        for packet in replies:
            self.sendto(packet, address)
        if result is not None:
            self._established_inbound(result, address)

    def _outbound_packet(self, pending: _Pending, data: bytes) -> None:
        initiator = pending.initiator
        replies = initiator.receive(data)
        for packet in replies:
            self.sendto(packet, pending.address)
        if initiator.result is None:
            pending.resends = 0
            if pending.timer is not None:
                pending.timer.cancel()
            self._arm_resend(pending)
            return
        if pending.timer is not None:
            pending.timer.cancel()
        del self._outbound[pending.address]
        phase = DataPhase(initiator.result, intro_key=self.intro_key, clock=self.clock, rng=self.rng,
                          mtu=pending.mtu, ipv6=":" in pending.address[0], settings=self.settings.session,
                          handshake_packets=initiator.last_sent)
        conn = SSU2Connection(self, phase, pending.address, inbound=False, peer_router_info=None)
        conn.bytes_sent = sum(len(p) for p in initiator.last_sent)
        self.sessions[phase.receive_id] = conn
        for block in initiator.result.blocks:
            if isinstance(block, NewTokenBlock):
                self.store_token(pending.address, block)
            elif isinstance(block, RelayTagBlock) and self.introduced is not None:   # answer in Session Created
                self.introduced.on_relay_tag(conn.peer_router_hash, block)
        if not pending.future.done():
            pending.future.set_result(conn)
        conn._arm_timer()

    def _established_inbound(self, result: HandshakeResult, address) -> None:
        if len(self.sessions) >= self.settings.max_sessions:
            self.dropped += 1
            return
        if sum(1 for c in self.sessions.values() if c.address[0] == address[0]) >= self.settings.max_sessions_per_ip:
            self.dropped += 1
            self._limited["sessions_per_ip"] += 1
            return
        mtu = min(self.settings.mtu, published_mtu(result.router_info, result.peer_static_key) or self.settings.mtu)
        phase = DataPhase(result, intro_key=self.intro_key, clock=self.clock, rng=self.rng, mtu=mtu,
                          ipv6=":" in address[0], settings=self.settings.session)
        conn = SSU2Connection(self, phase, address, inbound=True, peer_router_info=result.peer_router_info)
        self.sessions[phase.receive_id] = conn
        # ssu2.rst "Session Confirmed ACK" and "Tokens": ACK 0 at once, with a token for next time
        phase.send_blocks([new_token_block(self.responder.issue_token(address, 3600), self.clock),
                           DateTimeBlock.now(self.clock.time())])
        if any(is_relay_tag_request(b) for b in result.blocks) and self.introducer is not None:
            # asked in Session Request: answered now that Session Confirmed gave Alice's RouterInfo
            phase.send_blocks([self.introducer.on_tag_request(result.peer_router_hash)])
        phase._ack_due = self.clock.monotonic()
        phase._remember(0)
        conn._flush()
        self._on_connection(conn)

    # peer test (ssu2.rst "Peer Test Process")

    def _remember_router_info(self, ri_bytes: bytes) -> RouterInfo:
        """A RouterInfo a peer sent in session, parsed and checked; kept (bounded) for the peer test it precedes."""
        ri = RouterInfo.parse(ri_bytes)
        if ri.hash not in self._router_infos:
            if not ri.verify():
                raise ProtocolError("RouterInfo signature does not verify", structure="SSU2 RouterInfo block")
            while len(self._router_infos) >= self.settings.max_forwarded_router_infos:
                self._router_infos.popitem(last=False)
        self._router_infos[ri.hash] = ri
        return ri

    def router_info_of(self, router_hash: bytes):
        ri = self._router_infos.get(router_hash)
        if ri is None:
            conn = self.session_with(router_hash)      # Alice's own, from Session Confirmed
            ri = conn.result.router_info if conn is not None else None
        if ri is None and self._lookup is not None:
            ri = self._lookup(router_hash)
        return ri

    @property
    def relay(self) -> PeerTestRelay | None:
        """Bob's and Charlie's roles, made on first use (our RouterInfo may not exist before start)."""
        if self._relay is None and self.settings.peer_test_roles and self._sign is not None \
                and self._lookup is not None:
            self._relay = PeerTestRelay(router_hash=self.router_hash, sign=self._sign, intro_key=self.intro_key,
                                        netid=self.netid, clock=self.clock, rng=self.rng,
                                        limits=self.settings.peer_test)
        return self._relay

    @property
    def router_hash(self) -> bytes:
        if self._our_hash is None:
            self._our_hash = RouterInfo.parse(self._router_info()).hash
        return self._our_hash

    def session_with(self, router_hash: bytes) -> SSU2Connection | None:
        return next((c for c in self.sessions.values() if c.peer_router_hash == router_hash and not c.closed), None)

    def _charlies(self, alice_hash: bytes) -> list[tuple[bytes, object]]:
        """Connected peers that can be Charlie: an IPv4 SSU2 address with "B", in random order."""
        found = []
        for conn in self.sessions.values():
            ri = self.router_info_of(conn.peer_router_hash) if conn.peer_router_hash != alice_hash else None
            address = dialable_ssu2(ri) if ri is not None and not conn.closed else None
            if address is not None and "B" in address.caps:
                found.append((conn.peer_router_hash, ri))
        if found:
            start = self.rng(1)[0] % len(found)
            found = found[start:] + found[:start]
        return found

    def _act(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, ToAddress):
                self.sendto(action.packet, action.address)
            elif isinstance(action, ToPeer):
                conn = self.session_with(action.peer)
                if conn is not None:
                    conn.send_nowait(list(action.blocks))

    def _peer_test_block(self, conn: SSU2Connection, block: PeerTestBlock) -> None:
        peer = conn.peer_router_hash
        if block.msg == 4:
            entry = self._peer_tests.get(block.nonce)
            if entry is not None and entry[0].bob_hash == peer:
                entry[0].on_message4(block)
                entry[1].set()
            return
        relay = self.relay
        if relay is None or block.msg not in (1, 2, 3):
            return
        if block.msg == 1:
            actions = relay.on_message1(peer, conn.address, self.router_info_of(peer), block, self._charlies(peer))
        elif block.msg == 2:
            actions = relay.on_message2(peer, block, self.router_info_of(block.router_hash),
                                        self.session_with(block.router_hash) is not None)
        else:
            actions = relay.on_message3(peer, block, self.router_info_of(peer))
        self._act(actions)

    async def peer_test(self, bob: SSU2Connection, host: str, port: int, *, timeout: float = 10.0) -> Reachability:
        """Ask `bob` to test whether `host`:`port` (ours, as published) takes inbound SSU2; sets `reachability`."""
        if self._sign is None or self._lookup is None:
            raise ValueError("peer testing needs the router's signing key and netDb")
        test = AliceTest(bob_hash=bob.peer_router_hash, host=host, port=port, sign=self._sign, netid=self.netid,
                         clock=self.clock, rng=self.rng)
        event = asyncio.Event()
        self._peer_tests[test.nonce] = (test, event)

        async def until(predicate, seconds: float) -> bool:
            try:
                async with asyncio.timeout(seconds):
                    while not predicate():
                        event.clear()
                        await event.wait()
            except TimeoutError:
                return predicate()
            return True
        try:
            bob.send_nowait(test.request)
            if not await until(lambda: test.code is not None, timeout) or test.code != 0:
                log.info("SSU2 peer test: Bob %r answered code %s", bob, test.code)
                return test.result
            # ssu2.rst: wait a little for message 5 before message 6 opens a firewall
            await until(lambda: test.got5, 2.0)
            charlie = None
            for _ in range(20):               # Bob sent Charlie's RouterInfo before message 4
                ri = self.router_info_of(test.charlie_hash)
                charlie = dialable_ssu2(ri) if ri is not None else None
                if charlie is not None:
                    break
                await asyncio.sleep(0.25)
            if charlie is not None:
                for _ in range(3):            # message 6, resent unchanged
                    self.sendto(test.message6(charlie.host, charlie.port, charlie.i), (charlie.host, charlie.port))
                    if await until(lambda: test.got7, 2.0):
                        break
            return test.result
        finally:
            del self._peer_tests[test.nonce]
            if test.result != Reachability.UNKNOWN:    # a test that told nothing keeps what the last one found
                self.reachability = test.result

    def _forget(self, conn: SSU2Connection) -> None:
        if self.sessions.get(conn.data_phase.receive_id) is conn:
            del self.sessions[conn.data_phase.receive_id]
        if self.session_with(conn.peer_router_hash) is None:
            for side in (self._introducer, self._introduced):
                if side is not None:
                    side.forget(conn.peer_router_hash)

    # relay (ssu2.rst "Relay Process")

    @property
    def introducer(self) -> Introducer | None:
        """Bob's role: relay tags for firewalled peers, introductions to them."""
        if self._introducer is None and self.settings.introducer and self._sign is not None:
            self._introducer = Introducer(router_hash=self.router_hash, sign=self._sign, clock=self.clock,
                                          rng=self.rng, limits=self.settings.relay)
        return self._introducer

    @property
    def introduced(self) -> Introduced | None:
        """Charlie's role: the relay tags Bobs gave us, and their introductions."""
        if self._introduced is None and self._sign is not None:
            self._introduced = Introduced(
                router_hash=self.router_hash, sign=self._sign, netid=self.netid, clock=self.clock, rng=self.rng,
                issue_token=lambda address: self.responder.issue_token(address, RELAY_TOKEN_LIFETIME),
                limits=self.settings.relay)
        return self._introduced

    def our_address(self, conn: SSU2Connection) -> tuple[str, int]:
        """Our address as `conn`'s peer sees it (the Address block of its Session Created), else our socket's."""
        seen = conn.result.our_address
        if seen is not None:
            return seen.host, seen.port
        return self._host, self.port

    def request_relay_tag(self, bob: SSU2Connection) -> None:
        """ssu2.rst "Relay Tag Request", in the data phase; Bob's Relay Tag lands in `introduced.tags`."""
        if self.introduced is None:
            raise ValueError("relaying needs the router's signing key")
        bob.send_nowait(relay_tag_request())

    def introducers(self) -> list[tuple[bytes, int]]:
        """(Bob's hash, relay tag) for every Bob in session that gave us a tag: what we may publish."""
        if self._introduced is None:
            return []
        return [(bob, tag) for bob, (tag, _) in self._introduced.tags.items() if self.session_with(bob) is not None]

    def _relay_block(self, conn: SSU2Connection, block) -> None:
        peer = conn.peer_router_hash
        if isinstance(block, RelayTagBlock):
            if self.introduced is not None:
                self.introduced.on_relay_tag(peer, block)
            return
        if isinstance(block, RelayResponseBlock):
            mine = self._introductions.get(block.nonce)
            if mine is not None and mine[0].bob_hash == peer:
                mine[0].on_response(block, self.router_info_of(mine[0].charlie_hash))
                mine[1].set()
            elif self._introducer is not None:
                self._act(self._introducer.on_relay_response(peer, block))
            return
        if isinstance(block, RelayIntroBlock):
            if self.introduced is not None:
                actions = self.introduced.on_relay_intro(peer, block, self.router_info_of(block.alice_hash),
                                                         self.our_address(conn),
                                                         self.session_with(block.alice_hash) is not None)
                self._act(actions)
                for action in actions:
                    if isinstance(action, ToAddress):          # the Hole Punch: resent until Alice dials us
                        self._hole_punches.pop(action.address, None)
                        self._hole_punches[action.address] = [action.packet, self.settings.hole_punch_resends]
                        while len(self._hole_punches) > self.settings.relay.max_pending:
                            self._hole_punches.popitem(last=False)
            return
        introducer = self.introducer
        if introducer is None:
            return
        if isinstance(block, RelayRequestBlock):
            self._act(introducer.on_relay_request(peer, self.router_info_of(peer), block,
                                                  lambda charlie: self.session_with(charlie) is not None))
        else:                                  # Relay Tag Request
            conn.send_nowait(introducer.on_tag_request(peer))

    async def connect_introduced(self, bob: SSU2Connection, *, charlie_hash: bytes, relay_tag: int,
                                 peer_static_key: bytes, peer_intro_key: bytes,
                                 peer_mtu: int | None = None) -> SSU2Connection:
        """Alice: ask `bob` to introduce us to firewalled Charlie, then dial Charlie with the token he gave."""
        if self._sign is None:
            raise ValueError("relaying needs the router's signing key")
        host, port = self.our_address(bob)
        relay = AliceRelay(bob_hash=bob.peer_router_hash, charlie_hash=charlie_hash, relay_tag=relay_tag, host=host,
                           port=port, sign=self._sign, netid=self.netid, clock=self.clock, rng=self.rng)
        event = asyncio.Event()
        self._introductions[relay.nonce] = (relay, event)
        try:
            bob.send_nowait(relay.request)
            async with asyncio.timeout(self.settings.relay_timeout):
                while relay.response is None:       # Bob's Relay Response or Charlie's Hole Punch, first
                    event.clear()
                    await event.wait()
        except TimeoutError:
            raise ConnectionError("SSU2: no Relay Response or Hole Punch") from None
        finally:
            del self._introductions[relay.nonce]
        if not relay.accepted:
            raise ConnectionError(f"SSU2: introduction refused (code {relay.response.code})")
        charlie_host, charlie_port = relay.charlie_address()
        return await self.connect(charlie_host, charlie_port, peer_router_hash=charlie_hash,
                                  peer_static_key=peer_static_key, peer_intro_key=peer_intro_key, peer_mtu=peer_mtu,
                                  token=relay.response.token)


def published_mtu(router_info, static_key: bytes | None = None) -> int | None:
    """The "mtu" of the peer's SSU2 address (ssu2.rst "MTU": 1280 to 1500), or None when it gives none."""
    if router_info is None:
        return None
    for address in router_info.addresses_of("SSU2"):
        try:
            if static_key is not None and address.s != static_key:
                continue
        except ProtocolError:
            continue
        return address_mtu(address)
    return None


def address_mtu(address) -> int | None:
    try:
        mtu = int(address.get("mtu") or 0)
    except ValueError:
        return None
    return max(1280, min(1500, mtu)) if mtu else None


def dialable_ssu2(router_info):
    """The first IPv4 SSU2 address with host, port, s, a 32-byte i and v=2 (ssu2.rst "Published Addresses")."""
    for address in router_info.addresses_of("SSU2"):
        try:
            if address.host and address.port and address.s and address.i and len(address.i) == 32 \
                    and "2" in (address.v or "").split(",") and ":" not in address.host:
                return address
        except ProtocolError:
            continue
    return None


def introduced_ssu2(router_info, now: float):
    """A firewalled peer's SSU2 address with s, i, v=2 and its unexpired introducers (ssu2.rst "Published Router
    Info": ih, itag, iexp 0-2), as (address, [(Bob's hash, relay tag)]); None when it has none."""
    for address in router_info.addresses_of("SSU2"):
        try:
            if not (address.s and address.i and len(address.i) == 32 and "2" in (address.v or "").split(",")):
                continue
            found = []
            for k in range(3):
                ih, itag, iexp = address.get(f"ih{k}"), address.get(f"itag{k}"), address.get(f"iexp{k}")
                if not ih or not itag:
                    continue
                bob, tag = b64decode(ih), int(itag)
                if len(bob) == 32 and 0 < tag < 1 << 32 and (not iexp or int(iexp) > now):
                    found.append((bob, tag))
        except (ProtocolError, ValueError):
            continue
        if found:
            return address, found
    return None
