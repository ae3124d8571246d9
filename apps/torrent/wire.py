"""The peer wire protocol (BEP 3) with the extension protocol (BEP 10), sans-I/O.

    wire = PeerWire(info_hash, our_peer_id)
    out = wire.handshake()                 # bytes to send
    for message in wire.feed(received): ...
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .bencode import BencodeError, TorrentParseError, bdecode_prefix, bencode

PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_LEN = 68
BLOCK = 16 * 1024
MAX_BLOCK = 128 * 1024               # largest request we serve; libtorrent and i2psnark ask 16 KiB
MAX_EXTENDED = 1024 * 1024           # an extended message (ut_metadata carries 16 KiB pieces)
EXTENSION_BIT = (5, 0x10)            # reserved byte 5: BEP 10

CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL, PORT = range(10)
EXTENDED = 20
NAMES = {CHOKE: "choke", UNCHOKE: "unchoke", INTERESTED: "interested", NOT_INTERESTED: "not_interested",
         HAVE: "have", BITFIELD: "bitfield", REQUEST: "request", PIECE: "piece", CANCEL: "cancel",
         PORT: "port", EXTENDED: "extended"}


class WireError(TorrentParseError):
    structure_name = "peer wire"


@dataclass(frozen=True, slots=True)
class Handshake:
    info_hash: bytes
    peer_id: bytes
    reserved: bytes = b"\x00" * 5 + b"\x10" + b"\x00\x00"

    @property
    def extensions(self) -> bool:
        return bool(self.reserved[EXTENSION_BIT[0]] & EXTENSION_BIT[1])

    def to_bytes(self) -> bytes:
        return PROTOCOL + self.reserved + self.info_hash + self.peer_id

    @classmethod
    def parse(cls, data: bytes) -> "Handshake":
        if len(data) != HANDSHAKE_LEN or data[:20] != PROTOCOL:
            raise WireError("not a BitTorrent handshake")
        return cls(info_hash=data[28:48], peer_id=data[48:68], reserved=data[20:28])


@dataclass(frozen=True, slots=True)
class Message:
    """One message after the handshake; `payload` is the body after the id, fields decoded per kind."""

    kind: int                      # -1 keep-alive
    index: int = 0
    begin: int = 0
    length: int = 0
    data: bytes = b""              # bitfield bits, piece block, extended payload
    ext_id: int = 0                # extended messages: 0 handshake, else our id for the extension


def encode(kind: int, *, index: int = 0, begin: int = 0, length: int = 0, data: bytes = b"",
           ext_id: int = 0) -> bytes:
    if kind in (CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED):
        return struct.pack(">IB", 1, kind)
    if kind == HAVE:
        return struct.pack(">IBI", 5, HAVE, index)
    if kind == BITFIELD:
        return struct.pack(">IB", 1 + len(data), BITFIELD) + data
    if kind in (REQUEST, CANCEL):
        return struct.pack(">IBIII", 13, kind, index, begin, length)
    if kind == PIECE:
        return struct.pack(">IBII", 9 + len(data), PIECE, index, begin) + data
    if kind == EXTENDED:
        return struct.pack(">IBB", 2 + len(data), EXTENDED, ext_id) + data
    if kind == -1:
        return b"\x00\x00\x00\x00"
    raise ValueError(f"no encoding for message {kind}")


def encode_extended(ext_id: int, payload: dict[bytes, Any], tail: bytes = b"") -> bytes:
    return encode(EXTENDED, ext_id=ext_id, data=bencode(payload) + tail)


class PeerWire:
    """Bytes in, Handshake and Message out; raises WireError for anything that breaks BEP 3 or our bounds."""

    def __init__(self, piece_count: int | None = None):
        self.piece_count = piece_count
        self.buffer = bytearray()
        self.handshake: Handshake | None = None

    def max_length(self) -> int:
        bitfield = ((self.piece_count or 0) + 7) // 8
        return max(MAX_BLOCK + 9, MAX_EXTENDED + 2, bitfield + 1)

    def feed(self, data: bytes) -> list[Handshake | Message]:
        self.buffer += data
        out: list[Handshake | Message] = []
        if self.handshake is None:
            if len(self.buffer) < HANDSHAKE_LEN:
                if self.buffer[:len(PROTOCOL)] != PROTOCOL[:len(self.buffer)]:
                    raise WireError("not a BitTorrent handshake")
                return out
            self.handshake = Handshake.parse(bytes(self.buffer[:HANDSHAKE_LEN]))
            del self.buffer[:HANDSHAKE_LEN]
            out.append(self.handshake)
        buf = self.buffer
        pos = 0
        limit = self.max_length()
        while len(buf) - pos >= 4:
            (length,) = struct.unpack_from(">I", buf, pos)
            if length > limit:
                raise WireError(f"message of {length} bytes is over the {limit} limit")
            if len(buf) - pos - 4 < length:
                break
            body = bytes(buf[pos + 4:pos + 4 + length])
            pos += 4 + length
            out.append(self._message(body))
        del buf[:pos]
        return out

    def _message(self, body: bytes) -> Message:
        if not body:
            return Message(-1)
        kind, rest = body[0], body[1:]
        if kind in (CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED):
            if rest:
                raise WireError(f"{NAMES[kind]} with a payload")
            return Message(kind)
        if kind == HAVE:
            if len(rest) != 4:
                raise WireError("have of the wrong length")
            return Message(HAVE, index=struct.unpack(">I", rest)[0])
        if kind == BITFIELD:
            if self.piece_count is not None and len(rest) != (self.piece_count + 7) // 8:
                raise WireError(f"bitfield of {len(rest)} bytes for {self.piece_count} pieces")
            return Message(BITFIELD, data=rest)
        if kind in (REQUEST, CANCEL):
            if len(rest) != 12:
                raise WireError(f"{NAMES[kind]} of the wrong length")
            index, begin, length = struct.unpack(">III", rest)
            if length == 0 or length > MAX_BLOCK:
                raise WireError(f"{NAMES[kind]} for {length} bytes")
            return Message(kind, index=index, begin=begin, length=length)
        if kind == PIECE:
            if len(rest) < 8:
                raise WireError("piece too short")
            index, begin = struct.unpack_from(">II", rest)
            return Message(PIECE, index=index, begin=begin, length=len(rest) - 8, data=rest[8:])
        if kind == EXTENDED:
            if not rest:
                raise WireError("extended without an id")
            return Message(EXTENDED, ext_id=rest[0], data=rest[1:])
        if kind == PORT:
            return Message(PORT)
        raise WireError(f"unknown message id {kind}")


def decode_extended(data: bytes) -> tuple[dict[bytes, Any], bytes]:
    """An extended payload's bencoded dictionary and whatever follows it (BEP 9 data)."""

    try:
        value, end = bdecode_prefix(data, max_items=10_000)
    except BencodeError as exc:
        raise WireError(f"extended payload: {exc}") from None
    if not isinstance(value, dict):
        raise WireError("extended payload is not a dictionary")
    return value, data[end:]


def bitfield_bytes(have: list[bool] | bytearray, count: int) -> bytes:
    out = bytearray((count + 7) // 8)
    for i in range(count):
        if have[i]:
            out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def bitfield_pieces(data: bytes, count: int) -> list[bool]:
    bits = [bool(data[i >> 3] & (0x80 >> (i & 7))) for i in range(count)]
    spare = len(data) * 8 - count
    if spare and data[-1] & ((1 << spare) - 1):
        raise WireError("bitfield has spare bits set")
    return bits
