"""The client payload of a Data message: gzip (RFC 1952) with ports and protocol in the header.

i2cp-overview.md "I2CP Payload Data Format and Multiplexing": bytes 4-5 (gzip mtime) carry the source
port, 6-7 the destination port, byte 8 (xflags) is 2 and byte 9 (gzip OS) the I2P protocol number.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from core.data.errors import ParseError

MAX_PAYLOAD = 65536           # i2cp.rst "Payload": the actual limit is about 64 KB; also the gunzip bound
COMPRESS_THRESHOLD = 64       # below this, deflate cannot win back its own framing
ALWAYS_TRY_BELOW = 1024       # short messages (streaming SYNs among them) are always offered to deflate
MISSES_BEFORE_SKIPPING = 4    # payloads in a row deflate did not shrink...
SKIP_AFTER_MISSES = 32        # ...before this many long ones are stored without trying
_STORED_BLOCK = 0xFFFF        # RFC 1951 "Non-compressed blocks": LEN is 2 bytes
_MAGIC = b"\x1f\x8b\x08"
_HEADER = struct.Struct(">3sBHHBB")
_TRAILER = struct.Struct("<II")
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x01, 0x02, 0x04, 0x08, 0x10
_RESERVED_FLAGS = 0xE0
_XFLAGS = 2                   # "set to 2 to be indistinguishable from the Java implementation"
_STRUCTURE = "ClientPayload"


@dataclass(frozen=True, slots=True)
class ClientPayload:
    """One end-to-end message: the application bytes and how to dispatch them."""

    data: bytes
    protocol: int = 0
    src_port: int = 0
    dst_port: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.protocol <= 0xFF:
            raise ValueError(f"protocol {self.protocol} must fit 1 byte")
        if not (0 <= self.src_port <= 0xFFFF and 0 <= self.dst_port <= 0xFFFF):
            raise ValueError("ports must fit 2 bytes")
        if len(self.data) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.data)} bytes exceeds {MAX_PAYLOAD}")

    def to_bytes(self, *, compress: bool | Compressor = True, level: int = 6) -> bytes:
        """The gzip member; deflated when asked and it helps, else stored blocks (gzip effort 0). A Compressor
        decides per message from how well the last ones compressed."""
        header = _HEADER.pack(_MAGIC, 0, self.src_port, self.dst_port, _XFLAGS, self.protocol)
        data = self.data
        body = None
        if isinstance(compress, Compressor):
            body = compress.deflate(data)
        elif compress and len(data) >= COMPRESS_THRESHOLD:
            body = zlib.compress(data, level, -15)
            if len(body) >= len(data):
                body = None
        return b"".join((header, _stored(data) if body is None else body,
                         _TRAILER.pack(zlib.crc32(data), len(data) & 0xFFFFFFFF)))

    @classmethod
    def parse(cls, data: bytes, max_size: int = MAX_PAYLOAD) -> "ClientPayload":
        """A whole gzip member; ParseError for a bad header, bad deflate data, CRC or size, or trailing bytes."""
        if len(data) < _HEADER.size + _TRAILER.size:
            raise ParseError(f"{len(data)} bytes is too short for a gzip member", structure=_STRUCTURE, offset=0)
        magic, flags, src_port, dst_port, _xflags, protocol = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ParseError("not a gzip/deflate header", structure=_STRUCTURE, offset=0)
        if flags & _RESERVED_FLAGS:
            raise ParseError(f"reserved gzip flags set (0x{flags:02x})", structure=_STRUCTURE, offset=3)
        pos = _skip_optional_fields(data, flags, _HEADER.size)
        inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(data[pos:], max_size + 1)
        except zlib.error as exc:
            raise ParseError(f"bad deflate data: {exc}", structure=_STRUCTURE, offset=pos) from None
        if len(out) > max_size or inflater.unconsumed_tail:
            raise ParseError(f"payload inflates beyond {max_size} bytes", structure=_STRUCTURE, offset=pos)
        if not inflater.eof:
            raise ParseError("deflate stream is truncated", structure=_STRUCTURE, offset=len(data))
        trailer = inflater.unused_data
        trailer_offset = len(data) - len(trailer)
        if len(trailer) != _TRAILER.size:
            raise ParseError(f"gzip trailer is {len(trailer)} bytes, must be 8", structure=_STRUCTURE,
                             offset=trailer_offset)
        crc, size = _TRAILER.unpack(trailer)
        if crc != zlib.crc32(out):
            raise ParseError("gzip CRC-32 mismatch", structure=_STRUCTURE, offset=trailer_offset)
        if size != len(out) & 0xFFFFFFFF:
            raise ParseError("gzip size mismatch", structure=_STRUCTURE, offset=trailer_offset + 4)
        return cls(out, protocol, src_port, dst_port)


class Compressor:
    """The gzip effort per message (i2cp-overview.md "I2CP Payload Data Format": efforts may differ per message,
    from an assessment of compressibility): after a few long payloads in a row that deflate did not shrink
    (encrypted or already compressed streams), only every SKIP_AFTER_MISSES-th long one is tried again."""

    __slots__ = ("level", "_misses", "_skip")

    def __init__(self, level: int = 6):
        self.level = level
        self._misses = 0
        self._skip = 0

    def deflate(self, data: bytes) -> bytes | None:
        """`data` deflated, or None when it is to be stored (not tried, or deflate did not help)."""
        size = len(data)
        if size < COMPRESS_THRESHOLD:
            return None
        if size >= ALWAYS_TRY_BELOW and self._skip:
            self._skip -= 1
            return None
        body = zlib.compress(data, self.level, -15)
        if len(body) < size:
            self._misses = 0
            return body
        if size >= ALWAYS_TRY_BELOW:
            self._misses += 1
            if self._misses >= MISSES_BEFORE_SKIPPING:
                self._misses = 0
                self._skip = SKIP_AFTER_MISSES
        return None


def _stored(data: bytes) -> bytes:
    """Raw deflate of stored blocks only (RFC 1951 3.2.4): a trivial effort-0 gzip, no zlib stream set up."""
    size = len(data)
    parts = []
    for start in range(0, size, _STORED_BLOCK) if size else (0,):
        chunk = data[start:start + _STORED_BLOCK]
        final = start + _STORED_BLOCK >= size
        parts.append(struct.pack("<BHH", final, len(chunk), len(chunk) ^ 0xFFFF))
        parts.append(chunk)
    return b"".join(parts)


def _skip_optional_fields(data: bytes, flags: int, pos: int) -> int:
    """RFC 1952 "Member format": FEXTRA, FNAME, FCOMMENT, FHCRC, in that order."""
    if flags & _FEXTRA:
        if pos + 2 > len(data):
            raise ParseError("truncated gzip extra field", structure=_STRUCTURE, offset=pos)
        pos += 2 + int.from_bytes(data[pos:pos + 2], "little")
    for flag, name in ((_FNAME, "name"), (_FCOMMENT, "comment")):
        if flags & flag:
            end = data.find(b"\0", pos)
            if end < 0:
                raise ParseError(f"unterminated gzip {name}", structure=_STRUCTURE, offset=pos)
            pos = end + 1
    if flags & _FHCRC:
        if pos + 2 > len(data) or int.from_bytes(data[pos:pos + 2], "little") != zlib.crc32(data[:pos]) & 0xFFFF:
            raise ParseError("bad gzip header CRC", structure=_STRUCTURE, offset=pos)
        pos += 2
    if pos > len(data):
        raise ParseError("gzip header runs past the end", structure=_STRUCTURE, offset=len(data))
    return pos
