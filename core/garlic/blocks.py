"""ECIES-ratchet payload blocks (ecies.rst "5) Payload") and the block ordering rules per message kind."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import ClassVar, Self, Union

from ..data.errors import ParseError
from ..data.reader import Reader
from ..i2np.garlic import GarlicCloveBlock

MAX_PAYLOAD = 65519        # ecies.rst "Payload": 65535-byte frame minus the 16-byte MAC
MAX_BLOCK_DATA = 65516     # ... minus the 3-byte block header
MAX_KEY_ID = 32767         # ecies.rst "Next DH Ratchet Public Key"
KEY_LEN = 32


class BlockType(IntEnum):
    DATETIME = 0
    TERMINATION = 4
    OPTIONS = 5
    MESSAGE_NUMBER = 6
    NEXT_KEY = 7
    ACK = 8
    ACK_REQUEST = 9
    GARLIC_CLOVE = 11
    PADDING = 254


class PayloadKind(Enum):
    """Which message a payload came in; each has its own block rules (ecies.rst "Block Ordering Rules")."""

    NEW_SESSION = "NS"
    NEW_SESSION_REPLY = "NSR"
    EXISTING_SESSION = "ES"
    ROUTER = "router"      # ecies-routers.rst one-shot: NS rules, DateTime required


def _block(block_type: int, data: bytes) -> bytes:
    if len(data) > MAX_BLOCK_DATA:
        raise ValueError(f"block data of {len(data)} bytes exceeds {MAX_BLOCK_DATA}")
    return bytes((block_type,)) + len(data).to_bytes(2, "big") + data


class _Block:
    """Shared framing: `to_bytes()` is the block data, `to_block()` adds type and size."""

    __slots__ = ()
    BLOCK_TYPE: ClassVar[int]

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    def to_block(self) -> bytes:
        return _block(self.BLOCK_TYPE, self.to_bytes())

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        block = cls.read(r)  # type: ignore[attr-defined]
        r.expect_end()
        return block


@dataclass(frozen=True, slots=True)
class DateTime(_Block):
    """Block 0: seconds since the epoch (wraps in 2106)."""

    BLOCK_TYPE: ClassVar[int] = BlockType.DATETIME
    timestamp: int

    def __post_init__(self) -> None:
        if not 0 <= self.timestamp < 1 << 32:
            raise ValueError("timestamp must fit 4 bytes")

    @classmethod
    def read(cls, r: Reader) -> Self:
        if r.remaining != 4:
            raise r.error(f"DateTime block must be 4 bytes, got {r.remaining}")
        return cls(r.u32())

    def to_bytes(self) -> bytes:
        return self.timestamp.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class Termination(_Block):
    """Block 4: the sender drops the session; reason 0 normal, 1 termination received."""

    BLOCK_TYPE: ClassVar[int] = BlockType.TERMINATION
    reason: int = 0
    additional_data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.reason <= 0xFF:
            raise ValueError("reason must fit 1 byte")

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u8(), r.rest())

    def to_bytes(self) -> bytes:
        return bytes((self.reason,)) + self.additional_data


@dataclass(frozen=True, slots=True)
class Options(_Block):
    """Block 5: session parameters (negotiation is unspecified; carried and parsed only)."""

    BLOCK_TYPE: ClassVar[int] = BlockType.OPTIONS
    version: int = 0
    flags: int = 0
    tag_length: int = 8
    session_timeout: int = 0
    sender_outbound_window: int = 0
    receiver_inbound_window: int = 0
    tmin: int = 0
    tmax: int = 0
    rmin: int = 0
    rmax: int = 0
    tdummy: int = 0
    rdummy: int = 0
    tdelay: int = 0
    rdelay: int = 0
    more_options: bytes = b""

    _BYTES: ClassVar[tuple[str, ...]] = ("version", "flags", "tag_length")
    _SHORTS: ClassVar[tuple[str, ...]] = ("session_timeout", "sender_outbound_window", "receiver_inbound_window")
    _PADDING: ClassVar[tuple[str, ...]] = ("tmin", "tmax", "rmin", "rmax")
    _TAIL: ClassVar[tuple[str, ...]] = ("tdummy", "rdummy", "tdelay", "rdelay")

    def __post_init__(self) -> None:
        for name in self._BYTES + self._PADDING:
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} must fit 1 byte")
        for name in self._SHORTS + self._TAIL:
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} must fit 2 bytes")

    @classmethod
    def read(cls, r: Reader) -> Self:
        if r.remaining < 21:
            raise r.error(f"Options block needs at least 21 bytes, got {r.remaining}")
        values = [r.u8() for _ in cls._BYTES] + [r.u16() for _ in cls._SHORTS]
        values += [r.u8() for _ in cls._PADDING] + [r.u16() for _ in cls._TAIL]
        return cls(*values, more_options=r.rest())

    def to_bytes(self) -> bytes:
        out = bytes(getattr(self, n) for n in self._BYTES)
        out += b"".join(getattr(self, n).to_bytes(2, "big") for n in self._SHORTS)
        out += bytes(getattr(self, n) for n in self._PADDING)
        out += b"".join(getattr(self, n).to_bytes(2, "big") for n in self._TAIL)
        return out + self.more_options


@dataclass(frozen=True, slots=True)
class MessageNumber(_Block):
    """Block 6: PN, the index of the last tag sent in the previous tag set."""

    BLOCK_TYPE: ClassVar[int] = BlockType.MESSAGE_NUMBER
    previous_n: int

    def __post_init__(self) -> None:
        if not 0 <= self.previous_n <= 0xFFFF:
            raise ValueError("PN must fit 2 bytes")

    @classmethod
    def read(cls, r: Reader) -> Self:
        if r.remaining != 2:
            raise r.error(f"Message Number block must be 2 bytes, got {r.remaining}")
        return cls(r.u16())

    def to_bytes(self) -> bytes:
        return self.previous_n.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class NextKey(_Block):
    """Block 7: a DH ratchet key (or its id) for a new tag set; flags keep any future bits for round trips."""

    BLOCK_TYPE: ClassVar[int] = BlockType.NEXT_KEY
    KEY_PRESENT: ClassVar[int] = 0x01
    REVERSE: ClassVar[int] = 0x02
    REQUEST_REVERSE: ClassVar[int] = 0x04

    flags: int
    key_id: int
    public_key: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.flags <= 0xFF:
            raise ValueError("flags must fit 1 byte")
        if not 0 <= self.key_id <= MAX_KEY_ID:
            raise ValueError(f"key id {self.key_id} out of range 0-{MAX_KEY_ID}")
        if bool(self.flags & self.KEY_PRESENT) != (self.public_key is not None):
            raise ValueError("key-present flag and public key disagree")
        if self.public_key is not None and len(self.public_key) != KEY_LEN:
            raise ValueError("next key must be 32 bytes")
        if self.flags & self.REVERSE and self.flags & self.REQUEST_REVERSE:
            raise ValueError("a reverse key cannot request a reverse key")

    @classmethod
    def forward(cls, key_id: int, public_key: bytes | None, request_reverse: bool) -> Self:
        flags = (cls.KEY_PRESENT if public_key is not None else 0) | (cls.REQUEST_REVERSE if request_reverse else 0)
        return cls(flags, key_id, public_key)

    @classmethod
    def reverse_key(cls, key_id: int, public_key: bytes | None) -> Self:
        return cls(cls.REVERSE | (cls.KEY_PRESENT if public_key is not None else 0), key_id, public_key)

    @property
    def is_reverse(self) -> bool:
        return bool(self.flags & self.REVERSE)

    @property
    def requests_reverse(self) -> bool:
        return bool(self.flags & self.REQUEST_REVERSE)

    @classmethod
    def read(cls, r: Reader) -> Self:
        size = r.remaining
        flags = r.u8()
        key_id = r.u16()
        expected = 35 if flags & cls.KEY_PRESENT else 3
        if size != expected:
            raise r.error(f"Next Key block with flags 0x{flags:02x} must be {expected} bytes, got {size}")
        if key_id > MAX_KEY_ID:
            raise r.error(f"key id {key_id} exceeds {MAX_KEY_ID}")
        if flags & cls.REVERSE and flags & cls.REQUEST_REVERSE:
            raise r.error("reverse key with the request-reverse flag")
        public_key = r.take(KEY_LEN) if flags & cls.KEY_PRESENT else None
        return cls(flags, key_id, public_key)

    def to_bytes(self) -> bytes:
        return bytes((self.flags,)) + self.key_id.to_bytes(2, "big") + (self.public_key or b"")


@dataclass(frozen=True, slots=True)
class Ack(_Block):
    """Block 8: (tag set id, N) of each acknowledged message."""

    BLOCK_TYPE: ClassVar[int] = BlockType.ACK
    acks: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.acks) <= MAX_BLOCK_DATA // 4:
            raise ValueError("an Ack block holds 1 to 16379 acks")
        for tagset_id, n in self.acks:
            if not (0 <= tagset_id <= 0xFFFF and 0 <= n <= 0xFFFF):
                raise ValueError("tag set id and N must fit 2 bytes")

    @classmethod
    def read(cls, r: Reader) -> Self:
        if r.remaining == 0 or r.remaining % 4:
            raise r.error(f"Ack block size {r.remaining} is not a positive multiple of 4")
        return cls(tuple((r.u16(), r.u16()) for _ in range(r.remaining // 4)))

    def to_bytes(self) -> bytes:
        return b"".join(t.to_bytes(2, "big") + n.to_bytes(2, "big") for t, n in self.acks)


@dataclass(frozen=True, slots=True)
class AckRequest(_Block):
    """Block 9: asks for an in-band Ack of this message."""

    BLOCK_TYPE: ClassVar[int] = BlockType.ACK_REQUEST
    flags: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.flags <= 0xFF:
            raise ValueError("flags must fit 1 byte")

    @classmethod
    def read(cls, r: Reader) -> Self:
        if r.remaining != 1:
            raise r.error(f"Ack Request block must be 1 byte, got {r.remaining}")
        return cls(r.u8())

    def to_bytes(self) -> bytes:
        return bytes((self.flags,))


@dataclass(frozen=True, slots=True)
class Padding(_Block):
    """Block 254: ignored bytes, always the last block."""

    BLOCK_TYPE: ClassVar[int] = BlockType.PADDING
    data: bytes = b""

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.rest())

    def to_bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class UnknownBlock(_Block):
    """A block type this implementation does not know; receivers treat it as padding."""

    block_type: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.block_type <= 0xFF or self.block_type in _READERS:
            raise ValueError(f"block type {self.block_type} is not an unknown type")

    def to_bytes(self) -> bytes:
        return self.data

    def to_block(self) -> bytes:
        return _block(self.block_type, self.data)


Block = Union[DateTime, Termination, Options, MessageNumber, NextKey, Ack, AckRequest, GarlicCloveBlock,
              Padding, UnknownBlock]

_READERS = {
    BlockType.DATETIME: DateTime.read,
    BlockType.TERMINATION: Termination.read,
    BlockType.OPTIONS: Options.read,
    BlockType.MESSAGE_NUMBER: MessageNumber.read,
    BlockType.NEXT_KEY: NextKey.read,
    BlockType.ACK: Ack.read,
    BlockType.ACK_REQUEST: AckRequest.read,
    BlockType.GARLIC_CLOVE: GarlicCloveBlock.read,
    BlockType.PADDING: Padding.read,
}

# Blocks each handshake message may carry besides unknown ones. DateTime is accepted in NSR because
# i2pd sends one there; the session-layer blocks (4, 6-9) are for Existing Session messages only.
_HANDSHAKE_ALLOWED = frozenset((BlockType.DATETIME, BlockType.OPTIONS, BlockType.GARLIC_CLOVE, BlockType.PADDING))


def block_type(block: Block) -> int:
    return block.block_type if isinstance(block, UnknownBlock) else block.BLOCK_TYPE


def encode_payload(blocks: list[Block] | tuple[Block, ...]) -> bytes:
    data = b"".join(b.to_block() for b in blocks)
    if len(data) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD}")
    return data


def parse_payload(data: bytes, kind: PayloadKind) -> tuple[Block, ...]:
    """All blocks of a decrypted payload, checked against the rules for `kind`."""
    if len(data) > MAX_PAYLOAD:
        raise ParseError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD}", structure="GarlicPayload", offset=0)
    r = Reader(data, "GarlicPayload")
    blocks: list[Block] = []
    next_keys = 0
    terminated_at = None
    while r.remaining:
        start = r.pos
        kind_byte = r.u8()
        size = r.u16()
        sub = r.sub(size, _block_name(kind_byte))
        if blocks and isinstance(blocks[-1], Padding):
            raise r.error("Padding must be the last block", start)
        reader = _READERS.get(kind_byte)  # type: ignore[call-overload]
        if reader is None:
            block: Block = UnknownBlock(kind_byte, sub.rest())
        else:
            block = reader(sub)
            sub.expect_end()
        if kind is not PayloadKind.EXISTING_SESSION and reader is not None and kind_byte not in _HANDSHAKE_ALLOWED:
            raise ParseError(f"block type {kind_byte} is not allowed in a {kind.value} message",
                             structure="GarlicPayload", offset=start)
        if kind_byte == BlockType.NEXT_KEY:
            next_keys += 1
            if next_keys > 2:
                raise ParseError("more than two Next Key blocks", structure="GarlicPayload", offset=start)
        if terminated_at is not None and kind_byte != BlockType.PADDING:
            raise ParseError("Termination must be the last block except Padding", structure="GarlicPayload",
                             offset=start)
        if kind_byte == BlockType.TERMINATION:
            terminated_at = start
        blocks.append(block)
    if kind in (PayloadKind.NEW_SESSION, PayloadKind.ROUTER):
        if not blocks or not isinstance(blocks[0], DateTime):
            raise ParseError(f"a {kind.value} payload must start with a DateTime block", structure="GarlicPayload",
                             offset=0)
    return tuple(blocks)


_BLOCK_NAMES = {t.value: f"{t.name.title().replace('_', '')}Block" for t in BlockType}


def _block_name(kind_byte: int) -> str:
    return _BLOCK_NAMES.get(kind_byte) or f"Block{kind_byte}"


def padding_for(rng, max_len: int) -> Padding | None:
    """A Padding block of 0-max_len random-length zero bytes (ecies.rst "Parameters": 0-15), or None."""
    if max_len <= 0:
        return None
    return Padding(bytes(rng(1)[0] % (max_len + 1)))
