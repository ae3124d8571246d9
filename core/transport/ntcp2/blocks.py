"""NTCP2 data-phase blocks (ntcp2.rst "Unencrypted data" and the block sections after it)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Iterable, Self, Union

from core.data.errors import ParseError
from core.data.reader import Reader
from core.i2np.header import I2NPMessage, RawI2NP

BLOCK_HEADER_SIZE = 3
MAX_FRAME_PAYLOAD = 65519           # 65535-byte ChaChaPoly frame minus the 16-byte MAC
MAX_BLOCK_DATA = MAX_FRAME_PAYLOAD - BLOCK_HEADER_SIZE  # 65516

DATETIME = 0
OPTIONS = 1
ROUTER_INFO = 2
I2NP = 3
TERMINATION = 4
PADDING = 254

FLAG_FLOOD_REQUEST = 0x01
_U32 = 0xFFFFFFFF
_BLOCK_HEADER = struct.Struct(">BH")
_I2NP_SHORT_HEADER = struct.Struct(">BII")
_I2NP_BLOCK_HEADER = struct.Struct(">BHBII")  # block header, then the I2NP short header
I2NP_BLOCK_OVERHEAD = _I2NP_BLOCK_HEADER.size


class TerminationReason(IntEnum):
    """ntcp2.rst "Termination" reason codes."""

    NORMAL_CLOSE = 0
    TERMINATION_RECEIVED = 1
    IDLE_TIMEOUT = 2
    ROUTER_SHUTDOWN = 3
    DATA_PHASE_AEAD_FAILURE = 4
    INCOMPATIBLE_OPTIONS = 5
    INCOMPATIBLE_SIGNATURE_TYPE = 6
    CLOCK_SKEW = 7
    PADDING_VIOLATION = 8
    AEAD_FRAMING_ERROR = 9
    PAYLOAD_FORMAT_ERROR = 10
    MESSAGE_1_ERROR = 11
    MESSAGE_2_ERROR = 12
    MESSAGE_3_ERROR = 13
    INTRA_FRAME_READ_TIMEOUT = 14
    ROUTER_INFO_SIGNATURE_FAILURE = 15
    STATIC_KEY_MISMATCH = 16
    BANNED = 17


def _header(block_type: int, data_len: int) -> bytes:
    if data_len > MAX_BLOCK_DATA:
        raise ValueError(f"NTCP2 block data of {data_len} bytes exceeds {MAX_BLOCK_DATA}")
    return bytes((block_type, data_len >> 8, data_len & 0xFF))


@dataclass(frozen=True, slots=True)
class DateTimeBlock:
    """ntcp2.rst "DateTime": the sender's clock in whole seconds."""

    TYPE: ClassVar[int] = DATETIME
    timestamp: int

    def __post_init__(self) -> None:
        if not 0 <= self.timestamp <= _U32:
            raise ValueError("DateTime timestamp out of range")

    @classmethod
    def now(cls, wall_seconds: float) -> Self:
        # ntcp2.rst "DateTime": round to the nearest second
        return cls(int(wall_seconds + 0.5) & _U32)

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining != 4:
            raise r.error(f"DateTime block size {r.remaining}, must be 4")
        return cls(r.u32())

    def data(self) -> bytes:
        return self.timestamp.to_bytes(4, "big")

    def to_bytes(self) -> bytes:
        return _header(DATETIME, 4) + self.data()


@dataclass(frozen=True, slots=True)
class OptionsBlock:
    """ntcp2.rst "Options": padding ratios (4.4 fixed point), dummy traffic and delay wishes."""

    TYPE: ClassVar[int] = OPTIONS
    tmin: int = 0
    tmax: int = 0
    rmin: int = 0
    rmax: int = 0
    tdmy: int = 0
    rdmy: int = 0
    tdelay: int = 0
    rdelay: int = 0
    more_options: bytes = b""

    def __post_init__(self) -> None:
        for name in ("tmin", "tmax", "rmin", "rmax"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"Options {name} out of range")
        for name in ("tdmy", "rdmy", "tdelay", "rdelay"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"Options {name} out of range")

    @staticmethod
    def ratio_to_byte(ratio: float) -> int:
        """Padding ratio (0 to 15.9375) as the 4.4 fixed-point byte."""
        return max(0, min(0xFF, round(ratio * 16)))

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 12:
            raise r.error(f"Options block size {r.remaining}, must be at least 12")
        tmin, tmax, rmin, rmax = r.take(4)
        return cls(tmin, tmax, rmin, rmax, r.u16(), r.u16(), r.u16(), r.u16(), r.rest())

    def data(self) -> bytes:
        return (bytes((self.tmin, self.tmax, self.rmin, self.rmax))
                + self.tdmy.to_bytes(2, "big") + self.rdmy.to_bytes(2, "big")
                + self.tdelay.to_bytes(2, "big") + self.rdelay.to_bytes(2, "big") + self.more_options)

    def to_bytes(self) -> bytes:
        data = self.data()
        return _header(OPTIONS, len(data)) + data


@dataclass(frozen=True, slots=True)
class RouterInfoBlock:
    """ntcp2.rst "RouterInfo": an uncompressed RouterInfo and a flags byte (bit 0: flood request)."""

    TYPE: ClassVar[int] = ROUTER_INFO
    router_info: bytes
    flags: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.flags <= 0xFF:
            raise ValueError("RouterInfo block flags out of range")

    @property
    def flood_request(self) -> bool:
        return bool(self.flags & FLAG_FLOOD_REQUEST)

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 2:
            raise r.error("RouterInfo block holds no RouterInfo")
        flags = r.u8()
        return cls(r.rest(), flags)

    def data(self) -> bytes:
        return bytes((self.flags,)) + self.router_info

    def to_bytes(self) -> bytes:
        return _header(ROUTER_INFO, 1 + len(self.router_info)) + self.data()


@dataclass(frozen=True, slots=True)
class I2NPBlock:
    """ntcp2.rst "I2NP Message": one I2NP message with the 9-byte short header (expiration in seconds)."""

    TYPE: ClassVar[int] = I2NP
    msg_type: int
    msg_id: int
    expiration: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.msg_type <= 0xFF:
            raise ValueError("I2NP type out of range")
        if not 0 <= self.msg_id <= _U32:
            raise ValueError("I2NP msg_id out of range")
        if not 0 <= self.expiration <= _U32:
            raise ValueError("I2NP short expiration out of range")

    @classmethod
    def from_message(cls, msg: I2NPMessage) -> Self:
        return cls(msg.type, msg.msg_id, msg.expiration_seconds, msg.body)

    def to_message(self) -> I2NPMessage:
        """The message with the expiration back in milliseconds (whole seconds, as the short header keeps it)."""
        return I2NPMessage(self.msg_type, self.msg_id, self.expiration * 1000, self.body)

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 9:
            raise r.error(f"I2NP block size {r.remaining}, must be at least 9")
        return cls(r.u8(), r.u32(), r.u32(), r.rest())

    def data(self) -> bytes:
        return self.to_bytes()[BLOCK_HEADER_SIZE:]

    def to_bytes(self) -> bytes:
        return encode_i2np_block(self.msg_type, self.msg_id, self.expiration, self.body)


def encode_i2np_block(msg_type: int, msg_id: int, expiration_s: int, body: bytes) -> bytes:
    """An I2NP block's bytes straight from the fields (the send path builds no block object)."""
    return encode_i2np_blocks([(msg_type, msg_id, expiration_s, body)])[0]


def encode_i2np_blocks(messages: Iterable[RawI2NP]) -> list[bytes]:
    """The I2NP blocks of messages in short-header terms, one loop for a whole send."""
    pack = _I2NP_BLOCK_HEADER.pack
    out = []
    for msg_type, msg_id, expiration_s, body in messages:
        size = len(body) + 9
        if size > MAX_BLOCK_DATA:
            raise ValueError(f"NTCP2 block data of {size} bytes exceeds {MAX_BLOCK_DATA}")
        out.append(pack(I2NP, size, msg_type, msg_id, expiration_s) + body)
    return out


@dataclass(frozen=True, slots=True)
class TerminationBlock:
    """ntcp2.rst "Termination": frames received so far, a reason code, optional extra data."""

    TYPE: ClassVar[int] = TERMINATION
    valid_frames_received: int
    reason: int
    additional_data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.valid_frames_received <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError("Termination frame count out of range")
        if not 0 <= self.reason <= 0xFF:
            raise ValueError("Termination reason out of range")

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 9:
            raise r.error(f"Termination block size {r.remaining}, must be at least 9")
        return cls(r.u64(), r.u8(), r.rest())

    def data(self) -> bytes:
        return self.valid_frames_received.to_bytes(8, "big") + bytes((self.reason,)) + self.additional_data

    def to_bytes(self) -> bytes:
        return _header(TERMINATION, 9 + len(self.additional_data)) + self.data()


@dataclass(frozen=True, slots=True)
class PaddingBlock:
    """ntcp2.rst "Padding": random bytes, always the last block of a frame."""

    TYPE: ClassVar[int] = PADDING
    padding: bytes = b""

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        return cls(r.rest())

    def data(self) -> bytes:
        return self.padding

    def to_bytes(self) -> bytes:
        return _header(PADDING, len(self.padding)) + self.padding


@dataclass(frozen=True, slots=True)
class UnknownBlock:
    """A block of a type this version does not know; receivers treat it as padding."""

    block_type: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.block_type in _KNOWN or not 0 <= self.block_type <= 0xFF:
            raise ValueError(f"block type {self.block_type} is not an unknown type")

    @property
    def TYPE(self) -> int:  # noqa: N802 - same attribute as the known blocks
        return self.block_type

    def data(self) -> bytes:
        return self.payload

    def to_bytes(self) -> bytes:
        return _header(self.block_type, len(self.payload)) + self.payload


Block = Union[DateTimeBlock, OptionsBlock, RouterInfoBlock, I2NPBlock, TerminationBlock, PaddingBlock, UnknownBlock]

_KNOWN = {cls.TYPE: cls for cls in
          (DateTimeBlock, OptionsBlock, RouterInfoBlock, I2NPBlock, TerminationBlock, PaddingBlock)}


def read_block(r: Reader, known: dict | None = None, unknown=None, name: str = "NTCP2") -> Block:
    """One block at the reader's position; its size field bounds what its parser may read.

    `known` (type -> class) and `unknown` (the class for other types) let SSU2 share this with its own blocks.
    """
    start = r.pos
    block_type = r.u8()
    size = r.u16()
    if size > r.remaining:
        raise r.error(f"block type {block_type} size {size} overruns the frame ({r.remaining} left)", start + 1)
    data = r.sub(size, f"{name} block {block_type}")
    cls = (_KNOWN if known is None else known).get(block_type)
    if cls is None:
        return (unknown or UnknownBlock)(block_type, data.rest())
    try:
        block = cls.read_data(data)
    except ValueError as exc:          # a field the dataclass refuses (bad IP bytes, range)
        raise ParseError(str(exc), structure=f"{name} block {block_type}", offset=start) from None
    data.expect_end()
    return block


def parse_blocks(payload: bytes, structure: str = "NTCP2 frame", read=None, termination: int = TERMINATION
                 ) -> list[Block]:
    """All blocks of a data-phase frame, enforcing ntcp2.rst "Block Ordering Rules" (SSU2's are the same);
    SSU2 passes its own `read` (one block) and Termination block type."""
    return blocks_of(split_frame(payload, structure, read, termination))


def blocks_of(items: list[Block | RawI2NP]) -> list[Block]:
    """split_frame()'s items with the RawI2NP tuples made I2NPBlocks."""
    return [I2NPBlock(*item) if type(item) is tuple else item for item in items]


def split_frame(payload: bytes, structure: str = "NTCP2 frame", read=None, termination: int = TERMINATION
                ) -> list[Block | RawI2NP]:
    """parse_blocks() with each I2NP block left as a RawI2NP tuple: the receive path's per-message cost."""
    read = read or read_block
    items: list[Block | RawI2NP] = []
    pos, end = 0, len(payload)
    last_type = -1
    while pos < end:
        if last_type == PADDING:
            raise ParseError("a block follows the Padding block", structure=structure, offset=pos)
        if last_type == termination and payload[pos] != PADDING:
            raise ParseError("a non-Padding block follows Termination", structure=structure, offset=pos)
        if end - pos < BLOCK_HEADER_SIZE:
            raise ParseError(f"truncated: need {BLOCK_HEADER_SIZE} bytes, have {end - pos}", structure=structure,
                             offset=pos)
        block_type, size = _BLOCK_HEADER.unpack_from(payload, pos)
        start = pos + BLOCK_HEADER_SIZE
        stop = start + size
        if stop > end:
            raise ParseError(f"block type {block_type} size {size} overruns the frame ({end - start} left)",
                             structure=structure, offset=pos + 1)
        if block_type == I2NP:
            if size < 9:
                raise ParseError(f"I2NP block size {size}, must be at least 9", structure=f"NTCP2 block {I2NP}",
                                 offset=start)
            items.append((*_I2NP_SHORT_HEADER.unpack_from(payload, start), payload[start + 9:stop]))
        elif block_type == PADDING:  # once a frame: no Reader for it
            items.append(PaddingBlock(payload[start:stop]))
        else:
            items.append(read(Reader(payload, structure, pos, stop)))
        pos, last_type = stop, block_type
    return items


def parse_message3_blocks(payload: bytes) -> tuple[RouterInfoBlock, OptionsBlock | None, PaddingBlock | None]:
    """SessionConfirmed part 2: RouterInfo, then Options if present, then Padding if present; nothing else."""
    structure = "SessionConfirmed part 2"
    r = Reader(payload, structure)
    if not r.remaining or r.buf[0] != ROUTER_INFO:
        raise ParseError("first block is not RouterInfo", structure=structure, offset=0)
    router_info = read_block(r)
    options = padding = None
    if r.remaining and r.buf[r.pos] == OPTIONS:
        options = read_block(r)
    if r.remaining and r.buf[r.pos] == PADDING:
        padding = read_block(r)
    if r.remaining:
        raise r.error(f"block type {r.buf[r.pos]} is not allowed here")
    return router_info, options, padding  # type: ignore[return-value]


def encode_blocks(blocks: Iterable[Block]) -> bytes:
    return b"".join(block.to_bytes() for block in blocks)


def termination(frames_received: int, reason: int, additional_data: bytes = b"") -> TerminationBlock:
    """A Termination block with one of the TerminationReason codes."""
    return TerminationBlock(frames_received, int(reason), additional_data)
