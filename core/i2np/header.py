"""The I2NP message envelope and its two header forms (i2np.rst "I2NP message header")."""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, Self

from ..data.errors import ParseError
from ..data.reader import Reader

STANDARD_HEADER_SIZE = 16
SHORT_HEADER_SIZE = 9
MAX_STANDARD_BODY_SIZE = 0xFFFF  # the standard header's 2-byte size field

_STANDARD = struct.Struct(">BIQHB")
_SHORT = struct.Struct(">BII")
_U32_MASK = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF

# a message in the short header's terms, as the transports carry it: (type, msg_id, expiration seconds, body);
# the relay path moves TunnelData this way, with no I2NPMessage per message
RawI2NP = tuple[int, int, int, bytes]


class MessageType(IntEnum):
    """i2np.rst "Messages" table."""

    DATABASE_STORE = 1
    DATABASE_LOOKUP = 2
    DATABASE_SEARCH_REPLY = 3
    DELIVERY_STATUS = 10
    GARLIC = 11
    TUNNEL_DATA = 18
    TUNNEL_GATEWAY = 19
    DATA = 20
    TUNNEL_BUILD = 21
    TUNNEL_BUILD_REPLY = 22
    VARIABLE_TUNNEL_BUILD = 23
    VARIABLE_TUNNEL_BUILD_REPLY = 24
    SHORT_TUNNEL_BUILD = 25
    OUTBOUND_TUNNEL_BUILD_REPLY = 26


class MessagePayload(Protocol):
    """What every typed I2NP message body offers (DatabaseStore, TunnelData, ...)."""

    TYPE: int

    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class I2NPMessage:
    """One I2NP message, independent of the header form it travels with.

    `body` is the raw message body; parse it with `core.i2np.parse_message(type, body)`.
    """

    type: int
    msg_id: int
    expiration_ms: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF:
            raise ValueError(f"I2NP type {self.type} out of range")
        if not 0 <= self.msg_id <= _U32_MASK:
            raise ValueError(f"I2NP msg_id {self.msg_id} out of range")
        if not 0 <= self.expiration_ms <= _U64_MAX:
            raise ValueError(f"I2NP expiration {self.expiration_ms} out of range")

    @classmethod
    def build(cls, payload: MessagePayload, msg_id: int, expiration_ms: int) -> Self:
        return cls(int(payload.TYPE), msg_id, expiration_ms, payload.to_bytes())

    @property
    def expiration_seconds(self) -> int:
        """The expiration as the short header carries it: seconds, rounded to nearest, wrapping in 2106."""
        return ((self.expiration_ms + 500) // 1000) & _U32_MASK

    def raw(self) -> RawI2NP:
        return self.type, self.msg_id, self.expiration_seconds, self.body

    @classmethod
    def from_raw(cls, raw: RawI2NP) -> Self:
        msg_type, msg_id, expiration_s, body = raw
        return cls(msg_type, msg_id, expiration_s * 1000, body)


def checksum(body: bytes) -> int:
    """First byte of SHA-256 of the body (i2np.rst "I2NP message header", chks)."""
    return hashlib.sha256(body).digest()[0]


def encode_standard(msg: I2NPMessage) -> bytes:
    """The 16-byte header form, used for messages inside other messages and tunnels."""
    size = len(msg.body)
    if size > MAX_STANDARD_BODY_SIZE:
        raise ValueError(f"I2NP body of {size} bytes does not fit a standard header")
    return _STANDARD.pack(msg.type, msg.msg_id, msg.expiration_ms, size, checksum(msg.body)) + msg.body


def read_standard(r: Reader, *, verify_checksum: bool = True) -> I2NPMessage:
    """A standard-form message at the reader's position; its size field bounds the body."""
    start = r.pos
    msg_type, msg_id, expiration_ms, size, chks = _STANDARD.unpack(r.take(STANDARD_HEADER_SIZE))
    body = r.take(size)
    if verify_checksum and checksum(body) != chks:
        raise ParseError("checksum mismatch", structure="I2NPMessageHeader", offset=start + 15)
    return I2NPMessage(msg_type, msg_id, expiration_ms, body)


def decode_standard(data: bytes, *, verify_checksum: bool = True) -> I2NPMessage:
    """A whole buffer holding exactly one standard-form message."""
    if len(data) < STANDARD_HEADER_SIZE:
        raise ParseError(f"truncated: {len(data)} bytes, header needs 16", structure="I2NPMessageHeader", offset=0)
    msg_type, msg_id, expiration_ms, size, chks = _STANDARD.unpack_from(data)
    if len(data) != STANDARD_HEADER_SIZE + size:
        raise ParseError(f"size field says {size} body bytes, buffer has {len(data) - STANDARD_HEADER_SIZE}",
                         structure="I2NPMessageHeader", offset=13)
    body = data[STANDARD_HEADER_SIZE:]
    if verify_checksum and checksum(body) != chks:
        raise ParseError("checksum mismatch", structure="I2NPMessageHeader", offset=15)
    return I2NPMessage(msg_type, msg_id, expiration_ms, body)


def encode_short(msg: I2NPMessage) -> bytes:
    """The 9-byte header form of NTCP2/SSU2 blocks and ECIES garlic cloves; the container carries the size."""
    return _SHORT.pack(msg.type, msg.msg_id, msg.expiration_seconds) + msg.body


def decode_short(data: bytes) -> I2NPMessage:
    """A whole buffer: 9-byte header, then the body up to the end (the enclosing block gives the size)."""
    if len(data) < SHORT_HEADER_SIZE:
        raise ParseError(f"truncated: {len(data)} bytes, header needs 9", structure="I2NPShortHeader", offset=0)
    msg_type, msg_id, expiration_s = _SHORT.unpack_from(data)
    return I2NPMessage(msg_type, msg_id, expiration_s * 1000, data[SHORT_HEADER_SIZE:])


def read_short(r: Reader) -> I2NPMessage:
    """A short-form message taking the rest of the reader (used inside blocks)."""
    msg_type, msg_id, expiration_s = _SHORT.unpack(r.take(SHORT_HEADER_SIZE))
    return I2NPMessage(msg_type, msg_id, expiration_s * 1000, r.rest())
