"""All connections of one local destination: routing by stream ID, SYN handling, limits, pings.

Sans-I/O like Connection: `receive()` and `handle_timers()` take input, `datagrams_to_send()`
gives Outgoing packets, `accept()` gives new incoming connections, `take_changed()` names the
connections an application driver should look at again.
"""
from __future__ import annotations

import struct
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.clock import Clock, Rng
from core.data.errors import ProtocolError

from . import packet as pk
from .config import ConnectionLimits, StreamConfig
from .connection import Connection, SharedControlBlock
from .packet import Packet

if TYPE_CHECKING:
    from core.data.identity import Destination
    from core.data.privatekeys import PrivateKeys

PROTOCOL_STREAMING = 6
"""I2CP protocol number of streaming (i2cp.rst "Protocol numbers")."""
MAX_PING_PAYLOAD = 32
MAX_PINGS = 64
CONTROL_BLOCK_TTL = 300.0       # streaming-api.md "Control Block Sharing": expires after a few minutes
CONTROL_BLOCK_DAMPENING = 0.75
MAX_CONTROL_BLOCKS = 1024
HTTP_429 = (b"HTTP/1.1 429 Denied\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\n\r\n429 Denied: too many connections\r\n")
_WINDOWS = ((60.0, "minute"), (3600.0, "hour"), (86400.0, "day"))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One streaming packet for the datagram link."""

    to: Destination
    payload: bytes
    src_port: int = 0
    dst_port: int = 0
    protocol: int = PROTOCOL_STREAMING


@dataclass(slots=True)
class Pong:
    ping_id: int
    payload: bytes
    rtt: float


class _RateCounter:
    """Fixed-window counts per minute, hour and day."""

    __slots__ = ("starts", "counts")

    def __init__(self, now: float):
        self.starts = [now, now, now]
        self.counts = [0, 0, 0]

    def add(self, now: float) -> None:
        for i, (length, _) in enumerate(_WINDOWS):
            if now - self.starts[i] >= length:
                self.starts[i], self.counts[i] = now, 0
            self.counts[i] += 1

    def exceeds(self, now: float, limits: tuple[int, int, int]) -> bool:
        for i, (length, _) in enumerate(_WINDOWS):
            count = self.counts[i] if now - self.starts[i] < length else 0
            if limits[i] > 0 and count >= limits[i]:
                return True
        return False


class StreamManager:
    def __init__(self, keys: PrivateKeys, *, clock: Clock, rng: Rng, config: StreamConfig = StreamConfig(),
                 limits: ConnectionLimits = ConnectionLimits()):
        self.keys = keys
        self.clock = clock
        self.rng = rng
        self.config = config
        self.limits = limits
        self.stats: Counter = Counter()
        self._by_id: dict[int, Connection] = {}
        self._inbound_by_remote: dict[tuple[bytes, int], Connection] = {}
        self._inbound_by_remote_id: dict[int, Connection] = {}
        self._accept_queue: deque[Connection] = deque()
        self._listening: set[int] = set()
        self._pending: OrderedDict[int, list[tuple[float, bytes, bytes | None]]] = OrderedDict()
        self._pending_count = 0
        self._tx: list[Outgoing] = []
        self._changed: set[Connection] = set()
        self.failed_paths: set[bytes] = set()   # peers a retransmission timed out to since the link last heard
        self._syn_tokens = float(limits.syn_burst)
        self._syn_refill = clock.monotonic()
        self._peer_rates: OrderedDict[bytes, _RateCounter] = OrderedDict()
        self._total_rate = _RateCounter(clock.monotonic())
        self._control_blocks: OrderedDict[bytes, tuple[float, SharedControlBlock]] = OrderedDict()
        self._pings: OrderedDict[int, tuple[float, Destination]] = OrderedDict()
        self.pongs: deque[Pong] = deque(maxlen=MAX_PINGS)

    # ------------------------------------------------------------ local side

    @property
    def destination(self) -> Destination:
        return self.keys.destination

    @property
    def connections(self) -> list[Connection]:
        return list(self._by_id.values())

    def listen(self, port: int = 0) -> None:
        """Accept incoming connections to `port` (0: to any port)."""
        self._listening.add(port)

    def stop_listening(self, port: int = 0) -> None:
        self._listening.discard(port)

    def connect(self, remote: Destination, *, remote_port: int = 0, local_port: int = 0,
                config: StreamConfig | None = None) -> Connection:
        if self._active_count() >= self.limits.max_concurrent_streams:
            raise ConnectionError("too many streams")
        conn = Connection(self.keys, remote, receive_stream_id=self._new_stream_id(), outbound=True,
                          clock=self.clock, config=config or self.config, local_port=local_port,
                          remote_port=remote_port, shared=self._shared_block(remote.hash), stats=self.stats)
        self._by_id[conn.receive_stream_id] = conn
        self.stats["connections_opened"] += 1
        self._changed.add(conn)
        return conn

    def accept(self) -> Connection | None:
        """The next incoming connection, if any."""
        while self._accept_queue:
            conn = self._accept_queue.popleft()
            if not conn.is_terminated:
                return conn
        return None

    def ping(self, remote: Destination, payload: bytes = b"") -> int:
        """Send a signed ECHO; a Pong with the returned id lands in `pongs` (streaming-api.md "Ping / Pong")."""
        ping_id = self._new_stream_id()
        self._pings[ping_id] = (self.clock.monotonic(), remote)
        while len(self._pings) > MAX_PINGS:
            self._pings.popitem(last=False)
        packet = Packet(ping_id, 0, flags=pk.ECHO | pk.FROM_INCLUDED, from_destination=self.keys.destination,
                        payload=payload[:MAX_PING_PAYLOAD]).signed(self.keys)
        self._tx.append(Outgoing(remote, packet.to_bytes()))
        return ping_id

    # ------------------------------------------------------------ input

    def receive(self, data: bytes, *, src_port: int = 0, dst_port: int = 0, sender: bytes | None = None) -> None:
        """A streaming payload from the link. `sender` is the sender's hash when the link vouches for it."""
        self.stats["packets_received"] += 1
        if len(data) < pk.HEADER_LEN:
            self.stats["dropped_malformed"] += 1
            return
        send_id = struct.unpack_from(">I", data)[0]
        conn = self._by_id.get(send_id) if send_id else None
        try:
            packet = Packet.parse(data, peer=conn.remote if conn is not None else None)
        except ProtocolError:
            self.stats["dropped_malformed"] += 1
            return
        if packet.is_echo:
            self._receive_echo(packet)
            return
        if conn is not None:
            if packet.is_syn and packet.receive_stream_id and conn.outbound and not conn.send_stream_id:
                self.stats["syn_replies"] += 1
            self._deliver(conn, packet, sender)
            return
        if send_id:
            self.stats["dropped_unknown_stream"] += 1
            return
        if packet.is_syn:
            self._receive_syn(packet, data, src_port, dst_port, sender)
            return
        conn = self._inbound_by_remote_id.get(packet.receive_stream_id)
        if conn is not None:
            self._deliver(conn, packet, sender)
        elif packet.is_reset or not packet.receive_stream_id:
            self.stats["dropped_unknown_stream"] += 1
        else:
            self._hold(packet.receive_stream_id, data, sender)

    def _deliver(self, conn: Connection, packet: Packet, sender: bytes | None) -> None:
        conn.receive_packet(packet, sender=sender)
        self._changed.add(conn)

    def _receive_echo(self, packet: Packet) -> None:
        if packet.send_stream_id:
            if not self.config.answer_pings or packet.from_destination is None:
                self.stats["pings_ignored"] += 1
                return
            if not self._take_syn_token() or not self._verifies(packet):
                self.stats["pings_ignored"] += 1
                return
            pong = Packet(0, packet.send_stream_id, flags=pk.ECHO, payload=packet.payload[:MAX_PING_PAYLOAD])
            self._tx.append(Outgoing(packet.from_destination, pong.to_bytes()))
            self.stats["pongs_sent"] += 1
            return
        entry = self._pings.pop(packet.receive_stream_id, None)
        if entry is None:
            self.stats["dropped_unknown_pong"] += 1
            return
        self.pongs.append(Pong(packet.receive_stream_id, packet.payload, self.clock.monotonic() - entry[0]))

    def _receive_syn(self, packet: Packet, data: bytes, src_port: int, dst_port: int, sender: bytes | None) -> None:
        remote = packet.from_destination
        if remote is None or not packet.receive_stream_id:
            self.stats["dropped_bad_syn"] += 1
            return
        existing = self._inbound_by_remote.get((remote.hash, packet.receive_stream_id))
        if existing is not None:
            self._deliver(existing, packet, sender)  # a retransmitted SYN: the connection re-acknowledges
            return
        if not self._take_syn_token():
            self.stats["dropped_syn_rate"] += 1
            return
        replay_hash = packet.replay_hash
        if replay_hash is not None and replay_hash != self.destination.hash:
            self.stats["dropped_syn_replay"] += 1
            return
        if packet.signature is None:
            if self.config.require_signatures and sender != remote.hash:
                self.stats["dropped_bad_signature"] += 1
                return
        else:
            if not self._verifies(packet):
                self.stats["dropped_bad_signature"] += 1
                return
        now = self.clock.monotonic()
        refusal = self._refusal(remote.hash, dst_port, now)
        if refusal is not None:
            self.stats[f"refused_{refusal}"] += 1
            self._refuse(packet, remote, src_port, dst_port)
            return
        self._count_connection(remote.hash, now)
        conn = Connection(self.keys, remote, receive_stream_id=self._new_stream_id(), outbound=False,
                          clock=self.clock, config=self.config, send_stream_id=packet.receive_stream_id,
                          local_port=dst_port, remote_port=src_port, shared=self._shared_block(remote.hash),
                          stats=self.stats)
        self._by_id[conn.receive_stream_id] = conn
        self._inbound_by_remote[(remote.hash, packet.receive_stream_id)] = conn
        self._inbound_by_remote_id[packet.receive_stream_id] = conn
        self.stats["connections_accepted"] += 1
        self._accept_queue.append(conn)
        self._deliver(conn, packet, sender)
        for _, held, held_sender in self._pending.pop(packet.receive_stream_id, ()):
            self._pending_count -= 1
            try:
                early = Packet.parse(held, peer=remote)
            except ProtocolError:
                self.stats["dropped_malformed"] += 1
                continue
            self._deliver(conn, early, held_sender)

    def _verifies(self, packet: Packet) -> bool:
        try:
            return packet.verify(now=self.clock.time())
        except ProtocolError:
            return False  # a signing type we cannot check

    def _refusal(self, peer: bytes, dst_port: int, now: float) -> str | None:
        limits = self.limits
        if not self._listening or not (0 in self._listening or dst_port in self._listening):
            return "not_listening"
        if limits.access_mode == "allow" and peer not in limits.access_list:
            return "access_list"
        if limits.access_mode == "deny" and peer in limits.access_list:
            return "blacklist"
        if self._active_count() >= limits.max_concurrent_streams:
            return "concurrent_limit"
        if len(self._accept_queue) >= limits.accept_backlog:
            return "backlog_full"
        if self._total_rate.exceeds(now, (limits.max_total_conns_per_minute, limits.max_total_conns_per_hour,
                                          limits.max_total_conns_per_day)):
            return "total_rate"
        rate = self._peer_rates.get(peer)
        if rate is not None and rate.exceeds(now, (limits.max_conns_per_minute, limits.max_conns_per_hour,
                                                   limits.max_conns_per_day)):
            return "peer_rate"
        return None

    def _count_connection(self, peer: bytes, now: float) -> None:
        self._total_rate.add(now)
        rate = self._peer_rates.pop(peer, None) or _RateCounter(now)
        rate.add(now)
        self._peer_rates[peer] = rate
        while len(self._peer_rates) > self.limits.max_tracked_peers:
            self._peer_rates.popitem(last=False)

    def _refuse(self, syn: Packet, remote: Destination, src_port: int, dst_port: int) -> None:
        """streaming-api.md "limitAction": reset, drop, or a canned reply that closes at once."""
        action = self.limits.limit_action
        if action == "drop":
            return
        if action == "reset":
            reply = Packet(syn.receive_stream_id, 0, 0, 0, flags=pk.RESET).signed(self.keys)
        else:
            body = HTTP_429 if action == "http" else action.replace("\\r", "\r").replace("\\n", "\n").encode()
            flags = pk.SYNCHRONIZE | pk.CLOSE | pk.FROM_INCLUDED | pk.MAX_PACKET_SIZE_INCLUDED
            reply = Packet(syn.receive_stream_id, self._new_stream_id(), 0, 0, flags=flags,
                           from_destination=self.destination, max_packet_size=self.config.max_message_size,
                           payload=body[:self.config.max_message_size]).signed(self.keys)
        self._tx.append(Outgoing(remote, reply.to_bytes(), src_port=dst_port, dst_port=src_port))

    def _hold(self, remote_id: int, data: bytes, sender: bytes | None) -> None:
        """streaming-api.md "0-RTT Issues": queue, not drop, packets that beat their SYN."""
        self._expire_pending(self.clock.monotonic())
        if self._pending_count >= self.limits.max_pending_packets:
            self.stats["dropped_pending_full"] += 1
            return
        self._pending.setdefault(remote_id, []).append((self.clock.monotonic(), data, sender))
        self._pending_count += 1
        self.stats["held_before_syn"] += 1

    def _expire_pending(self, now: float) -> None:
        while self._pending:
            remote_id, entries = next(iter(self._pending.items()))
            if now - entries[0][0] < self.limits.pending_timeout:
                break
            del self._pending[remote_id]
            self._pending_count -= len(entries)
            self.stats["dropped_pending_expired"] += len(entries)

    def _take_syn_token(self) -> bool:
        now = self.clock.monotonic()
        self._syn_tokens = min(float(self.limits.syn_burst),
                               self._syn_tokens + (now - self._syn_refill) * self.limits.syn_rate)
        self._syn_refill = now
        if self._syn_tokens < 1:
            return False
        self._syn_tokens -= 1
        return True

    # ------------------------------------------------------------ timers and output

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (c.next_deadline() for c in self._by_id.values()) if d is not None]
        if self._pending:
            deadlines.append(next(iter(self._pending.values()))[0][0] + self.limits.pending_timeout)
        return min(deadlines) if deadlines else None

    def handle_timers(self) -> None:
        now = self.clock.monotonic()
        for conn in list(self._by_id.values()):
            deadline = conn.next_deadline()
            if deadline is not None and deadline <= now:
                timeouts = conn.timeouts
                conn.handle_timer()
                self._changed.add(conn)
                if conn.timeouts != timeouts:
                    self.failed_paths.add(conn.remote.hash)
        self._expire_pending(now)

    def datagrams_to_send(self) -> list[Outgoing]:
        out, self._tx = self._tx, []
        for conn in list(self._by_id.values()):
            for data in conn.datagrams_to_send():
                out.append(Outgoing(conn.remote, data, src_port=conn.local_port, dst_port=conn.remote_port))
            if conn.is_finished:
                self._forget(conn)
        return out

    def take_changed(self) -> set[Connection]:
        changed, self._changed = self._changed, set()
        return changed

    def _forget(self, conn: Connection) -> None:
        self._by_id.pop(conn.receive_stream_id, None)
        key = (conn.remote.hash, conn.send_stream_id)
        if self._inbound_by_remote.get(key) is conn:
            del self._inbound_by_remote[key]
        if self._inbound_by_remote_id.get(conn.send_stream_id) is conn:
            del self._inbound_by_remote_id[conn.send_stream_id]
        self._remember_block(conn)
        self._changed.add(conn)
        self.stats["connections_finished"] += 1

    def _active_count(self) -> int:
        return len(self._by_id)

    def _new_stream_id(self) -> int:
        while True:
            stream_id = int.from_bytes(self.rng(4), "big")
            if stream_id and stream_id not in self._by_id and stream_id not in self._pings:
                return stream_id

    # ------------------------------------------------------------ control block sharing (RFC 2140)

    def _shared_block(self, peer: bytes) -> SharedControlBlock | None:
        entry = self._control_blocks.get(peer)
        if entry is None or self.clock.monotonic() - entry[0] > CONTROL_BLOCK_TTL:
            return None
        return entry[1]

    def _remember_block(self, conn: Connection) -> None:
        block = conn.control_block()
        if block is None or conn.state.value == "reset":
            return
        old = self._shared_block(conn.remote.hash)
        if old is not None:
            d = CONTROL_BLOCK_DAMPENING
            block = SharedControlBlock(d * old.srtt + (1 - d) * block.srtt, d * old.rttvar + (1 - d) * block.rttvar,
                                       d * old.window + (1 - d) * block.window)
        self._control_blocks.pop(conn.remote.hash, None)
        self._control_blocks[conn.remote.hash] = (self.clock.monotonic(), block)
        while len(self._control_blocks) > MAX_CONTROL_BLOCKS:
            self._control_blocks.popitem(last=False)
