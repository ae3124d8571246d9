"""One streaming connection as a sans-I/O state machine (streaming-api.md "Implementation Details").

Packets and application bytes go in, serialized packets come out of `datagrams_to_send()`;
timers run on the injected clock: call `handle_timer()` at `next_deadline()`.
"""
from __future__ import annotations

import enum
import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.clock import Clock
from core.data.errors import ProtocolError

from . import packet as pk
from .config import MIN_MESSAGE_SIZE, PROFILE_INTERACTIVE, StreamConfig
from .packet import Packet, hash_to_nacks

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from core.data.identity import Destination
    from core.data.privatekeys import PrivateKeys

RTT_ALPHA = 0.125   # RFC 6298, streaming-api.md "Other Parameters"
RTT_BETA = 0.25
RTO_K = 4
REORDER_FACTOR = 1.25
UNCHOKES_TO_SEND = 8
"""The unchoking endpoint sends several packets with an unchoke (streaming-api.md "Choking"): one alone may be
lost, or overtaken by the older choke on a faster tunnel."""


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class SharedControlBlock:
    """RTT, deviation and window carried between connections to one peer (RFC 2140)."""

    srtt: float
    rttvar: float
    window: float


class _Sent:
    __slots__ = ("seq", "flags", "payload", "first_sent", "last_sent", "transmissions", "nacks", "fast_resent")

    def __init__(self, seq: int, flags: int, payload: bytes, now: float):
        self.seq = seq
        self.flags = flags
        self.payload = payload
        self.first_sent = now
        self.last_sent = now
        self.transmissions = 1
        self.nacks = 0
        self.fast_resent = False


class Connection:
    """A stream between our destination and one remote destination."""

    def __init__(self, keys: PrivateKeys, remote: Destination, *, receive_stream_id: int, outbound: bool,
                 clock: Clock, config: StreamConfig = StreamConfig(), send_stream_id: int = 0,
                 local_port: int = 0, remote_port: int = 0, shared: SharedControlBlock | None = None,
                 stats: Counter | None = None):
        self.keys = keys
        self.remote = remote
        self.receive_stream_id = receive_stream_id
        self.send_stream_id = send_stream_id
        self.outbound = outbound
        self.clock = clock
        self.config = config
        self.local_port = local_port
        self.remote_port = remote_port
        self.stats = stats if stats is not None else Counter()
        now = clock.monotonic()
        self.created = now
        self.mtu = config.max_message_size
        self.error: str | None = None
        # send side
        self._send_buffer = bytearray()
        self._next_seq = 0
        self._unacked: dict[int, _Sent] = {}
        self._syn_sent = False
        self._syn_acked = False
        self._fin_queued = False
        self._fin_seq: int | None = None
        self._fin_acked = False
        self._push = False
        self.cwnd = float(config.initial_window_size)
        self.ssthresh = float(config.max_window_size)
        self._recovery_seq = -1
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = config.initial_rto
        if shared is not None:
            self.srtt, self.rttvar = shared.srtt, shared.rttvar
            self.cwnd = min(max(shared.window, config.min_window_size), config.max_window_size)
            self._update_rto()
        self._rto_deadline: float | None = None
        self.timeouts = 0   # retransmission timeouts: the path to the peer may be broken
        self._lost_before: float | None = None   # after a timeout: what was last sent before this is presumed lost
        self._frto = 0                # F-RTO (RFC 5682) after a timeout: 1 awaits the first ack, 2 the second
        self._extra_new = 0           # new packets F-RTO may send beyond the window
        self._undo: tuple[float, float] | None = None   # (cwnd, ssthresh) before the timeout
        self._peer_choked = False
        self._delay_ack_through = -1   # ackThrough of the newest packet whose choke state we took
        # receive side
        self._recv_next = 0
        self._highest_received = -1
        self._received_any = False
        self._ooo: dict[int, Packet] = {}
        self._ooo_bytes = 0
        self._recv_chunks: deque[bytes] = deque()
        self._recv_bytes = 0
        self._recv_offset = 0
        self._remote_fin = False
        self._syn_received = False
        self._reading_closed = False
        self._ack_pending = 0
        self._ack_now = False
        self._ack_deadline: float | None = None
        self._choking = False
        self._unchokes_left = 0
        self._last_read: float | None = None
        # lifecycle
        self._state_terminated: State | None = None
        self._linger_deadline: float | None = None
        self._close_deadline: float | None = None
        self._syn_deadline: float | None = None
        if outbound:
            self._syn_deadline = now + config.connect_delay if config.connect_delay > 0 else now
        else:
            self._syn_deadline = now + config.syn_reply_delay
        self._last_activity = now
        self._last_received = now
        self._inactivity_sent = False
        self._tx: list[bytes] = []
        self.packets_sent = 0
        self.packets_resent = 0

    # ------------------------------------------------------------ status

    @property
    def state(self) -> State:
        if self._state_terminated is not None:
            return self._state_terminated
        if not self.is_established:
            return State.CONNECTING
        if self._fin_queued or self._remote_fin:
            return State.CLOSING
        return State.OPEN

    @property
    def is_established(self) -> bool:
        """Both SYNs seen: ours acknowledged or theirs received."""
        return self._syn_received and bool(self.send_stream_id)

    @property
    def is_terminated(self) -> bool:
        return self._state_terminated is not None

    @property
    def is_finished(self) -> bool:
        """Nothing left to do: the manager may forget this connection."""
        return self._state_terminated is not None and self._linger_deadline is None

    @property
    def at_eof(self) -> bool:
        return self._recv_bytes == 0 and (self._remote_fin or self.is_terminated)

    @property
    def readable(self) -> int:
        return self._recv_bytes

    @property
    def send_buffered(self) -> int:
        return len(self._send_buffer)

    @property
    def send_buffer_full(self) -> bool:
        return len(self._send_buffer) >= self.config.send_buffer_size

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    @property
    def all_sent_acked(self) -> bool:
        return not self._send_buffer and not self._unacked

    @property
    def peer_choked(self) -> bool:
        return self._peer_choked

    def control_block(self) -> SharedControlBlock | None:
        if self.srtt is None:
            return None
        return SharedControlBlock(self.srtt, self.rttvar, self.cwnd)

    # ------------------------------------------------------------ application side

    def send(self, data: bytes) -> None:
        """Queue bytes; like an asyncio transport this never refuses, send_buffer_full says when to wait."""
        if self._fin_queued or self.is_terminated:
            raise ConnectionError("connection is closed for writing")
        self._send_buffer += data
        self._last_activity = self.clock.monotonic()

    def flush(self) -> None:
        """Send what is buffered now rather than waiting to bundle it with a held SYN."""
        self._push = True

    def read(self, max_bytes: int = -1) -> bytes:
        """In-order bytes received so far (b"" when none); may schedule an unchoke."""
        if not self._recv_bytes:
            return b""
        if max_bytes < 0 or max_bytes >= self._recv_bytes:
            max_bytes = self._recv_bytes
        parts = []
        need = max_bytes
        while need:
            chunk = self._recv_chunks[0]
            available = len(chunk) - self._recv_offset
            if available <= need:
                parts.append(chunk[self._recv_offset:] if self._recv_offset else chunk)
                self._recv_chunks.popleft()
                self._recv_offset = 0
                need -= available
            else:
                parts.append(chunk[self._recv_offset:self._recv_offset + need])
                self._recv_offset += need
                need = 0
        self._recv_bytes -= max_bytes
        self._last_read = self.clock.monotonic()
        self._check_unchoke()
        return b"".join(parts)

    def close(self) -> None:
        """No more data from us: a CLOSE follows the buffered data (possibly on its last packet)."""
        if not self._fin_queued and not self.is_terminated:
            self._fin_queued = True
            self._push = True

    def close_reading(self) -> None:
        """The application will not read again: received data is acknowledged and dropped."""
        self._reading_closed = True
        self._recv_chunks.clear()
        self._recv_bytes = 0
        self._recv_offset = 0
        self._check_unchoke()

    def reset(self, reason: str = "reset by application") -> None:
        """Abort: send a signed RESET and drop all state."""
        if self.is_terminated:
            return
        if self._syn_sent or not self.outbound:
            self._emit(self._build(self._next_seq, pk.RESET, b"", sign=True, ack=True))
        self._terminate(State.RESET, reason, linger=False)

    # ------------------------------------------------------------ input

    def receive_packet(self, packet: Packet, *, sender: bytes | None = None) -> None:
        """A packet addressed to this connection (the manager routed it). `sender` is the remote hash
        when the lower layer vouches for it."""
        if self._state_terminated is State.RESET:
            return
        now = self.clock.monotonic()
        vouched = sender is not None and sender == self.remote.hash
        if packet.flags & (pk.SYNCHRONIZE | pk.CLOSE | pk.RESET) and not self._authentic(packet, vouched):
            self.stats["dropped_bad_signature"] += 1
            return
        if packet.from_destination is not None and packet.from_destination.hash != self.remote.hash:
            self.stats["dropped_wrong_from"] += 1
            return
        if packet.is_reset:
            self.stats["resets_received"] += 1
            self._terminate(State.RESET, "reset by peer", linger=False)
            return
        self._last_received = self._last_activity = now
        self._inactivity_sent = False
        if not self.send_stream_id and packet.receive_stream_id:
            self.send_stream_id = packet.receive_stream_id
        if packet.is_syn and packet.max_packet_size is not None:
            self.mtu = max(MIN_MESSAGE_SIZE, min(self.config.max_message_size, packet.max_packet_size))
        if not packet.flags & pk.NO_ACK and self._syn_sent:
            self._process_ack(packet, now)
        if packet.delay_requested is not None:
            ack_through = -1 if packet.flags & pk.NO_ACK else packet.ack_through
            self._process_delay(packet.delay_requested, now, answer=not packet.is_plain_ack, ack_through=ack_through)
        if packet.is_plain_ack:
            return
        if self._state_terminated is not None:
            # lingering: their CLOSE was retransmitted, so our ack was lost
            if packet.sequence_num < self._recv_next:
                self._ack_now = True
            return
        self._receive_sequenced(packet, now)

    def _authentic(self, packet: Packet, vouched: bool) -> bool:
        if packet.signature is None:
            return vouched or not self.config.require_signatures
        try:
            return packet.verify(self.remote, now=self.clock.time())
        except ProtocolError:
            return False  # a signing type we cannot check

    def _process_delay(self, delay: int, now: float, *, answer: bool, ack_through: int = -1) -> None:
        # a packet that acknowledges less than the one whose choke state we took was sent before it: its state is old
        # (without an ack, NO_ACK, there is no order to go by)
        current = ack_through < 0 or ack_through >= self._delay_ack_through
        if current:
            self._delay_ack_through = max(ack_through, self._delay_ack_through)
        if delay > pk.MAX_DELAY:
            if current and not self._peer_choked:
                self.stats["choked_by_peer"] += 1
                # the far end's buffer held less than we sent: halve the window as our estimate of it
                # (streaming-api.md "Transmit/Receive Windows and Choking", for windows above 128)
                self._congestion(self._next_seq - 1)
                self._peer_choked = True
            return
        if current and self._peer_choked:
            self._peer_choked = False
            oldest = next(iter(self._unacked.values()), None)
            # resent only when the receiver has seen later packets (it dropped this one while full)
            if oldest is not None and (ack_through < 0 or oldest.seq <= ack_through):
                self._retransmit(oldest, now)
        if not answer:
            return  # plain ACKs are never acknowledged
        if delay == 0:
            self._ack_now = True
        elif self._ack_deadline is None:
            self._ack_deadline = now + min(delay / 1000, self.config.max_requested_delay)

    def _receive_sequenced(self, packet: Packet, now: float) -> None:
        seq = packet.sequence_num
        if seq < self._recv_next:
            self.stats["duplicates_received"] += 1
            self._ack_now = True
            return
        if seq >= self._recv_next + self.config.max_receive_ahead:
            self.stats["dropped_beyond_window"] += 1
            return
        if seq in self._ooo:
            self.stats["duplicates_received"] += 1
            return
        size = len(packet.payload)
        limit = self.config.inbound_buffer_size
        if seq != self._recv_next:
            limit -= self.mtu  # room kept for the packet that unblocks delivery; acked data is never dropped
        if self._recv_bytes + self._ooo_bytes + size > limit:
            self.stats["dropped_buffer_full"] += 1
            if self._recv_bytes > limit // 2:
                self._choke()
            return
        self._received_any = True
        if seq > self._highest_received:
            self._highest_received = seq
        if seq != self._recv_next:
            self._ooo[seq] = packet
            self._ooo_bytes += size
            self._ack_now = True  # NACKs at once so the sender can fast-retransmit
            return
        self._deliver(packet)
        while self._recv_next in self._ooo:
            queued = self._ooo.pop(self._recv_next)
            self._ooo_bytes -= len(queued.payload)
            self._deliver(queued)
        if self._recv_bytes > self.config.inbound_buffer_size // 2 and not self._reader_keeps_up(now):
            self._choke()  # only unread data: out-of-order data waits on the network, not the reader

    def _deliver(self, packet: Packet) -> None:
        self._recv_next = packet.sequence_num + 1
        if packet.payload and not self._reading_closed and not self._remote_fin:
            self._recv_chunks.append(packet.payload)
            self._recv_bytes += len(packet.payload)
        if packet.is_syn:
            self._syn_received = True
            self._ack_now = True
        if packet.is_close and not self._remote_fin:
            self._remote_fin = True
            self._ack_now = True
            self._check_finished()
        self._ack_pending += 1
        if self._ack_pending >= self.config.ack_frequency or self.config.profile == PROFILE_INTERACTIVE:
            self._ack_now = True
        elif self._ack_deadline is None:
            self._ack_deadline = self.clock.monotonic() + self._ack_delay()

    def _ack_delay(self) -> float:
        if self.srtt is None:
            return self.config.initial_ack_delay
        return max(0.001, min(self.config.initial_ack_delay, self.srtt / 4))

    def _reader_keeps_up(self, now: float) -> bool:
        """The application read within the last round trip: a burst that arrived in one turn of the loop is
        read in the next, so only a full buffer chokes (as Java does); an idle reader is choked at half."""
        return self._last_read is not None and now - self._last_read <= max(self.srtt or 0.0, self.config.min_rto)

    def _choke(self) -> None:
        if not self._choking:
            self._choking = True
            self.stats["chokes_sent"] += 1
            self._ack_now = True

    def _check_unchoke(self) -> None:
        if self._choking and self._recv_bytes <= self.config.inbound_buffer_size // 4:
            self._choking = False
            self._unchokes_left = UNCHOKES_TO_SEND
            self._ack_now = True

    def _process_ack(self, packet: Packet, now: float) -> None:
        ack_through = packet.ack_through
        if ack_through >= self._next_seq:
            self.stats["dropped_bogus_ack"] += 1
            return
        nacks = set(packet.nacks) if packet.nacks and not packet.is_syn else ()
        newly_acked = 0
        sample = None
        lost_before = self._lost_before
        originals = nacked_old = False   # acked first transmissions / NACKed packets, sent before the timeout
        for seq in [s for s in self._unacked if s <= ack_through]:
            sent = self._unacked[seq]
            if seq in nacks:
                sent.nacks += 1
                if lost_before is not None and sent.first_sent < lost_before:
                    nacked_old = True
                continue
            del self._unacked[seq]
            newly_acked += 1
            if sent.transmissions == 1:
                sample = now - sent.first_sent  # Karn: retransmitted packets give no sample
                if lost_before is not None and sent.first_sent < lost_before:
                    originals = True
            if sent.flags & pk.SYNCHRONIZE:
                self._syn_acked = True
            if seq == self._fin_seq:
                self._fin_acked = True
        if sample is not None:
            self._sample_rtt(sample)
        if newly_acked:
            self._grow_window(newly_acked)
            self._rto_deadline = now + self.rto if self._unacked else None
            if self._lost_before is not None:
                self._after_timeout_ack(originals, nacked_old, now)
        for seq in nacks:
            sent = self._unacked.get(seq)
            if sent is None or sent.nacks < self.config.fast_retransmit_nacks or self._peer_choked:
                continue
            # a NACK soon after sending is more likely reordering than loss (as RACK, RFC 8985)
            if now - sent.last_sent >= (self.srtt or 0.0) * REORDER_FACTOR and (
                    not sent.fast_resent or now - sent.last_sent > (self.srtt or self.rto) * 1.5):
                sent.fast_resent = True
                self.stats["fast_retransmits"] += 1
                self._congestion(seq)
                self._retransmit(sent, now)
        self._check_finished()

    def _after_timeout_ack(self, originals: bool, nacked_old: bool, now: float) -> None:
        """F-RTO (RFC 5682): an ack after a timeout that acknowledges first transmissions may mean the path was
        only slow (its queue grew faster than the RTO in slow start). Two such acks in a row, the second after
        new data went out, and nothing sent before the timeout NACKed: the timeout was spurious, the window is
        restored and nothing more is resent. Otherwise what was sent before the timeout goes again."""
        if originals and not nacked_old and self._frto == 1 and self._send_buffer:
            self._frto = 2
            self._extra_new = 2   # its ack tells a slow path (more first transmissions) from a lost window (NACKs)
            return
        if originals and not nacked_old and self._frto == 2:
            self.stats["spurious_timeouts"] += 1
            self._frto = self._extra_new = 0
            self._lost_before = None
            if self._undo is not None:
                self.cwnd, self.ssthresh = max(self.cwnd, self._undo[0]), self._undo[1]
                self._undo = None
            if self.srtt is not None:
                self._update_rto()   # the timeout's backoff goes too
            return
        self._frto = self._extra_new = 0
        self._resend_lost(now)

    def _resend_lost(self, now: float) -> None:
        """After a timeout, each ack that moves lets the next packets sent before it go again, as many as the
        window holds (RFC 5681 "slow start" after a retransmission timeout): a path that broke for a while lost
        all of the window, and waiting for each packet's own timeout would send one per RTO."""
        lost = [sent for sent in self._unacked.values() if sent.last_sent < self._lost_before]
        if not lost:
            self._lost_before = None
            return
        if self._peer_choked:
            return
        in_flight = len(self._unacked) - len(lost)
        for sent in lost[:max(0, int(self.cwnd) - in_flight)]:
            self._retransmit(sent, now)

    def _sample_rtt(self, rtt: float) -> None:
        rtt = min(max(rtt, 0.0), self.config.max_rtt)
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = (1 - RTT_BETA) * self.rttvar + RTT_BETA * abs(self.srtt - rtt)
            self.srtt = (1 - RTT_ALPHA) * self.srtt + RTT_ALPHA * rtt
        self._update_rto()

    def _update_rto(self) -> None:
        assert self.srtt is not None
        self.rto = min(max(self.srtt + max(0.001, RTO_K * self.rttvar), self.config.min_rto), self.config.max_rto)

    def _grow_window(self, acked: int) -> None:
        c = self.config
        for _ in range(acked):
            if self.cwnd < self.ssthresh:
                self.cwnd += 1 / c.slow_start_growth_rate_factor
            else:
                self.cwnd += 1 / (self.cwnd * c.congestion_avoidance_growth_rate_factor)
        self.cwnd = min(self.cwnd, c.max_window_size)

    def _congestion(self, seq: int) -> None:
        """Halve the window once per window of data (streaming-api.md "Congestion Control")."""
        if seq <= self._recovery_seq:
            return
        self._recovery_seq = self._next_seq - 1
        self.ssthresh = max(self.cwnd / 2, 2.0)
        self.cwnd = max(self.ssthresh, float(self.config.min_window_size))
        self.stats["congestion_events"] += 1

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        if self.is_terminated:
            return self._linger_deadline
        deadlines = [d for d in (self._ack_deadline, self._rto_deadline, self._close_deadline) if d is not None]
        if not self._syn_sent and self._syn_deadline is not None:
            deadlines.append(self._syn_deadline)
        if not self.is_established and self.outbound:
            deadlines.append(self.created + self.config.connect_timeout)
        if self.config.inactivity_action and not self._inactivity_sent:
            deadlines.append(max(self._last_activity, self._last_received) + self.config.inactivity_timeout)
        if (self._ack_now and self._syn_sent) or (self._push and self._has_work()):
            deadlines.append(self.clock.monotonic())
        return min(deadlines) if deadlines else None

    def _has_work(self) -> bool:
        return bool(self._send_buffer) or (self._fin_queued and self._fin_seq is None) or not self._syn_sent

    def handle_timer(self) -> None:
        now = self.clock.monotonic()
        if self.is_terminated:
            if self._linger_deadline is not None and now >= self._linger_deadline:
                self._linger_deadline = None
            return
        if not self.is_established and self.outbound and now >= self.created + self.config.connect_timeout:
            self.stats["connect_timeouts"] += 1
            self.reset("connect timeout")
            return
        if self._close_deadline is not None and now >= self._close_deadline:
            self._terminate(State.CLOSED, "peer never closed", linger=False)
            return
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self._ack_now = True
        if self._rto_deadline is not None and now >= self._rto_deadline:
            self._on_rto(now)
            if self.is_terminated:
                return
        idle_since = max(self._last_activity, self._last_received)
        if self.config.inactivity_action and not self._inactivity_sent \
                and now >= idle_since + self.config.inactivity_timeout:
            self._inactivity_sent = True
            if self.config.inactivity_action == 1:
                self.close()
            elif self._syn_sent:
                self._ack_now = True  # a duplicate ack as keepalive

    def _on_rto(self, now: float) -> None:
        oldest = next(iter(self._unacked.values()), None)
        if oldest is None:
            self._rto_deadline = None
            return
        if oldest.transmissions > self.config.max_resends and not self._peer_choked:
            self.stats["resend_failures"] += 1
            log.info("stream to %s reset: packet %d sent %d times without an ack (%.1f s since its first; rto %.2f s, "
                     "srtt %.3f s, %d timeouts, %d packets resent, %d in flight)", self.remote.hash.hex()[:8],
                     oldest.seq, oldest.transmissions, now - oldest.first_sent, self.rto, self.srtt or 0.0,
                     self.timeouts, self.packets_resent, len(self._unacked))
            self.reset("too many retransmissions")
            return
        self.stats["timeouts"] += 1
        self.timeouts += 1
        self._undo = (self.cwnd, self.ssthresh)
        self._frto = 0 if self._peer_choked else 1
        self._extra_new = 0
        self._congestion(oldest.seq)
        cap = self.config.max_rto
        if self.config.max_timeout_backoff:
            estimate = self.config.initial_rto if self.srtt is None else self.srtt + RTO_K * self.rttvar
            cap = min(cap, max(self.config.max_timeout_backoff, estimate))
        self.rto = min(self.rto * 2, cap)
        if self._peer_choked:
            oldest.transmissions = min(oldest.transmissions, self.config.max_resends)  # a probe, not a failure
        self._retransmit(oldest, now)
        self._lost_before = now

    # ------------------------------------------------------------ output

    def datagrams_to_send(self) -> list[bytes]:
        """Serialized packets to send to `remote`, in order."""
        if not self.is_terminated:
            self._fill(self.clock.monotonic())
        elif self._ack_now and self._linger_deadline is not None:
            self._ack_now = False
            self._emit(self._build(0, 0, b"", sign=False, ack=True))
        out, self._tx = self._tx, []
        return out

    def _fill(self, now: float) -> None:
        sent_any = False
        if not self._syn_sent:
            if not self._syn_due(now):
                return  # an incoming connection's pending ack rides on the SYN reply
            self._send_new(now, pk.SYNCHRONIZE)
            sent_any = True
        while self._can_send_new():
            self._send_new(now, 0)
            sent_any = True
        if self._peer_choked and not self._unacked and self._send_buffer and self._rto_deadline is None:
            self._rto_deadline = now + self.rto  # persist timer: the RTO sends a probe
            self._send_new(now, 0)
            sent_any = True
        if self._ack_now and not sent_any and self._syn_sent:
            self._emit(self._build(0, 0, b"", sign=False, ack=True))
        if self._ack_now or sent_any:
            self._ack_now = False
            self._ack_pending = 0
            self._ack_deadline = None
        self._push = False

    def _syn_due(self, now: float) -> bool:
        if self._push or self._fin_queued or len(self._send_buffer) >= self.mtu:
            return True
        return self._syn_deadline is not None and now >= self._syn_deadline

    def _can_send_new(self) -> bool:
        if not self._send_buffer and not (self._fin_queued and self._fin_seq is None):
            return False
        if self._fin_seq is not None or self._peer_choked:
            return False
        if not self.outbound and not self._syn_sent:
            return False
        if self._unacked and self._next_seq - next(iter(self._unacked)) >= self.config.max_window_size:
            return False  # selectively acked packets still fill the receiver's buffer
        return len(self._unacked) < max(int(self.cwnd), self.config.min_window_size) + self._extra_new

    def _send_new(self, now: float, flags: int) -> None:
        if self._extra_new and len(self._unacked) >= max(int(self.cwnd), self.config.min_window_size):
            self._extra_new -= 1
        payload = bytes(self._send_buffer[:self.mtu])
        del self._send_buffer[:len(payload)]
        if self._fin_queued and not self._send_buffer:
            flags |= pk.CLOSE
        seq = self._next_seq
        self._next_seq += 1
        sent = _Sent(seq, flags, payload, now)
        self._unacked[seq] = sent
        if flags & pk.SYNCHRONIZE:
            self._syn_sent = True
        if flags & pk.CLOSE:
            self._fin_seq = seq
        if self._rto_deadline is None:
            self._rto_deadline = now + self.rto
        self._last_activity = now
        self._emit(self._packet_for(sent))

    def _retransmit(self, sent: _Sent, now: float) -> None:
        sent.transmissions += 1
        sent.last_sent = now
        sent.nacks = 0
        self.packets_resent += 1
        self._rto_deadline = now + self.rto
        self._emit(self._packet_for(sent))

    def _packet_for(self, sent: _Sent) -> Packet:
        flags = sent.flags
        if flags & pk.SYNCHRONIZE:
            return self._build_syn(sent)
        return self._build(sent.seq, flags, sent.payload, sign=bool(flags & pk.CLOSE), ack=True)

    def _ack_fields(self) -> tuple[int, tuple[int, ...], int]:
        """ackThrough, NACKs, and NO_ACK when nothing was received yet."""
        if not self._received_any:
            return 0, (), pk.NO_ACK
        ack_through = self._highest_received
        missing = [s for s in range(self._recv_next, ack_through) if s not in self._ooo] if self._ooo else []
        if len(missing) > pk.MAX_NACKS:
            ack_through = missing[pk.MAX_NACKS] - 1
            missing = missing[:pk.MAX_NACKS]
        return ack_through, tuple(missing), 0

    def _delay_option(self) -> int | None:
        if self._choking:
            return pk.CHOKE_DELAY
        if self._unchokes_left:
            self._unchokes_left -= 1
            return 0
        return None

    def _resend_delay(self) -> int:
        return min(255, int(self.rto))

    def _build(self, seq: int, flags: int, payload: bytes, *, sign: bool, ack: bool) -> Packet:
        ack_through, nacks, no_ack = self._ack_fields() if ack else (0, (), pk.NO_ACK)
        delay = self._delay_option()
        if delay is not None:
            flags |= pk.DELAY_REQUESTED
        packet = Packet(self.send_stream_id, self.receive_stream_id, seq, ack_through, nacks, self._resend_delay(),
                        flags | no_ack, delay_requested=delay, payload=payload)
        return packet.signed(self.keys) if sign else packet

    def _build_syn(self, sent: _Sent) -> Packet:
        flags = sent.flags | pk.FROM_INCLUDED | pk.MAX_PACKET_SIZE_INCLUDED
        if self.config.profile == PROFILE_INTERACTIVE:
            flags |= pk.PROFILE_INTERACTIVE
        if self.outbound:
            # streaming.rst "Replay prevention": the recipient's hash in the NACKs field
            ack_through, nacks = 0, hash_to_nacks(self.remote.hash)
            flags |= pk.NO_ACK
        else:
            # the SYN reply acknowledges cumulatively and carries no NACKs (same section)
            ack_through, nacks = max(self._recv_next - 1, 0), ()
        delay = self._delay_option()
        if delay is not None:
            flags |= pk.DELAY_REQUESTED
        packet = Packet(self.send_stream_id, self.receive_stream_id, sent.seq, ack_through, nacks,
                        self._resend_delay(), flags, delay_requested=delay,
                        from_destination=self.keys.destination, max_packet_size=self.config.max_message_size,
                        payload=sent.payload)
        return packet.signed(self.keys)

    def _emit(self, packet: Packet) -> None:
        self.packets_sent += 1
        self._tx.append(packet.to_bytes())

    # ------------------------------------------------------------ ending

    def _check_finished(self) -> None:
        if self.is_terminated:
            return
        local_done = self._fin_acked and not self._unacked  # a NACKed packet before our CLOSE still counts
        if local_done and self._remote_fin:
            linger = min(max(2 * self.rto, 1.0), self.config.linger)
            self._terminate(State.CLOSED, None, linger=True, linger_time=linger)
        elif local_done and self._close_deadline is None:
            self._close_deadline = self.clock.monotonic() + self.config.close_timeout

    def _terminate(self, state: State, reason: str | None, *, linger: bool, linger_time: float = 0.0) -> None:
        self._state_terminated = state
        self.error = reason
        self._unacked.clear()
        self._send_buffer.clear()
        self._ooo.clear()
        self._ooo_bytes = 0
        self._rto_deadline = self._ack_deadline = self._close_deadline = None
        if state is State.RESET:
            self._recv_chunks.clear()
            self._recv_bytes = 0
        if linger:
            self._linger_deadline = self.clock.monotonic() + linger_time
            if self._ack_now:
                self._emit(self._build(0, 0, b"", sign=False, ack=True))
                self._ack_now = False
        else:
            self._linger_deadline = None

    def __repr__(self) -> str:
        return (f"Connection(recv={self.receive_stream_id} send={self.send_stream_id} {self.state.value} "
                f"cwnd={self.cwnd:.1f} rto={self.rto:.2f} inflight={len(self._unacked)})")
