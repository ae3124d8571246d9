"""Sans-I/O SSU2 data phase (ssu2.rst "Data Message", "I2NP Message Fragmentation", "Congestion Control").

`receive(packet)` returns the delivered blocks (whole I2NP messages as I2NPBlock, reassembled from
fragments); `poll()` returns the datagrams due now (new data, ACKs, retransmissions); `next_deadline()`
says when to call poll() again. All times come from the injected clock.
"""
from __future__ import annotations

import os
from collections import OrderedDict, deque
from dataclasses import dataclass

from core.clock import Clock, Rng
from core.crypto.chacha import ChaChaPoly, ChaChaStream, TAG_LEN, noise_nonce
from core.data.errors import HandshakeError, ParseError, ProtocolError
from core.i2np.header import I2NPMessage

from . import header as h
from .blocks import (NOT_ACK_ELICITING, PATH_CHALLENGE, PATH_RESPONSE, RELAY_TAG_REQUEST, AckBlock, Block,
                     CongestionBlock, DateTimeBlock, FirstFragmentBlock, FollowOnFragmentBlock, I2NPBlock, OpaqueBlock,
                     PaddingBlock, TerminationBlock, TerminationReason, parse_blocks)
from .handshake import HandshakeResult, max_payload


@dataclass(frozen=True, slots=True)
class SessionSettings:
    ack_delay: float = 0.01             # ssu2.rst "ACK Frequency": before an RTT is known
    max_ack_delay: float = 0.15         # ssu2.rst "ACK Frequency": at most RTT/6, 150 ms
    ack_every: int = 8                  # ack-eliciting packets that make an ACK due at once ("at least two")
    initial_rto: float = 1.0
    min_rto: float = 0.1
    max_rto: float = 3.0
    max_retransmits: int = 5            # then the fragments are given up (I2NP has its own recovery)
    initial_window: int = 16            # packets in flight (congestion window, RFC 5681 slow start then +1 per RTT)
    min_window: int = 4
    max_window: int = 256
    max_queued: int = 1024              # blocks waiting to be sent
    max_reassembly: int = 32            # partially received messages (each up to 127 fragments)
    reassembly_timeout: float = 10.0
    ack_ranges: int = 32
    ack_span: int = 1024                # packet numbers below the highest received that an ACK still covers
    reorder_threshold: int = 3          # packets acknowledged above an unacknowledged one before it counts as lost
    received_ranges: int = 64           # runs of received packet numbers kept for ACKs and duplicate detection
    delivered_ids: int = 4096           # I2NP message ids remembered against duplicates
    handshake_resend: tuple[float, ...] = (1.25, 2.5, 5.0)


@dataclass(slots=True)
class _Sent:
    time: float
    blocks: list
    eliciting: bool
    retransmits: int


@dataclass(slots=True)
class _Partial:
    started: float
    first: FirstFragmentBlock | None = None
    parts: dict | None = None
    last: int | None = None


class ReceivedPackets:
    """Received packet numbers as runs [high, low], highest first: duplicate checks and ACK blocks cost per run,
    not per packet. At most `max_runs` runs are kept; the lowest are forgotten."""

    __slots__ = ("runs", "max_runs")

    def __init__(self, max_runs: int):
        self.runs: list[list[int]] = []
        self.max_runs = max_runs

    def __bool__(self) -> bool:
        return bool(self.runs)

    def __contains__(self, pn: int) -> bool:
        for high, low in self.runs:
            if pn > high:
                return False
            if pn >= low:
                return True
        return False

    @property
    def highest(self) -> int:
        return self.runs[0][0] if self.runs else -1

    def add(self, pn: int) -> bool:
        """Remember `pn`; False when it was already there."""
        runs = self.runs
        for i, run in enumerate(runs):
            high, low = run
            if pn > high + 1:
                runs.insert(i, [pn, pn])
                break
            if pn == high + 1:          # the run above (if any) ends higher than pn + 1: no merge
                run[0] = pn
                return True
            if pn >= low:
                return False
            if pn == low - 1:
                run[1] = pn
                if i + 1 < len(runs) and runs[i + 1][0] == pn - 1:
                    run[1] = runs[i + 1][1]
                    del runs[i + 1]
                return True
        else:
            runs.append([pn, pn])
        if len(runs) > self.max_runs:
            runs.pop()
        return True

    def ack_block(self, max_ranges: int, span: int) -> AckBlock:
        """The ACK for the `span` highest packet numbers: older ones were acknowledged by earlier ACKs."""
        floor = self.runs[0][0] - span
        runs = []
        for high, low in self.runs:
            if high <= floor:
                break
            runs.append((high, max(low, floor + 1)))
        return AckBlock.from_runs(runs, max_ranges)


class DataPhase:
    """Both directions of one established SSU2 session."""

    def __init__(self, result: HandshakeResult, *, intro_key: bytes, clock: Clock, rng: Rng = os.urandom,
                 mtu: int = 1500, ipv6: bool = False, settings: SessionSettings = SessionSettings(),
                 handshake_packets: list[bytes] | None = None):
        self.result = result
        self._clock = clock
        self._rng = rng
        self.settings = settings
        # the four header-protection keys of every packet, each as one ChaCha20 object for the session's life
        self._intro_mask = ChaChaStream(intro_key)
        self._peer_intro_mask = ChaChaStream(result.peer_intro_key)
        self._send_header_mask = ChaChaStream(result.keys.send_header_key)
        self._receive_header_mask = ChaChaStream(result.keys.receive_header_key)
        self._keys = result.keys
        self._tx = ChaChaPoly(result.keys.send_key)
        self._rx = ChaChaPoly(result.keys.receive_key)
        self.send_id = result.send_id
        self.receive_id = result.receive_id
        self.room = max_payload(mtu, ipv6) - TAG_LEN       # plaintext bytes per packet
        # Alice's Session Confirmed is packet 0 (ssu2.rst "Session Confirmed ACK")
        self.next_packet_number = 1 if result.initiator else 0
        self._queue: deque[tuple[Block, bytes]] = deque()     # (block, its encoding)
        self._tries: dict[int, int] = {}           # id(block) -> times sent again, for blocks in flight
        self._sent: OrderedDict[int, _Sent] = OrderedDict()
        self._received = ReceivedPackets(settings.received_ranges)
        self._ack_due: float | None = None
        self._unacked = 0                          # ack-eliciting packets received since our last ACK
        self._immediate_pn = -1                    # our last packet that asked for an immediate ACK
        self._partials: OrderedDict[int, _Partial] = OrderedDict()
        self._delivered_ids: OrderedDict[int, None] = OrderedDict()
        self.cwnd = float(settings.initial_window)
        self.ssthresh = float(settings.max_window)
        self._recovery_start = 0
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = settings.initial_rto
        self._handshake_packets = list(handshake_packets or [])
        self._handshake_resends = 0
        self._handshake_sent_at = clock.monotonic()
        self.confirmed = not result.initiator       # Alice: until Bob's first packet
        self.peer_termination: TerminationBlock | None = None
        self.send_closed = False
        self.packets_sent = 0
        self.packets_received = 0
        self.retransmissions = 0
        self.lost_messages = 0
        self.duplicates = 0
        self.congestion_events = 0
        self.timeouts = 0
        self.last_duplicate = False

    # --- sending

    @property
    def window(self) -> int:
        return int(self.cwnd)

    @property
    def in_flight(self) -> int:
        return len(self._sent)          # only ack-eliciting packets are kept

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send_message(self, message: I2NPMessage) -> bool:
        """Queue an I2NP message, fragmented to the MTU; False when the queue is full (message dropped)."""
        block = I2NPBlock.from_message(message)
        return self.send_blocks(self._fragment(block))

    def send_blocks(self, blocks: list[Block]) -> bool:
        if self.send_closed:
            raise ProtocolError("SSU2 session: sending after Termination")
        if len(self._queue) + len(blocks) > self.settings.max_queued:
            return False
        self._queue.extend((b, b.to_bytes()) for b in blocks)
        return True

    def _fragment(self, block: I2NPBlock) -> list[Block]:
        """ssu2.rst "I2NP Message Fragmentation": one I2NP block, or a First Fragment and Follow-ons."""
        limit = self.room - 3 - 32          # room left for an ACK block in the same packet
        if 12 + len(block.body) <= limit:
            return [block]
        body = block.body
        first_size = limit - 12
        blocks: list[Block] = [FirstFragmentBlock(block.msg_type, block.msg_id, block.expiration, body[:first_size])]
        pos, number = first_size, 1
        while pos < len(body):
            chunk = body[pos:pos + limit - 8]
            pos += len(chunk)
            if number > 127:
                raise ValueError("I2NP message too large for SSU2 fragments")
            blocks.append(FollowOnFragmentBlock(number, pos >= len(body), block.msg_id, chunk))
            number += 1
        return blocks

    def terminate(self, reason: int = TerminationReason.NORMAL_CLOSE) -> bytes:
        """The last packet: ACK and Termination (frames received so far, reason)."""
        blocks: list[Block] = []
        if self._received:
            blocks.append(self._ack_block())
        blocks.append(TerminationBlock(self.packets_received, int(reason)))
        packet = self._seal(blocks, track=False)
        self.send_closed = True
        self._queue.clear()
        return packet

    def seal_now(self, blocks: list[Block]) -> bytes:
        """One packet of `blocks` and an ACK, sent at once and not retransmitted (Path Challenge/Response)."""
        if self._received:
            blocks = [self._ack_block(), *blocks]
        return self._seal(blocks, track=False)

    def _ack_block(self) -> AckBlock:
        self._unacked = 0
        self._ack_due = None
        return self._received.ack_block(self.settings.ack_ranges, self.settings.ack_span)

    def _seal(self, blocks: list[Block], *, track: bool = True, immediate_ack: bool = False,
              encoded: list[bytes] | None = None) -> bytes:
        payload = b"".join(encoded if encoded is not None else [b.to_bytes() for b in blocks])
        if len(payload) < 8:         # header protection needs 24 bytes of payload and MAC
            payload += PaddingBlock(self._rng(8 - len(payload) + _pick(self._rng, 8))).to_bytes()
        elif self.room - len(payload) >= 3:
            payload += PaddingBlock(self._rng(min(_pick(self._rng, 16), self.room - len(payload) - 3))).to_bytes()
        pn = self.next_packet_number
        if pn > 0xFFFFFFFF:
            raise ProtocolError("SSU2 session: packet numbers exhausted")
        self.next_packet_number += 1
        header = h.ShortHeader(self.send_id, pn, h.DATA, bytes((1 if immediate_ack else 0, 0, 0))).to_bytes()
        ciphertext = self._tx.encrypt(noise_nonce(pn), payload, header)
        self.packets_sent += 1
        if track and _eliciting(blocks):
            retransmittable = [b for b in blocks if type(b) is not AckBlock and type(b) is not PaddingBlock]
            tries = max((self._tries.get(id(b), 0) for b in retransmittable), default=0) if self._tries else 0
            self._sent[pn] = _Sent(self._clock.monotonic(), retransmittable, True, tries)
        return h.protect(header + ciphertext, self._peer_intro_mask, self._send_header_mask)

    def poll(self) -> list[bytes]:
        """Datagrams due now."""
        now = self._clock.monotonic()
        out: list[bytes] = []
        if self._handshake_packets and not self.confirmed:
            resend = self.settings.handshake_resend
            if self._handshake_resends < len(resend) and \
                    now - self._handshake_sent_at >= resend[self._handshake_resends]:
                self._handshake_resends += 1
                self._handshake_sent_at = now
                out.extend(self._handshake_packets)
        self._retransmit_due(now)
        ack_now = self._ack_due is not None and now >= self._ack_due
        room = self.room
        while self._queue and (self.in_flight < self.cwnd or not self.confirmed and self.in_flight < 4):
            blocks: list[Block] = []
            encoded: list[bytes] = []
            used = 0
            retransmitted = False
            if self._ack_due is not None:       # an ACK rides along whenever one is pending
                ack = self._ack_block()
                blocks.append(ack)
                encoded.append(ack.to_bytes())
                used += len(encoded[0])
                ack_now = False
            while self._queue:
                block, data = self._queue[0]
                if used + len(data) > room:
                    if not encoded or len(encoded) == 1 and blocks[0].__class__ is AckBlock and len(data) > room:
                        self._queue.popleft()            # cannot ever fit: a caller error, drop it
                        self.lost_messages += 1
                        continue
                    break
                self._queue.popleft()
                blocks.append(block)
                encoded.append(data)
                used += len(data)
                if not retransmitted and self._tries and id(block) in self._tries:
                    retransmitted = True
            if blocks:
                # ssu2.rst "Immediate ACK Flag": on retransmissions; on the last packet of a burst or the one that
                # fills the window, while no earlier request is unanswered (so that the peer's ACKs stay few)
                immediate = retransmitted or (not self._queue or self.in_flight + 1 >= self.cwnd) \
                    and self._immediate_pn not in self._sent
                if immediate:
                    self._immediate_pn = self.next_packet_number
                out.append(self._seal(blocks, encoded=encoded, immediate_ack=immediate))
        if ack_now:
            out.append(self._seal([self._ack_block()]))
        return out

    def _retransmit_due(self, now: float) -> None:
        """RFC 6298 5.4-5.7: on expiry the oldest packets go again, the timer backs off; RFC 5681 3.1: the window
        restarts from the minimum."""
        if not self._sent:
            return
        oldest = next(iter(self._sent.values()))
        if now - oldest.time < self.rto:
            return
        expired = []
        for pn, sent in self._sent.items():
            if now - sent.time < self.rto:
                break
            expired.append(pn)
        self.timeouts += 1
        self.ssthresh = max(float(self.settings.min_window), self.in_flight / 2)
        self._lost(expired, congestion=False)
        self.cwnd = float(self.settings.min_window)
        self._recovery_start = self.next_packet_number
        self.rto = min(self.settings.max_rto, self.rto * 2)

    def _lost(self, numbers: list[int], congestion: bool = True) -> None:
        """Packets taken as lost: their blocks go again, in new packets (ssu2.rst "Packet Numbering")."""
        if congestion:
            self.on_congestion(max(numbers))
        requeue = []
        for pn in numbers:                           # oldest first
            sent = self._sent.pop(pn)
            if sent.retransmits >= self.settings.max_retransmits:
                self.lost_messages += 1
                for block in sent.blocks:
                    self._tries.pop(id(block), None)
                continue
            self.retransmissions += 1
            for block in sent.blocks:
                self._tries[id(block)] = sent.retransmits + 1
                requeue.append((block, block.to_bytes()))
        self._queue.extendleft(reversed(requeue))    # the oldest ends up first in the queue

    def on_congestion(self, pn: int | None = None) -> None:
        """A loss or an ECN mark: halve the window, once per round trip (RFC 9002 7.3.2 recovery period)."""
        if pn is None or pn >= self._recovery_start:
            self.congestion_events += 1
            self.ssthresh = max(float(self.settings.min_window), self.cwnd / 2)
            self.cwnd = self.ssthresh
            self._recovery_start = self.next_packet_number

    def next_deadline(self) -> float | None:
        """Monotonic time of the next poll() that has work, or None."""
        times = []
        if self._ack_due is not None:
            times.append(self._ack_due)
        if self._queue and self.in_flight < self.cwnd:
            times.append(self._clock.monotonic())
        for s in self._sent.values():
            times.append(s.time + self.rto)       # the oldest first: insertion order
            break
        if self._handshake_packets and not self.confirmed and self._handshake_resends < len(self.settings.handshake_resend):
            times.append(self._handshake_sent_at + self.settings.handshake_resend[self._handshake_resends])
        return min(times) if times else None

    # --- receiving

    def receive(self, packet: bytes) -> list[Block]:
        """Decrypt and process one data packet; raises ProtocolError for anything not from the peer."""
        if len(packet) < h.MIN_PACKET_SIZE:
            raise ParseError(f"{len(packet)}-byte datagram", structure="SSU2 packet")
        plain = h.unprotect_short(packet, self._intro_mask, self._receive_header_mask)
        header = h.ShortHeader.parse(plain)
        if header.dest_id != self.receive_id:
            raise HandshakeError("connection id mismatch", structure="SSU2 data")
        if header.type != h.DATA:
            raise HandshakeError(f"message type {header.type} in the data phase", structure="SSU2 data")
        payload = self._rx.decrypt(noise_nonce(header.packet_number), packet[16:], plain)
        blocks = parse_blocks(payload, "SSU2 data")
        self.packets_received += 1
        self.confirmed = True
        self._handshake_packets = []
        pn = header.packet_number
        highest = self._received.highest
        duplicate = not self._received.add(pn)
        self.last_duplicate = duplicate
        if _eliciting(blocks):
            # ssu2.rst "Generating ACKs": at once when out of order, after a gap, or asked; else within the delay
            self._unacked += 1
            now = self._clock.monotonic()
            if header.immediate_ack or pn != highest + 1 or self._unacked >= self.settings.ack_every or duplicate:
                due = now
            else:
                due = now + self._ack_delay()
            self._ack_due = due if self._ack_due is None else min(self._ack_due, due)
        if duplicate:
            self.duplicates += 1
            return []
        out: list[Block] = []
        for block in blocks:
            kind = type(block)
            if kind is AckBlock:
                self._on_ack(block)
            elif kind is I2NPBlock:
                if self._first_delivery(block.msg_id):
                    out.append(block)
            elif kind is FirstFragmentBlock or kind is FollowOnFragmentBlock:
                message = self._reassemble(block)
                if message is not None and self._first_delivery(message.msg_id):
                    out.append(message)
            elif kind is PaddingBlock:
                continue
            elif kind is TerminationBlock:
                self.peer_termination = block
                out.append(block)
            elif kind is CongestionBlock:
                # ssu2.rst "Congestion": bit 0 asks for an ACK now, bit 1 is an ECN mark from the path
                if block.flag & 1:
                    self._ack_due = self._clock.monotonic()
                if block.flag & 2:
                    self.on_congestion()
            elif kind is OpaqueBlock:
                if block.block_type in (RELAY_TAG_REQUEST, PATH_CHALLENGE, PATH_RESPONSE):
                    out.append(block)        # for the endpoint: its introducer, or path validation
            else:
                out.append(block)
        return out

    def _ack_delay(self) -> float:
        """ssu2.rst "ACK Frequency": no more than RTT/6, or 150 ms."""
        if self.srtt is None:
            return self.settings.ack_delay
        return min(self.settings.max_ack_delay, self.srtt / 6)

    def _remember(self, pn: int) -> None:
        self._received.add(pn)

    def _first_delivery(self, msg_id: int) -> bool:
        """ssu2.rst "I2NP Message Duplication": deliver each message id once (bounded memory)."""
        if msg_id in self._delivered_ids:
            return False
        self._delivered_ids[msg_id] = None
        while len(self._delivered_ids) > self.settings.delivered_ids:
            self._delivered_ids.popitem(last=False)
        return True

    def _on_ack(self, ack: AckBlock) -> None:
        sent_map = self._sent
        if not sent_map:
            return
        now = self._clock.monotonic()
        newest = None
        first = next(iter(sent_map))
        last = next(reversed(sent_map))
        acked = 0
        for high, low in ack.intervals():
            if high < first:
                break
            for pn in range(min(high, last), max(low, first) - 1, -1):     # only what is in flight
                sent = sent_map.pop(pn, None)
                if sent is None:
                    continue
                acked += 1
                if self._tries:
                    for block in sent.blocks:
                        self._tries.pop(id(block), None)
                if newest is None:      # packet numbers are never reused: every ACK is an unambiguous sample
                    newest = sent
        if newest is not None:
            self._rtt_sample(now - newest.time)
            # RFC 5681 3.1: slow start below ssthresh, then about one packet more per round trip
            if self.cwnd < self.ssthresh:
                self.cwnd += acked
            else:
                self.cwnd += acked / self.cwnd
            self.cwnd = min(self.cwnd, float(self.settings.max_window))
        # packet threshold loss detection (RFC 9002 section 6.1.1, as ssu2.rst borrows QUIC's recovery):
        # a packet 3 below one acknowledged now is lost, without waiting for the timeout
        lost = []
        for pn in sent_map:           # oldest first
            if pn + self.settings.reorder_threshold > ack.ack_through:
                break
            lost.append(pn)
        if lost:
            self._lost(lost)

    def _rtt_sample(self, rtt: float) -> None:
        """RFC 6298 smoothing."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        s = self.settings
        self.rto = max(s.min_rto, min(s.max_rto, self.srtt + 4 * self.rttvar))

    def _reassemble(self, block) -> I2NPBlock | None:
        now = self._clock.monotonic()
        while self._partials:
            msg_id, oldest = next(iter(self._partials.items()))
            if now - oldest.started <= self.settings.reassembly_timeout and \
                    len(self._partials) <= self.settings.max_reassembly:
                break
            del self._partials[msg_id]
            self.lost_messages += 1
        partial = self._partials.get(block.msg_id)
        if partial is None:
            if block.msg_id in self._delivered_ids:
                return None
            partial = self._partials[block.msg_id] = _Partial(now, parts={})
        if isinstance(block, FirstFragmentBlock):
            partial.first = block
        else:
            partial.parts[block.fragment_number] = block.fragment
            if block.is_last:
                partial.last = block.fragment_number
        if partial.first is None or partial.last is None or len(partial.parts) < partial.last:
            return None
        del self._partials[block.msg_id]
        first = partial.first
        body = first.fragment + b"".join(partial.parts[i] for i in range(1, partial.last + 1))
        return I2NPBlock(first.msg_type, first.msg_id, first.expiration, body)

    def datetime_block(self) -> DateTimeBlock:
        return DateTimeBlock.now(self._clock.time())


def _pick(rng: Rng, bound: int) -> int:
    return rng(1)[0] % (bound + 1)


_NOT_ELICITING = frozenset(NOT_ACK_ELICITING)


def _eliciting(blocks) -> bool:
    """ssu2.rst "Generating ACKs": a packet with any block but ACK, Address, DateTime, Padding, Termination."""
    for b in blocks:
        if type(b) not in _NOT_ELICITING:
            return True
    return False
