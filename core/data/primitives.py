"""Integer, Date, String and Mapping (common-structures.rst "Common type specification")."""
from __future__ import annotations

from dataclasses import dataclass, field
from sys import intern
from typing import Iterable, Self

from .errors import ParseError
from .reader import Reader

MAX_STRING_BYTES = 255
MAX_MAPPING_BYTES = 65535
DATE_UNDEFINED = 0


def write_uint(value: int, length: int) -> bytes:
    """A big-endian Integer of `length` bytes; ParseError if it does not fit."""
    try:
        return value.to_bytes(length, "big")
    except OverflowError:
        raise ParseError(f"{value} does not fit in {length} bytes", structure="Integer") from None


# --- Date: 8-byte Integer, ms since the epoch, 0 = undefined ("Date")

def read_date(r: Reader) -> int:
    return r.u64()


def write_date(ms: int) -> bytes:
    if not 0 <= ms < 1 << 64:
        raise ParseError(f"{ms} out of range", structure="Date")
    return ms.to_bytes(8, "big")


def date_from_seconds(seconds: float) -> int:
    """Wall-clock seconds (Clock.time()) to an I2P Date in ms."""
    return int(seconds * 1000)


def date_to_seconds(ms: int) -> float | None:
    """An I2P Date in ms to seconds, None for the undefined Date 0."""
    return None if ms == DATE_UNDEFINED else ms / 1000


# --- String: 1 length byte, then that many UTF-8 bytes ("String")

def _decode(data: bytes, r: Reader, offset: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise r.error("String is not valid UTF-8", offset) from None


def read_string(r: Reader) -> str:
    offset = r.pos
    return _decode(r.take(r.u8()), r, offset)


def encode_string(s: str) -> bytes:
    """The UTF-8 bytes of `s`; ParseError past 255 bytes or for text that is not encodable."""
    try:
        data = s.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("not encodable as UTF-8", structure="String") from None
    if len(data) > MAX_STRING_BYTES:
        raise ParseError(f"{len(data)} bytes, the limit is {MAX_STRING_BYTES}", structure="String")
    return data


def write_string(s: str) -> bytes:
    data = encode_string(s)
    return bytes((len(data),)) + data


def java_sort_key(s: str) -> bytes:
    """Order of Java String.compareTo (UTF-16 code units), which the Mapping spec names."""
    return s.encode("utf-16-be", "surrogatepass")


# --- Mapping: 2-byte size, then key=value; pairs ("Mapping")

@dataclass(frozen=True, slots=True)
class Mapping:
    """Key/value options in wire order; from_dict sorts keys as signed structures require."""

    items: tuple[tuple[str, str], ...] = ()
    _encoded: bytes = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        parts = []
        for item in self.items:
            if not (isinstance(item, tuple) and len(item) == 2
                    and isinstance(item[0], str) and isinstance(item[1], str)):
                raise ParseError(f"entry {item!r} is not a (str, str) pair", structure="Mapping")
            key, value = item
            k = encode_string(key)
            v = encode_string(value)
            parts.append(b"%c%s=%c%s;" % (len(k), k, len(v), v))
        body = b"".join(parts)
        if len(body) > MAX_MAPPING_BYTES:
            raise ParseError(f"{len(body)} bytes, the limit is {MAX_MAPPING_BYTES}", structure="Mapping")
        object.__setattr__(self, "_encoded", len(body).to_bytes(2, "big") + body)

    @classmethod
    def from_dict(cls, d: dict[str, str] | Iterable[tuple[str, str]]) -> Self:
        """Sorted by key (Java String.compareTo), the only order a signed structure may use."""
        pairs = d.items() if isinstance(d, dict) else d
        items = tuple(sorted(((str(k), str(v)) for k, v in pairs), key=lambda kv: java_sort_key(kv[0])))
        for (a, _), (b, _) in zip(items, items[1:]):
            if a == b:
                raise ParseError(f"duplicate key {a!r}", structure="Mapping")
        return cls(items)

    @classmethod
    def read(cls, r: Reader, *, allow_duplicates: bool = False) -> Self:
        """Parse at r's position; duplicate keys are rejected unless allowed (they break signatures)."""
        start = r.pos
        size = r.u16()
        body = r.sub(size, "Mapping")
        buf, pos, end = body.buf, body.pos, body.end
        items = []
        seen = set()
        # a tight loop over the buffer: mappings dominate RouterInfo parsing
        while pos < end:
            entry = pos
            key_end = pos + 1 + buf[pos]
            if key_end + 2 > end:
                raise body.error("truncated key", entry)
            if buf[key_end] != 0x3D:
                raise body.error("expected '=' after key", key_end)
            value_end = key_end + 2 + buf[key_end + 1]
            if value_end + 1 > end:
                raise body.error("truncated value", key_end + 1)
            if buf[value_end] != 0x3B:
                raise body.error("expected ';' after value", value_end)
            try:
                key = buf[pos + 1:key_end].decode("utf-8")
                value = buf[key_end + 2:value_end].decode("utf-8")
            except UnicodeDecodeError:
                raise body.error("String is not valid UTF-8", entry) from None
            # the same few keys and short values recur in every RouterInfo of a netDb: share one str each
            key = intern(key)
            if len(value) <= 16:
                value = intern(value)
            if key in seen and not allow_duplicates:
                raise body.error(f"duplicate key {key!r}", entry)
            seen.add(key)
            items.append((key, value))
            pos = value_end + 1
        # everything __post_init__ checks holds by construction here, so skip re-encoding
        mapping = object.__new__(cls)
        object.__setattr__(mapping, "items", tuple(items))
        object.__setattr__(mapping, "_encoded", r.buf[start:r.pos])
        return mapping

    @classmethod
    def parse(cls, data: bytes, *, allow_duplicates: bool = False) -> Self:
        r = Reader(data, "Mapping")
        mapping = cls.read(r, allow_duplicates=allow_duplicates)
        r.expect_end()
        return mapping

    def to_bytes(self) -> bytes:
        return self._encoded

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.items:
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.items)

    def is_sorted(self) -> bool:
        keys = [java_sort_key(k) for k, _ in self.items]
        return all(a < b for a, b in zip(keys, keys[1:]))

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)
