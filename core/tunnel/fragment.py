"""Tunnel message preprocessing: gateway fragmentation and endpoint reassembly (tunnel-message.rst).

The decrypted 1024-byte TunnelData payload is IV(16) | checksum(4) | nonzero padding | 0x00 |
{delivery instructions, fragment}... The checksum is SHA-256(everything after the zero byte + IV)[:4].
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from core.clock import Clock, Rng
from core.data.errors import ParseError
from core.data.reader import Reader
from core.i2np import I2NPMessage, encode_standard

PAYLOAD_SIZE = 1024
IV_SIZE = 16
CHECKSUM_SIZE = 4
MAX_BODY_SIZE = PAYLOAD_SIZE - IV_SIZE - CHECKSUM_SIZE - 1  # 1003: instructions and fragments, no padding
FOLLOW_ON_HEADER_SIZE = 7
MAX_FRAGMENT_NUMBER = 63  # 6 bits; 64 fragments in all with the first
HASH_SIZE = 32

_FOLLOW_ON = 0x80
_DELAY = 0x10
_FRAGMENTED = 0x08
_EXTENDED = 0x04
_RESERVED = 0x03
_U32_MAX = 0xFFFFFFFF


class TunnelDeliveryType(IntEnum):
    """First-fragment flag bits 6-5 (tunnel-message.rst); 3 is invalid."""

    LOCAL = 0
    TUNNEL = 1
    ROUTER = 2


@dataclass(frozen=True, slots=True)
class TunnelDelivery:
    """Where the endpoint sends a message: itself (LOCAL), a router, or a tunnel at its gateway router."""

    delivery_type: TunnelDeliveryType = TunnelDeliveryType.LOCAL
    to_hash: bytes | None = None
    tunnel_id: int | None = None

    def __post_init__(self) -> None:
        if self.delivery_type not in (0, 1, 2):
            raise ParseError(f"delivery type {self.delivery_type} is invalid", structure="TunnelDelivery")
        if (self.to_hash is None) != (self.delivery_type == TunnelDeliveryType.LOCAL):
            raise ParseError("ROUTER and TUNNEL delivery need a hash, LOCAL none", structure="TunnelDelivery")
        if self.to_hash is not None and len(self.to_hash) != HASH_SIZE:
            raise ParseError("delivery hash must be 32 bytes", structure="TunnelDelivery")
        if self.delivery_type == TunnelDeliveryType.TUNNEL:
            if self.tunnel_id is None or not 0 < self.tunnel_id <= _U32_MAX:
                raise ParseError("TUNNEL delivery needs a nonzero tunnel id", structure="TunnelDelivery")
        elif self.tunnel_id is not None:
            raise ParseError("only TUNNEL delivery has a tunnel id", structure="TunnelDelivery")

    @classmethod
    def local(cls) -> Self:
        return cls()

    @classmethod
    def to_router(cls, router_hash: bytes) -> Self:
        return cls(TunnelDeliveryType.ROUTER, router_hash)

    @classmethod
    def to_tunnel(cls, gateway_hash: bytes, tunnel_id: int) -> Self:
        return cls(TunnelDeliveryType.TUNNEL, gateway_hash, tunnel_id)

    @property
    def instructions_size(self) -> int:
        """Flag, tunnel id and hash bytes (without message id and size)."""
        return 1 + (4 if self.delivery_type == TunnelDeliveryType.TUNNEL else 0) + (0 if self.to_hash is None else 32)


LOCAL = TunnelDelivery()


@dataclass(frozen=True, slots=True)
class FirstFragment:
    """A whole message, or the first fragment of one (`message_id` set) ("First Fragment Delivery Instructions")."""

    delivery: TunnelDelivery
    data: bytes
    message_id: int | None = None
    delay: int | None = None  # unimplemented in the network; kept for an exact round trip
    extended_options: bytes | None = None  # likewise

    def __post_init__(self) -> None:
        if not 1 <= len(self.data) <= MAX_BODY_SIZE:
            raise ParseError(f"fragment of {len(self.data)} bytes", structure="FirstFragment")
        if self.message_id is not None and not 0 <= self.message_id <= _U32_MAX:
            raise ParseError("message id out of range", structure="FirstFragment")
        if self.delay is not None and not 0 <= self.delay <= 0xFF:
            raise ParseError("delay out of range", structure="FirstFragment")
        if self.extended_options is not None and len(self.extended_options) > 0xFF:
            raise ParseError("extended options longer than 255 bytes", structure="FirstFragment")

    @property
    def is_fragmented(self) -> bool:
        return self.message_id is not None

    @property
    def encoded_size(self) -> int:
        """len(to_bytes()), without encoding."""
        size = self.delivery.instructions_size + 2 + len(self.data)
        if self.delay is not None:
            size += 1
        if self.message_id is not None:
            size += 4
        if self.extended_options is not None:
            size += 1 + len(self.extended_options)
        return size

    @classmethod
    def read(cls, r: Reader) -> Self:
        flag_offset = r.pos
        flag = r.u8()
        if flag & _FOLLOW_ON:
            raise r.error("follow-on flag set in first fragment instructions", flag_offset)
        if flag & _RESERVED:
            raise r.error(f"reserved flag bits 1-0 set (0x{flag:02x})", flag_offset)
        delivery_type = (flag >> 5) & 0x03
        if delivery_type == 3:
            raise r.error("delivery type 3 is invalid", flag_offset)
        tunnel_id = r.u32() if delivery_type == TunnelDeliveryType.TUNNEL else None
        if tunnel_id == 0:
            raise r.error("tunnel id must be nonzero", r.pos - 4)
        to_hash = r.take(HASH_SIZE) if delivery_type != TunnelDeliveryType.LOCAL else None
        delay = r.u8() if flag & _DELAY else None
        message_id = r.u32() if flag & _FRAGMENTED else None
        extended = r.take(r.u8()) if flag & _EXTENDED else None
        size_offset = r.pos
        size = r.u16()
        if size == 0:
            raise r.error("fragment size 0", size_offset)
        data = r.take(size)
        return cls(TunnelDelivery(TunnelDeliveryType(delivery_type), to_hash, tunnel_id), data, message_id, delay,
                   extended)

    def to_bytes(self) -> bytes:
        return b"".join((_first_instructions(self.delivery, self.message_id, self.delay, self.extended_options),
                         len(self.data).to_bytes(2, "big"), self.data))


def _first_instructions(delivery: TunnelDelivery, message_id: int | None, delay: int | None = None,
                        extended_options: bytes | None = None) -> bytes:
    """First-fragment delivery instructions up to the size field: flag, tunnel id, hash, delay, message id,
    extended options."""
    flag = delivery.delivery_type << 5
    parts = [b""]
    if delivery.tunnel_id is not None:
        parts.append(delivery.tunnel_id.to_bytes(4, "big"))
    if delivery.to_hash is not None:
        parts.append(delivery.to_hash)
    if delay is not None:
        flag |= _DELAY
        parts.append(bytes((delay,)))
    if message_id is not None:
        flag |= _FRAGMENTED
        parts.append(message_id.to_bytes(4, "big"))
    if extended_options is not None:
        flag |= _EXTENDED
        parts.append(bytes((len(extended_options),)) + extended_options)
    parts[0] = bytes((flag,))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class FollowOnFragment:
    """Fragment 1-63 of a message ("Follow-on Fragment Delivery Instructions")."""

    message_id: int
    fragment_number: int
    is_last: bool
    data: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.fragment_number <= MAX_FRAGMENT_NUMBER:
            raise ParseError(f"fragment number {self.fragment_number}, valid 1-63", structure="FollowOnFragment")
        if not 0 <= self.message_id <= _U32_MAX:
            raise ParseError("message id out of range", structure="FollowOnFragment")
        if not 1 <= len(self.data) <= MAX_BODY_SIZE - FOLLOW_ON_HEADER_SIZE:
            raise ParseError(f"fragment of {len(self.data)} bytes", structure="FollowOnFragment")

    @classmethod
    def read(cls, r: Reader) -> Self:
        flag_offset = r.pos
        flag = r.u8()
        if not flag & _FOLLOW_ON:
            raise r.error("follow-on flag not set", flag_offset)
        number = (flag >> 1) & 0x3F
        if number == 0:
            raise r.error("follow-on fragment number 0", flag_offset)
        message_id = r.u32()
        size_offset = r.pos
        size = r.u16()
        if size == 0:
            raise r.error("fragment size 0", size_offset)
        return cls(message_id, number, bool(flag & 0x01), r.take(size))

    @property
    def encoded_size(self) -> int:
        return FOLLOW_ON_HEADER_SIZE + len(self.data)

    def to_bytes(self) -> bytes:
        flag = _FOLLOW_ON | (self.fragment_number << 1) | (1 if self.is_last else 0)
        return (bytes((flag,)) + self.message_id.to_bytes(4, "big") + len(self.data).to_bytes(2, "big")
                + self.data)


Fragment = FirstFragment | FollowOnFragment


def _checksum(body: bytes, iv: bytes) -> bytes:
    return hashlib.sha256(body + iv).digest()[:CHECKSUM_SIZE]


@dataclass(frozen=True, slots=True)
class TunnelMessage:
    """The decrypted 1024-byte payload of a TunnelData message ("Tunnel Message (Decrypted)")."""

    iv: bytes
    fragments: tuple[Fragment, ...]
    padding: bytes  # nonzero bytes before the zero byte

    def __post_init__(self) -> None:
        if len(self.iv) != IV_SIZE:
            raise ParseError("IV must be 16 bytes", structure="TunnelMessage")
        if 0 in self.padding:
            raise ParseError("padding must be nonzero", structure="TunnelMessage")
        used = sum(f.encoded_size for f in self.fragments)
        if used + len(self.padding) != MAX_BODY_SIZE:
            raise ParseError(f"{used} bytes of fragments and {len(self.padding)} of padding do not fill the message",
                             structure="TunnelMessage")

    @classmethod
    def create(cls, iv: bytes, fragments: tuple[Fragment, ...], rng: Rng) -> Self:
        used = sum(f.encoded_size for f in fragments)
        return cls(iv, fragments, nonzero_padding(MAX_BODY_SIZE - used, rng))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) != PAYLOAD_SIZE:
            raise ParseError(f"{len(data)} bytes, must be {PAYLOAD_SIZE}", structure="TunnelMessage", offset=0)
        iv = data[:IV_SIZE]
        start = IV_SIZE + CHECKSUM_SIZE
        zero = data.find(0, start)
        if zero < 0:
            raise ParseError("no zero byte after the padding", structure="TunnelMessage", offset=start)
        body = data[zero + 1:]
        if _checksum(body, iv) != data[IV_SIZE:start]:
            raise ParseError("checksum mismatch", structure="TunnelMessage", offset=IV_SIZE)
        r = Reader(data, "TunnelMessage", zero + 1)
        fragments: list[Fragment] = []
        while r.remaining:
            fragments.append(FollowOnFragment.read(r) if data[r.pos] & _FOLLOW_ON else FirstFragment.read(r))
        return cls(iv, tuple(fragments), data[start:zero])

    def to_bytes(self) -> bytes:
        body = b"".join(f.to_bytes() for f in self.fragments)
        return self.iv + _checksum(body, self.iv) + self.padding + b"\x00" + body


def nonzero_padding(length: int, rng: Rng) -> bytes:
    """Random bytes from 1-255."""
    out = bytearray()
    while len(out) < length:
        out += rng(length - len(out) + 8).replace(b"\x00", b"")
    return bytes(out[:length])


def max_message_size(delivery: TunnelDelivery) -> int:
    """The longest message one fragment chain can carry when it starts a fresh tunnel message."""
    first = MAX_BODY_SIZE - delivery.instructions_size - 4 - 2
    return first + MAX_FRAGMENT_NUMBER * (MAX_BODY_SIZE - FOLLOW_ON_HEADER_SIZE)


_MIN_FIRST_FRAGMENT = 64  # below this, a fragmented message starts in a fresh tunnel message


class TunnelFragmenter:
    """Gateway preprocessing: packs messages into 1024-byte cleartext payloads, fragmenting as needed.

    put() queues; flush() completes the partial payload and returns every finished one (IV random,
    checksum set, nonzero padding in front). Fragments are written as bytes (the layout FirstFragment and
    FollowOnFragment encode), each payload joined once.
    """

    __slots__ = ("_rng", "_parts", "_room", "_done")

    def __init__(self, rng: Rng):
        self._rng = rng
        self._parts: list[bytes] = []
        self._room = MAX_BODY_SIZE
        self._done: list[bytes] = []

    def put_message(self, message: I2NPMessage, delivery: TunnelDelivery = LOCAL) -> None:
        """An I2NP message in the standard 16-byte header form; its msg_id names its fragments."""
        self.put(encode_standard(message), delivery, message.msg_id)

    def put(self, data: bytes, delivery: TunnelDelivery, message_id: int) -> None:
        if not data:
            raise ValueError("empty message")
        size = len(data)
        if size > max_message_size(delivery):
            raise ValueError(f"{size}-byte message exceeds the {max_message_size(delivery)}-byte tunnel limit")
        whole = delivery.instructions_size + 2 + size
        if whole > self._room and self._parts and not self._fits_from_here(size, delivery):
            self._complete()
        if whole <= self._room:   # tunnel-message.rst "First Fragment Delivery Instructions", unfragmented
            self._add(_first_instructions(delivery, None) + size.to_bytes(2, "big"), data, whole)
            return
        header = delivery.instructions_size + 4 + 2
        first_size = self._room - header
        self._add(_first_instructions(delivery, message_id) + first_size.to_bytes(2, "big"), data[:first_size],
                  self._room)
        offset, number = first_size, 1
        chunk = MAX_BODY_SIZE - FOLLOW_ON_HEADER_SIZE
        msg_id = message_id.to_bytes(4, "big")
        while offset < size:
            piece = data[offset:offset + chunk]
            offset += len(piece)
            # "Follow-on Fragment Delivery Instructions": flag (follow-on, number, last), message id, size
            flag = _FOLLOW_ON | (number << 1) | (offset >= size)
            self._add(bytes((flag,)) + msg_id + len(piece).to_bytes(2, "big"), piece,
                      FOLLOW_ON_HEADER_SIZE + len(piece))
            number += 1

    def _fits_from_here(self, size: int, delivery: TunnelDelivery) -> bool:
        """Whether starting the fragment chain in the current payload is sensible and within 64 fragments."""
        first_size = self._room - (delivery.instructions_size + 4 + 2)
        if first_size < _MIN_FIRST_FRAGMENT:
            return False
        rest = size - first_size
        chunk = MAX_BODY_SIZE - FOLLOW_ON_HEADER_SIZE
        return -(-rest // chunk) <= MAX_FRAGMENT_NUMBER

    def _add(self, instructions: bytes, data: bytes, size: int) -> None:
        if size > self._room:
            self._complete()
        self._parts.append(instructions)
        self._parts.append(data)
        self._room -= size
        if self._room < FOLLOW_ON_HEADER_SIZE + 1:
            self._complete()

    def _complete(self) -> None:
        if self._parts:
            body = b"".join(self._parts)
            iv = self._rng(IV_SIZE)
            self._done.append(b"".join((iv, _checksum(body, iv), nonzero_padding(self._room, self._rng), b"\x00",
                                        body)))
        self._parts = []
        self._room = MAX_BODY_SIZE

    @property
    def partial(self) -> bool:
        """A payload is begun and has room left: flush() sends it padded, or later messages fill it."""
        return bool(self._parts)

    def flush(self, *, partial: bool = True) -> list[bytes]:
        """The finished payloads; with `partial`, the begun one too, padded (without, it stays open)."""
        if partial:
            self._complete()
        done, self._done = self._done, []
        return done


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    delivery: TunnelDelivery
    data: bytes


class _Partial:
    __slots__ = ("first", "pieces", "last_number", "size", "deadline")

    def __init__(self, deadline: float):
        self.first: FirstFragment | None = None
        self.pieces: dict[int, bytes] = {}
        self.last_number: int | None = None
        self.size = 0
        self.deadline = deadline


class TunnelReassembler:
    """Endpoint reassembly with bounded state: pending messages, their bytes, and a timeout on the clock."""

    __slots__ = ("_clock", "_pending", "_pending_bytes", "max_pending", "max_pending_bytes", "timeout",
                 "dropped_fragments", "expired_messages", "evicted_messages")

    def __init__(self, clock: Clock, *, max_pending: int = 64, max_pending_bytes: int = 1 << 20,
                 timeout: float = 45.0):
        self._clock = clock
        self._pending: dict[int, _Partial] = {}
        self._pending_bytes = 0
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.timeout = timeout
        self.dropped_fragments = 0
        self.expired_messages = 0
        self.evicted_messages = 0

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def receive(self, payload: bytes) -> list[ReassembledMessage]:
        """Complete messages from one decrypted payload; ParseError (nothing kept) for a bad checksum or layout."""
        message = TunnelMessage.parse(payload)
        self.expire()
        out: list[ReassembledMessage] = []
        for fragment in message.fragments:
            if isinstance(fragment, FirstFragment):
                if fragment.message_id is None:
                    out.append(ReassembledMessage(fragment.delivery, fragment.data))
                    continue
                partial = self._partial(fragment.message_id)
                if partial is None:
                    continue
                if partial.first is not None:
                    if partial.first != fragment:
                        self._drop(fragment.message_id)
                    self.dropped_fragments += 1
                    continue
                partial.first = fragment
                self._grow(partial, len(fragment.data))
            else:
                partial = self._partial(fragment.message_id)
                if partial is None:
                    continue
                number = fragment.fragment_number
                known = partial.pieces.get(number)
                if known is not None:
                    if known != fragment.data:
                        self._drop(fragment.message_id)
                    self.dropped_fragments += 1
                    continue
                limit = partial.last_number
                if (limit is not None and (number > limit or (fragment.is_last and number != limit))) or \
                        (fragment.is_last and partial.pieces and max(partial.pieces) > number):
                    self._drop(fragment.message_id)  # contradicting last-fragment markers: garbage
                    self.dropped_fragments += 1
                    continue
                if fragment.is_last:
                    partial.last_number = number
                partial.pieces[number] = fragment.data
                self._grow(partial, len(fragment.data))
            msg_id = fragment.message_id
            if msg_id in self._pending:
                done = self._complete(msg_id)
                if done is not None:
                    out.append(done)
            self._enforce_bytes()
        return out

    def _partial(self, message_id: int) -> _Partial | None:
        partial = self._pending.get(message_id)
        if partial is None:
            while len(self._pending) >= self.max_pending:
                self._drop(next(iter(self._pending)))
                self.evicted_messages += 1
            partial = self._pending[message_id] = _Partial(self._clock.monotonic() + self.timeout)
        return partial

    def _grow(self, partial: _Partial, size: int) -> None:
        partial.size += size
        self._pending_bytes += size

    def _enforce_bytes(self) -> None:
        while self._pending_bytes > self.max_pending_bytes and self._pending:
            self._drop(next(iter(self._pending)))
            self.evicted_messages += 1

    def _drop(self, message_id: int) -> None:
        partial = self._pending.pop(message_id, None)
        if partial is not None:
            self._pending_bytes -= partial.size

    def _complete(self, message_id: int) -> ReassembledMessage | None:
        partial = self._pending[message_id]
        if partial.first is None or partial.last_number is None or len(partial.pieces) != partial.last_number:
            return None
        self._drop(message_id)
        data = partial.first.data + b"".join(partial.pieces[n] for n in range(1, partial.last_number + 1))
        return ReassembledMessage(partial.first.delivery, data)

    def expire(self) -> int:
        """Drop partial messages past their deadline; returns how many."""
        now = self._clock.monotonic()
        stale = 0
        # deadlines grow in insertion order (one timeout from the first fragment): the oldest come first
        while self._pending:
            mid, partial = next(iter(self._pending.items()))
            if partial.deadline > now:
                break
            self._drop(mid)
            stale += 1
        self.expired_messages += stale
        return stale
