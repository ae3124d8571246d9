"""SSU2 packet headers and header protection (ssu2.rst "Packet Header", "Header Encryption KDF")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from core.crypto.chacha import ChaChaStream
from core.data.errors import ParseError

SESSION_REQUEST = 0
SESSION_CREATED = 1
SESSION_CONFIRMED = 2
DATA = 6
PEER_TEST = 7
RETRY = 9
TOKEN_REQUEST = 10
HOLE_PUNCH = 11

LONG_TYPES = frozenset((SESSION_REQUEST, SESSION_CREATED, PEER_TEST, RETRY, TOKEN_REQUEST, HOLE_PUNCH))
VERSION = 2
SHORT_HEADER_SIZE = 16
LONG_HEADER_SIZE = 32
MIN_PACKET_SIZE = 40               # ssu2.rst "Messages": 1-39 bytes is invalid
MAX_PACKET_SIZE = 1472             # IPv4 at a 1500 MTU
_ZERO8 = bytes(8)
_ZERO_NONCE = bytes(12)


@dataclass(frozen=True, slots=True)
class ShortHeader:
    """16 bytes: destination connection id, packet number, type, then 3 type-specific bytes
    (Data: flags, bit 0 = immediate ack; Session Confirmed: frag byte then 2 flag bytes)."""

    SIZE: ClassVar[int] = SHORT_HEADER_SIZE
    dest_id: int
    packet_number: int
    type: int
    flags: bytes = bytes(3)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < 16:
            raise ParseError("short header truncated", structure="SSU2 short header")
        return cls(int.from_bytes(data[:8], "big"), int.from_bytes(data[8:12], "big"), data[12], bytes(data[13:16]))

    def to_bytes(self) -> bytes:
        return self.dest_id.to_bytes(8, "big") + self.packet_number.to_bytes(4, "big") + bytes((self.type,)) + self.flags

    @property
    def immediate_ack(self) -> bool:
        return bool(self.flags[0] & 1)

    @property
    def fragment(self) -> tuple[int, int]:
        """Session Confirmed: (fragment number, total fragments)."""
        return self.flags[0] >> 4, self.flags[0] & 0x0F


@dataclass(frozen=True, slots=True)
class LongHeader:
    """32 bytes: the short header's first 12, type, version, net id, flag, source id, token."""

    SIZE: ClassVar[int] = LONG_HEADER_SIZE
    dest_id: int
    packet_number: int
    type: int
    netid: int
    source_id: int
    token: int
    version: int = VERSION
    flag: int = 0

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < 32:
            raise ParseError("long header truncated", structure="SSU2 long header")
        return cls(int.from_bytes(data[:8], "big"), int.from_bytes(data[8:12], "big"), data[12], data[14],
                   int.from_bytes(data[16:24], "big"), int.from_bytes(data[24:32], "big"), data[13], data[15])

    def to_bytes(self) -> bytes:
        return (self.dest_id.to_bytes(8, "big") + self.packet_number.to_bytes(4, "big")
                + bytes((self.type, self.version, self.netid, self.flag))
                + self.source_id.to_bytes(8, "big") + self.token.to_bytes(8, "big"))


# A header key: its bytes, or a ChaChaStream of them that a session keeps for its life (the per-packet keys: our
# intro key, a session's header keys), so no cache outlives the keys it holds.
HeaderKey = bytes | ChaChaStream


# the raw ChaCha20 of I2P starts at block 1, as in tunnel build records (i2pd and Java agree)
def _stream(key: HeaderKey) -> ChaChaStream:
    return key if type(key) is ChaChaStream else ChaChaStream(key)


def _mask(key: HeaderKey, iv: bytes) -> bytes:
    return _stream(key).xor(iv, _ZERO8)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def protect(packet: bytes, k1: HeaderKey, k2: HeaderKey, extra: int = 0) -> bytes:
    """Encrypt bytes 0-15 of a finished packet with masks from its last 24 bytes, then, for long headers,
    bytes 16..16+extra with ChaCha20(k2, zero nonce) (extra = 16, or 48 with the ephemeral key)."""
    if len(packet) < MIN_PACKET_SIZE:
        raise ValueError("SSU2 packet too short to protect")
    n = len(packet)
    head = _xor(packet[:8], _mask(k1, packet[n - 24:n - 12])) + _xor(packet[8:16], _mask(k2, packet[n - 12:]))
    if extra:
        return head + _stream(k2).xor(_ZERO_NONCE, packet[16:16 + extra]) + packet[16 + extra:]
    return head + packet[16:]


def unprotect_dest_id(packet: bytes, k1: HeaderKey) -> int:
    """The destination connection id (bytes 0-7) under key k1."""
    n = len(packet)
    return int.from_bytes(_xor(packet[:8], _mask(k1, packet[n - 24:n - 12])), "big")


def unprotect_short(packet: bytes, k1: HeaderKey, k2: HeaderKey) -> bytes:
    """The 16 plain header bytes."""
    n = len(packet)
    return _xor(packet[:8], _mask(k1, packet[n - 24:n - 12])) + _xor(packet[8:16], _mask(k2, packet[n - 12:]))


def unprotect_rest(packet: bytes, k2: HeaderKey, extra: int) -> bytes:
    """Bytes 16..16+extra decrypted (ChaCha20 with the zero nonce)."""
    return _stream(k2).xor(_ZERO_NONCE, packet[16:16 + extra])
