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
from core.crypto.chacha import ChaChaPoly, TAG_LEN, noise_nonce
from core.data.errors import HandshakeError, ParseError, ProtocolError
from core.i2np.header import I2NPMessage

from . import header as h
from .blocks import (NOT_ACK_ELICITING, AckBlock, Block, DateTimeBlock, FirstFragmentBlock, FollowOnFragmentBlock,
                     I2NPBlock, OpaqueBlock, PaddingBlock, PATH_CHALLENGE, PATH_RESPONSE, RELAY_TAG_REQUEST, TerminationBlock,
                     TerminationReason, parse_blocks)
from .handshake import HandshakeResult, max_payload


@dataclass(frozen=True, slots=True)
class SessionSettings:
    ack_delay: float = 0.01             # ssu2.rst "ACK Frequency": ack soon, many packets in one ACK
    initial_rto: float = 1.0
    min_rto: float = 0.1
    max_rto: float = 3.0
    max_retransmits: int = 5            # then the fragments are given up (I2NP has its own recovery)
    initial_window: int = 16            # packets in flight
    min_window: int = 4
    max_window: int = 256
    max_queued: int = 1024              # blocks waiting to be sent
    max_reassembly: int = 32            # partially received messages (each up to 127 fragments)
    reassembly_timeout: float = 10.0
    ack_ranges: int = 32
    reorder_threshold: int = 3          # packets acknowledged above an unacknowledged one before it counts as lost
    received_window: int = 1024         # packet numbers remembered for ACKs and duplicate detection
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


class DataPhase:
    """Both directions of one established SSU2 session."""

    def __init__(self, result: HandshakeResult, *, intro_key: bytes, clock: Clock, rng: Rng = os.urandom,
                 mtu: int = 1500, ipv6: bool = False, settings: SessionSettings = SessionSettings(),
                 handshake_packets: list[bytes] | None = None):
        self.result = result
        self._clock = clock
        self._rng = rng
        self.settings = settings
        self._intro_key = intro_key
        self._peer_intro_key = result.peer_intro_key
        self._keys = result.keys
        self._tx = ChaChaPoly(result.keys.send_key)
        self._rx = ChaChaPoly(result.keys.receive_key)
        self.send_id = result.send_id
        self.receive_id = result.receive_id
        self.room = max_payload(mtu, ipv6) - TAG_LEN       # plaintext bytes per packet
        # Alice's Session Confirmed is packet 0 (ssu2.rst "Session Confirmed ACK")
        self.next_packet_number = 1 if result.initiator else 0
        self._queue: deque[Block] = deque()
        self._tries: dict[int, int] = {}           # id(block) -> times sent again, for blocks in flight
        self._sent: OrderedDict[int, _Sent] = OrderedDict()
        self._received: set[int] = set()
        self._received_order: deque[int] = deque()
        self._ack_due: float | None = None
        self._partials: OrderedDict[int, _Partial] = OrderedDict()
        self._delivered_ids: OrderedDict[int, None] = OrderedDict()
        self.window = settings.initial_window
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
        self.last_duplicate = False

    # --- sending

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
        self._queue.extend(blocks)
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
        return AckBlock.from_packets(self._received, self.settings.ack_ranges)

    def _seal(self, blocks: list[Block], *, track: bool = True, immediate_ack: bool = False) -> bytes:
        payload = b"".join(b.to_bytes() for b in blocks)
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
        if track:
            eliciting = any(not isinstance(b, NOT_ACK_ELICITING) for b in blocks)
            if eliciting:
                retransmittable = [b for b in blocks if not isinstance(b, (AckBlock, PaddingBlock))]
                tries = max((self._tries.get(id(b), 0) for b in retransmittable), default=0)
                self._sent[pn] = _Sent(self._clock.monotonic(), retransmittable, True, tries)
        return h.protect(header + ciphertext, self._peer_intro_key, self._keys.send_header_key)

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
        while self._queue and (self.in_flight < self.window or not self.confirmed and self.in_flight < 4):
            blocks: list[Block] = []
            used = 0
            if ack_now or self._ack_due is not None:
                ack = self._ack_block()
                blocks.append(ack)
                used += len(ack.to_bytes())
                ack_now = False
                self._ack_due = None
            while self._queue:
                size = len(self._queue[0].to_bytes())
                if used + size > self.room:
                    if not blocks or all(isinstance(b, AckBlock) for b in blocks) and size > self.room:
                        self._queue.popleft()            # cannot ever fit: a caller error, drop it
                        self.lost_messages += 1
                        continue
                    break
                blocks.append(self._queue.popleft())
                used += size
            if blocks:
                out.append(self._seal(blocks))
        if ack_now:
            out.append(self._seal([self._ack_block()]))
            self._ack_due = None
        return out

    def _retransmit_due(self, now: float) -> None:
        expired = [pn for pn, s in self._sent.items() if now - s.time >= self.rto]
        if expired:
            self._lost(expired)
            self.rto = min(self.settings.max_rto, self.rto * 2)

    def _lost(self, numbers: list[int]) -> None:
        """Packets taken as lost: their blocks go again, in new packets (ssu2.rst "Packet Numbering")."""
        if max(numbers) >= self._recovery_start:
            # a loss: back off, once per round trip (RFC 9002 7.3.2 recovery period)
            self.window = max(self.settings.min_window, self.window // 2)
            self._recovery_start = self.next_packet_number
        for pn in reversed(numbers):                 # the oldest ends up first in the queue
            sent = self._sent.pop(pn)
            if sent.retransmits >= self.settings.max_retransmits:
                self.lost_messages += 1
                for block in sent.blocks:
                    self._tries.pop(id(block), None)
                continue
            self.retransmissions += 1
            for block in reversed(sent.blocks):
                self._tries[id(block)] = sent.retransmits + 1
                self._queue.appendleft(block)

    def next_deadline(self) -> float | None:
        """Monotonic time of the next poll() that has work, or None."""
        times = []
        if self._ack_due is not None:
            times.append(self._ack_due)
        if self._queue and self.in_flight < self.window:
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
        plain = h.unprotect_short(packet, self._intro_key, self._keys.receive_header_key)
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
        duplicate = pn in self._received
        self._remember(pn)
        eliciting = any(not isinstance(b, NOT_ACK_ELICITING) for b in blocks)
        if eliciting:
            due = self._clock.monotonic() + (0 if header.immediate_ack else self.settings.ack_delay)
            self._ack_due = due if self._ack_due is None else min(self._ack_due, due)
        self.last_duplicate = duplicate
        if duplicate:
            self.duplicates += 1
            return []
        out: list[Block] = []
        for block in blocks:
            if isinstance(block, AckBlock):
                self._on_ack(block)
            elif isinstance(block, I2NPBlock):
                if self._first_delivery(block.msg_id):
                    out.append(block)
            elif isinstance(block, (FirstFragmentBlock, FollowOnFragmentBlock)):
                message = self._reassemble(block)
                if message is not None and self._first_delivery(message.msg_id):
                    out.append(message)
            elif isinstance(block, TerminationBlock):
                self.peer_termination = block
                out.append(block)
            elif isinstance(block, OpaqueBlock) and block.block_type in (RELAY_TAG_REQUEST, PATH_CHALLENGE,
                                                                         PATH_RESPONSE):
                out.append(block)            # for the endpoint: its introducer, or path validation
            elif not isinstance(block, (PaddingBlock, OpaqueBlock)):
                out.append(block)
        return out

    def _remember(self, pn: int) -> None:
        if pn in self._received:
            return
        self._received.add(pn)
        self._received_order.append(pn)
        while len(self._received_order) > self.settings.received_window:
            self._received.discard(self._received_order.popleft())

    def _first_delivery(self, msg_id: int) -> bool:
        """ssu2.rst "I2NP Message Duplication": deliver each message id once (bounded memory)."""
        if msg_id in self._delivered_ids:
            return False
        self._delivered_ids[msg_id] = None
        while len(self._delivered_ids) > 4 * self.settings.received_window:
            self._delivered_ids.popitem(last=False)
        return True

    def _on_ack(self, ack: AckBlock) -> None:
        now = self._clock.monotonic()
        newest = None
        for pn in ack.acked():
            sent = self._sent.pop(pn, None)
            if sent is not None:
                for block in sent.blocks:
                    self._tries.pop(id(block), None)
                if newest is None:      # packet numbers are never reused: every ACK is an unambiguous sample
                    newest = sent
                if self.window < self.settings.max_window:
                    self.window += 1
        if newest is not None:
            self._rtt_sample(now - newest.time)
        # packet threshold loss detection (RFC 9002 section 6.1.1, as ssu2.rst borrows QUIC's recovery):
        # a packet 3 below one acknowledged now is lost, without waiting for the timeout
        lost = []
        for pn in self._sent:           # oldest first
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
