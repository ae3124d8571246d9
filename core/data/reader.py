"""A bounds-checked cursor over bytes; every parser reads through one."""
from __future__ import annotations

from .errors import ParseError


class Reader:
    """Reads big-endian fields; anything past the end raises ParseError naming the structure and offset."""

    __slots__ = ("buf", "pos", "end", "structure")

    def __init__(self, buf: bytes | bytearray | memoryview, structure: str, pos: int = 0, end: int | None = None):
        self.buf = bytes(buf) if not isinstance(buf, bytes) else buf
        self.pos = pos
        self.end = len(self.buf) if end is None else end
        self.structure = structure

    def error(self, message: str, offset: int | None = None) -> ParseError:
        return ParseError(message, structure=self.structure, offset=self.pos if offset is None else offset)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.error(f"truncated: need {n} bytes, have {self.end - self.pos}")
        start = self.pos
        self.pos += n
        return self.buf[start:self.pos]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def u8(self) -> int:
        if self.pos >= self.end:
            raise self.error("truncated: need 1 byte, have 0")
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def u64(self) -> int:
        return self.uint(8)

    def rest(self) -> bytes:
        return self.take(self.end - self.pos)

    def sub(self, n: int, structure: str | None = None) -> "Reader":
        """A reader over the next n bytes (which this reader skips)."""
        start = self.pos
        self.take(n)
        return Reader(self.buf, structure or self.structure, start, start + n)

    def expect_end(self) -> None:
        if self.pos != self.end:
            raise self.error(f"{self.end - self.pos} unexpected trailing bytes")
